"""The measured processes: the operator (`vaultbridge run`) and the floor, with /proc sampling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from vaultbridge.devenv import processes

from .setup import OPERATOR_NAMESPACE, BenchEnv

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_mib: float
    hwm_mib: float
    #: How long the main thread (the event loop) was runnable but waiting for a core, and how
    #: often the scheduler took the core from it (/proc/<pid>/schedstat, nonvoluntary context
    #: switches): wall time that a profile's samples include and the CPU seconds do not.
    runqueue_wait_seconds: float = 0.0
    preempted: int = 0


def usage(pid: int) -> Usage:
    """CPU seconds (utime + stime), resident memory (current and peak) and run-queue wait of
    one process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    status = Path(f"/proc/{pid}/status").read_text()

    def kib(name: str) -> float:
        m = re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)
        return int(m.group(1)) / 1024 if m else 0.0

    def count(name: str) -> int:
        m = re.search(rf"^{name}:\s+(\d+)$", status, re.MULTILINE)
        return int(m.group(1)) if m else 0

    try:
        # "<ns on a core> <ns waiting on a run queue> <timeslices>" (kernels with schedstats)
        waited = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        waited = 0.0
    return Usage(cpu, kib("VmRSS"), kib("VmHWM"), waited, count("nonvoluntary_ctxt_switches"))


@dataclass
class Measured:
    """A subprocess whose CPU and memory the bench reads from /proc."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def usage(self) -> Usage:
        return usage(self.pid)

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class OperatorRun(Measured):
    """`vaultbridge run` with its own identity (kubeconfig user `vaultbridge-operator`)."""

    def __init__(
        self,
        env: BenchEnv,
        workers: int,
        vault_qps: float | None,
        profile: str = "",
        extra: list[str] | None = None,
        vault_burst: int | None = None,
    ) -> None:
        self.metrics_port = processes.free_port()
        self.health_port = processes.free_port()
        run = [
            "-m", "vaultbridge.cli", "run",
            "--kubeconfig", str(env.operator_kubeconfig),
            "--namespace", OPERATOR_NAMESPACE,
            "--log-level", "info",
            "--log-format", "json",
            "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
            "--health-bind-address", f"127.0.0.1:{self.health_port}",
            "--workers", str(workers),
            "--shutdown-grace-period", "10",
            *(extra or []),
        ]  # fmt: skip
        # Not given: the operator's own default applies (what a user who sets nothing runs).
        if vault_qps is not None:
            run += ["--vault-qps", str(vault_qps)]
        if vault_burst is not None:
            run += ["--vault-burst", str(vault_burst)]
        if "audit-stream" in env.state.ports:
            # Instant updates (instant_change phase): the dev OpenBao's UDP audit device.
            run += [
                "--audit-stream-listen", f"udp://127.0.0.1:{env.state.ports['audit-stream']}",
                "--audit-stream-prefix", env.state.audit_stream_prefix,
            ]  # fmt: skip
        if profile:
            # py-spy records the whole run; its own CPU is outside the operator's pid.
            argv = [profile, "record", "--format", "raw", "--nonblocking"]
            argv += ["-o", env.profile_path(), "--"]
            argv += [sys.executable, *run]
        else:
            argv = [sys.executable, *run]
        child_env = dict(os.environ)
        child_env.pop("KUBECONFIG", None)
        super().__init__(argv, env.logs / f"operator-{int(time.time() * 1000)}.log", child_env)
        self.profiled = bool(profile)

    @property
    def pid(self) -> int:
        """The Python process itself (under py-spy it is the profiler's child)."""
        assert self.proc is not None
        if not self.profiled:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0]) if children else self.proc.pid

    def stop(self, timeout: float = 60) -> int | None:
        if self.profiled and self.proc is not None and self.proc.poll() is None:
            # SIGTERM the operator itself; py-spy writes its profile when the child exits.
            os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        return super().stop(timeout)

    async def start(self, within: float = 90) -> None:
        self.proc = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + within
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited ({self.proc.returncode}):\n{self.log_tail()}")
            if await asyncio.to_thread(self._ready):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"operator not ready after {within}s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as out:
            return subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def _ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    async def metric(self, name: str, **labels: str) -> float:
        return await asyncio.to_thread(self._metric, name, labels)

    def _metric(self, name: str, labels: dict[str, str]) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        total = 0.0
        line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
        for line in text.splitlines():
            m = line_re.match(line)
            if not m or m.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(m.group(4))
        return total


class FloorRun(Measured):
    """`python -m bench.floor` for one namespace."""

    def __init__(self, env: BenchEnv, namespace: str, workers: int) -> None:
        argv = [
            sys.executable, "-m", "bench.floor",
            "--api", env.state.api_url,
            "--ca", str(env.certs.ca_cert),
            "--cert", str(env.certs.admin_cert),
            "--key", str(env.certs.admin_key),
            "--vault-addr", env.state.vault_addr,
            "--namespace", namespace,
            "--role", env.role,
            "--workers", str(workers),
        ]  # fmt: skip
        super().__init__(argv, env.logs / f"floor-{namespace}.log")

    async def start(self, within: float = 60) -> None:
        self.proc = await asyncio.to_thread(self._spawn)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), within)
        if line.strip() != b"ready":
            raise RuntimeError(f"floor did not start:\n{self.log_tail()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as err:
            return subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=err, env=self.env, cwd=str(_REPO)
            )


_REPO = Path(__file__).resolve().parents[1]
