"""Run the real operator (`vaultbridge run`) as a subprocess against the dev environment.

The operator runs exactly as in production: its own process, its own kubeconfig, JSON logs
at debug level captured to a file (so tests can prove no secret value is ever logged), and
its /metrics endpoint scraped for counts such as Vault logins.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultbridge.devenv import crds, processes
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin

OPERATOR_NAMESPACE = "vaultbridge-system"
GROUP_PATH = "/apis/vaultbridge.dev/v1beta1"
# Objects with this label are handled by an operator a test starts itself (with
# `--resource-selector TEST_OPERATOR_LABEL=<id>`), never by the session `operator` fixture.
TEST_OPERATOR_LABEL = "vaultbridge.dev/test-operator"
REPO = Path(__file__).resolve().parents[2]


def install_crds(admin: KubeAdmin) -> None:
    crds.install_crds(admin, REPO / "deploy" / "crds")


@dataclass
class OperatorProcess:
    devenv: DevState
    log_path: Path
    metrics_port: int
    health_port: int
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    # Default: the dev environment's cluster-admin kubeconfig. The deployment tests pass one
    # holding a ServiceAccount token, to run with exactly the chart's RBAC.
    kubeconfig: str | None = None
    ready_timeout: float = 240.0  # a generous deadline: start-up on a loaded 2-core machine
    env: dict[str, str] = field(default_factory=dict)
    """Set in the process's environment (e.g. POD_NAME, which the chart sets in a pod)."""

    def start(self, wait_ready: bool = True) -> None:
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        env.update(self.env)
        argv = [
            sys.executable, "-m", "vaultbridge.cli", "run",
            "--kubeconfig", self.kubeconfig or self.devenv.kubeconfig,
            "--namespace", OPERATOR_NAMESPACE,
            "--log-level", "debug",
            "--log-format", "json",
            "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
            "--health-bind-address", f"127.0.0.1:{self.health_port}",
            "--workers", "4",
            "--shutdown-grace-period", "10",
            *self.extra_args,
        ]  # fmt: skip
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        if not wait_ready:
            return
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"operator exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/readyz", timeout=1
                ) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"operator not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (one scrape; to compare
        two series of one moment, scrape once with `metrics()` and use `metric_in`)."""
        return metric_in(self.metrics(), name, **labels)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([0-9.eE+-]+|NaN)$")


def metric_in(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` in a scraped exposition `text` whose labels include
    `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


def start_operator(devenv: DevState, *extra: str) -> OperatorProcess:
    log_dir = Path(devenv.home) / "logs"
    op = OperatorProcess(
        devenv=devenv,
        log_path=log_dir / f"operator-{int(time.time() * 1000)}.log",
        metrics_port=processes.free_port(),
        health_port=processes.free_port(),
        extra_args=list(extra),
    )
    op.start()
    return op


def ensure_operator_namespace(admin: KubeAdmin, devenv: DevState) -> None:
    admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
    )
    body: dict[str, Any] = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultConnection",
        "metadata": {"name": "default", "namespace": OPERATOR_NAMESPACE},
        # Shared by every test namespace's VaultAuth, like a platform team's connection.
        "spec": {"address": devenv.vault_addr, "timeout": "5s", "allowedNamespaces": ["*"]},
    }
    path = f"{GROUP_PATH}/namespaces/{OPERATOR_NAMESPACE}/vaultconnections"
    status, existing = admin.request("GET", f"{path}/default")
    if status == 200:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        admin.request("PUT", f"{path}/default", body)
    else:
        admin.request("POST", path, body)


class VaultFixture:
    """Root-token helpers to prepare Vault for one test namespace."""

    def __init__(self, devenv: DevState, namespace: str) -> None:
        self.bao = BaoAdmin(devenv.vault_addr, devenv.vault_root_token)
        self.namespace = namespace
        self.role = f"role-{namespace}"

    def kv_put(self, path: str, data: dict[str, Any], mount: str = "secret") -> int:
        if mount == "kv1":
            self.bao.must("POST", f"kv1/{path}", data)
            return 0
        resp = self.bao.must("POST", f"{mount}/data/{path}", {"data": data})
        return int(resp["data"]["version"])

    def allow_role(self, paths: list[str], service_account: str = "default") -> None:
        policy = "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in paths)
        self.bao.must("PUT", f"sys/policies/acl/{self.role}", {"policy": policy})
        self.bao.must(
            "POST",
            f"auth/kubernetes/role/{self.role}",
            {
                "bound_service_account_names": [service_account],
                "bound_service_account_namespaces": [self.namespace],
                # The operator's tokens carry the Vault audience, never the API server's.
                "audience": "vault",
                "token_policies": [self.role],
                "token_ttl": "1h",
            },
        )


def crd_path(plural: str, namespace: str, name: str | None = None) -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:4000]


# --- a throwaway PostgreSQL for database secrets engines --------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL server on 127.0.0.1 (trust auth for the `postgres` superuser only over
    the Unix socket; TCP logins need a password, so a revoked Vault user really cannot log in).
    """

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    def login(self, user: str, password: str, sql: str = "SELECT current_user") -> tuple[int, str]:
        """Log in over TCP with psql; (exit code, output)."""
        env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
        proc = subprocess.run(
            [
                "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
                "-d", "postgres", "-tA", "-w", "-c", sql,
            ],
            env=env,
            capture_output=True,
            timeout=20,
            check=False,
        )  # fmt: skip
        return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace").strip()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # fast shutdown: Vault may still hold connections
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def postgres_binaries() -> tuple[str, str] | None:
    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    search = os.pathsep.join([*(str(d) for d in debian), os.environ.get("PATH", "")])
    initdb = shutil.which("initdb", path=search)
    postgres = shutil.which("postgres", path=search)
    if not initdb or not postgres or not shutil.which("psql"):
        return None
    return initdb, postgres


def start_postgres() -> Postgres:
    """initdb + postgres as the `postgres` user (the server refuses to run as root).

    Password authentication (scram) for TCP, so credentials Vault creates are really checked;
    the superuser password is set through the Unix socket, which trusts local connections.
    """
    found = postgres_binaries()
    if found is None:
        raise RuntimeError("PostgreSQL binaries missing (run scripts/ensure-postgres.sh)")
    initdb, postgres = found
    as_user: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="vb-pg-"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(work, pg.pw_uid, pg.pw_gid)
        as_user = {"user": pg.pw_uid, "group": pg.pw_gid}
    subprocess.run(
        [initdb, "-D", str(work / "data"), "-U", "postgres", "--no-sync",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True, capture_output=True, **as_user,
    )  # fmt: skip
    port = processes.free_port()
    log = (work / "log").open("wb")
    proc = subprocess.Popen(
        [postgres, "-D", str(work / "data"), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(work), "-c", "fsync=off"],
        stdout=log, stderr=log, **as_user,
    )  # fmt: skip
    server = Postgres(port, work, proc)
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            ["psql", "-h", str(work), "-p", str(port), "-U", "postgres", "-d", "postgres",
             "-tA", "-c", f"ALTER USER postgres PASSWORD '{PG_SUPERUSER_PASSWORD}'"],
            capture_output=True, check=False, **as_user,
        )  # fmt: skip
        if done.returncode == 0:
            return server
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"postgres did not start: {done.stderr.decode(errors='replace')}")
        time.sleep(0.2)


PG_SUPERUSER_PASSWORD = "pg-admin-for-vault-tests"
