"""Start, find and stop the dev environment's long-running processes.

Processes run in their own session so they outlive `vaultbridge dev up`; each one's pid is
recorded in the state file and `down` stops exactly those pids (never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import DevEnvError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(
    component: str,
    argv: Sequence[str],
    log_file: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise DevEnvError(component, f"could not start {argv[0]}: {exc}", log_file) from exc
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        # A zombie still answers kill(0); reap it if it is our child, else read its state.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop(pid: int | None, timeout: float = 15.0) -> None:
    if not alive(pid):
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_until(
    component: str,
    check: Callable[[], bool],
    *,
    pid: int,
    log_file: Path,
    timeout: float,
    what: str,
) -> None:
    """Poll `check` until it holds; fail fast with the log if the process dies meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive(pid):
            raise DevEnvError(component, f"exited while waiting for {what}", log_file)
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not ready yet: any failure means "poll again"
            pass
        if time.monotonic() > deadline:
            raise DevEnvError(component, f"not {what} after {timeout:.0f}s", log_file)
        time.sleep(0.25)
