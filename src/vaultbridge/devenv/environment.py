"""`vaultbridge dev up | down | status | env`: the local control plane and a Vault server.

Components, in start order: etcd → kube-apiserver → kube-controller-manager → vault (OpenBao,
or HashiCorp Vault CE with `--vault-server hashicorp`; see `vaultserver`). The
state directory (`$VAULTBRIDGE_DEV_HOME`, default `~/.cache/vaultbridge/dev`) holds the PKI,
kubeconfig, data directories, one log per process and `state.json` (ports, pids, tokens).
`up` is idempotent: a running, healthy environment is reused as it is.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import audit_stream, processes
from .build import ensure_binaries
from .certs import CertPaths, ensure_pki
from .errors import DevEnvError
from .kubeapi import KubeAdmin
from .paths import K8S_VERSION, state_dir
from .vaultserver import (
    PRODUCT,
    VaultAdmin,
    dev_server_argv,
    read_unseal_key,
    resolve_server,
    server_binary,
    server_env,
)

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
TOKEN_REVIEWER = ("kube-system", "vaultbridge-token-reviewer")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "vault")
_CONTROLLERS = (
    "garbagecollector",
    "deployment",
    "replicaset",
    "serviceaccount",
    "serviceaccount-token",
    "namespace",
    "clusterrole-aggregation",
)


@dataclass
class DevState:
    """What `up` started; persisted as state.json so other processes can find it."""

    home: str
    bin_dir: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    vault_root_token: str = ""
    vault_unseal_key: str | None = None
    audit: bool = False
    audit_stream_prefix: str = ""  # the socket audit device's prefix (devenv/audit_stream.py)
    #: Which Vault server runs as the `vault` component: "openbao" or "hashicorp".
    vault_server: str = "openbao"
    vault_binary: str = ""
    vault_version: str = ""

    @property
    def vault_product(self) -> str:
        return PRODUCT.get(self.vault_server, self.vault_server)

    @property
    def kubeconfig(self) -> str:
        return str(Path(self.home) / "kubeconfig")

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def vault_addr(self) -> str:
        return f"http://127.0.0.1:{self.ports['vault']}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['etcd']}"

    def log_file(self, component: str) -> Path:
        return Path(self.home) / "logs" / f"{component}.log"

    @property
    def pki_dir(self) -> Path:
        return Path(self.home) / "pki"

    @property
    def audit_log(self) -> Path:
        return Path(self.home) / "logs" / "kube-apiserver-audit.log"

    @property
    def vault_audit_log(self) -> Path:
        return Path(self.home) / "logs" / "vault-audit.log"


def _state_file(home: Path) -> Path:
    return home / "state.json"


def load_state(home: Path | None = None) -> DevState | None:
    home = home or state_dir()
    path = _state_file(home)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    raw["home"] = str(home)
    # State written before the Vault server became selectable named the component "openbao".
    for key in ("pids", "ports"):
        if "openbao" in raw.get(key, {}):
            raw[key]["vault"] = raw[key].pop("openbao")
    known = set(DevState.__dataclass_fields__)
    return DevState(**{k: v for k, v in raw.items() if k in known})


def _save(state: DevState) -> None:
    path = _state_file(Path(state.home))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)


def is_running(state: DevState | None) -> bool:
    if state is None or set(state.pids) != set(COMPONENTS):
        return False
    if not all(processes.alive(state.pids[c]) for c in COMPONENTS):
        return False
    try:
        admin = KubeAdmin(state.api_url, ensure_pki(state.pki_dir))
        status, _ = admin.get_text("/readyz")
        return status == 200 and VaultAdmin(state.vault_addr, state.vault_root_token).healthy()
    except Exception:
        return False


def up(
    *,
    audit: bool = False,
    vault_server: str | None = None,
    log: Any = print,
    home: Path | None = None,
) -> DevState:
    """Start the environment, or reuse the running one if it has the same Vault server and
    audit setting. `vault_server`: "openbao" | "hashicorp"; None means `$VAULTBRIDGE_VAULT_SERVER`,
    else the running environment's server, else OpenBao. `home`: the state directory (default
    `$VAULTBRIDGE_DEV_HOME`, see `paths.state_dir`)."""
    home = home or state_dir()
    existing = load_state(home)
    running = is_running(existing)
    server = resolve_server(vault_server, existing.vault_server if running and existing else None)
    if (
        running
        and existing is not None
        and existing.audit == audit
        and existing.vault_server == server
        and "audit-stream" in existing.ports
    ):
        return existing
    if existing is not None:
        down(existing)
    bin_dir = ensure_binaries()
    # Before anything starts: building HashiCorp Vault the first time takes many minutes.
    binary = server_binary(server)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    (home / "logs").mkdir(exist_ok=True)
    state = DevState(
        home=str(home), bin_dir=str(bin_dir), audit=audit, vault_server=server, vault_binary=binary
    )
    certs = ensure_pki(state.pki_dir)
    state.ports = {
        "etcd": processes.free_port(),
        "etcd-peer": processes.free_port(),
        "kube-apiserver": processes.free_port(),
        "kube-controller-manager": processes.free_port(),
        "vault": processes.free_port(),
        "audit-stream": audit_stream.free_udp_port(),
    }
    state.audit_stream_prefix = audit_stream.new_prefix()
    state.vault_root_token = "root-" + secrets.token_hex(12)
    for component in COMPONENTS:
        state.log_file(component).write_text("")
    try:
        _start_etcd(state)
        _save(state)
        _start_apiserver(state, certs)
        _save(state)
        _write_kubeconfig(state, certs)
        _start_controller_manager(state, certs)
        _save(state)
        _start_vault(state, certs)
        _save(state)
    except BaseException:
        _save(state)
        down(state)
        raise
    log(
        f"dev environment up: API server {state.api_url}, "
        f"{state.vault_product} {state.vault_version} {state.vault_addr}"
    )
    return state


def _start_etcd(state: DevState) -> None:
    data = Path(state.home) / "etcd-data"
    # The environment is disposable: a fresh start gets a fresh store.
    shutil.rmtree(data, ignore_errors=True)
    client = state.etcd_url
    peer = f"http://127.0.0.1:{state.ports['etcd-peer']}"
    argv = [
        str(Path(state.bin_dir) / "etcd"),
        "--name=default",
        f"--data-dir={data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        # Test data is disposable; fsync on every write only slows the tests down.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=4294967296",
    ]
    log = state.log_file("etcd")
    pid = processes.start("etcd", argv, log)
    state.pids["etcd"] = pid

    def healthy() -> bool:
        with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:  # noqa: S310
            return bool(json.loads(resp.read()).get("health") == "true")

    processes.wait_until("etcd", healthy, pid=pid, log_file=log, timeout=30, what="healthy")


def _encryption_config(state: DevState) -> Path:
    key_file = state.pki_dir / "secretbox.key"
    if not key_file.exists():
        key_file.write_text(base64.b64encode(os.urandom(32)).decode())
        key_file.chmod(0o600)
    config = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {"secretbox": {"keys": [{"name": "key1", "secret": key_file.read_text()}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    path = state.pki_dir / "encryption-config.yaml"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def _audit_policy(state: DevState) -> Path:
    # Metadata level is enough to count requests by user and verb and never records bodies.
    policy = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata"}],
    }
    path = Path(state.home) / "audit-policy.yaml"
    path.write_text(json.dumps(policy))
    return path


def _start_apiserver(state: DevState, certs: CertPaths) -> None:
    port = state.ports["kube-apiserver"]
    argv = [
        str(Path(state.bin_dir) / "kube-apiserver"),
        f"--etcd-servers={state.etcd_url}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        f"--client-ca-file={certs.ca_cert}",
        f"--tls-cert-file={certs.server_cert}",
        f"--tls-private-key-file={certs.server_key}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={certs.sa_pub}",
        f"--service-account-signing-key-file={certs.sa_key}",
        f"--encryption-provider-config={_encryption_config(state)}",
        "--allow-privileged=true",
        "--profiling=false",
        "--watch-cache=true",
    ]
    if state.audit:
        argv += [
            f"--audit-policy-file={_audit_policy(state)}",
            f"--audit-log-path={state.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
        ]
    log = state.log_file("kube-apiserver")
    pid = processes.start("kube-apiserver", argv, log)
    state.pids["kube-apiserver"] = pid
    admin = KubeAdmin(state.api_url, certs)
    processes.wait_until(
        "kube-apiserver",
        lambda: admin.get_text("/readyz")[0] == 200,
        pid=pid,
        log_file=log,
        timeout=120,
        what="ready (/readyz)",
    )


def _kubeconfig(server: str, certs: CertPaths) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "vaultbridge-dev",
                "cluster": {"server": server, "certificate-authority-data": b64(certs.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "vaultbridge-dev-admin",
                "user": {
                    "client-certificate-data": b64(certs.admin_cert),
                    "client-key-data": b64(certs.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "vaultbridge-dev",
                "context": {"cluster": "vaultbridge-dev", "user": "vaultbridge-dev-admin"},
            }
        ],
        "current-context": "vaultbridge-dev",
    }


def _write_kubeconfig(state: DevState, certs: CertPaths) -> None:
    path = Path(state.kubeconfig)
    path.write_text(json.dumps(_kubeconfig(state.api_url, certs), indent=2))
    path.chmod(0o600)


def _start_controller_manager(state: DevState, certs: CertPaths) -> None:
    argv = [
        str(Path(state.bin_dir) / "kube-controller-manager"),
        f"--kubeconfig={state.kubeconfig}",
        f"--authentication-kubeconfig={state.kubeconfig}",
        f"--authorization-kubeconfig={state.kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={state.ports['kube-controller-manager']}",
        "--leader-elect=false",
        f"--controllers={','.join(_CONTROLLERS)}",
        f"--service-account-private-key-file={certs.sa_key}",
        f"--root-ca-file={certs.ca_cert}",
        "--use-service-account-credentials=false",
        # Faster garbage collection and namespace cleanup keep the tests quick.
        "--concurrent-gc-syncs=10",
        "--concurrent-namespace-syncs=5",
    ]
    log = state.log_file("kube-controller-manager")
    pid = processes.start("kube-controller-manager", argv, log)
    state.pids["kube-controller-manager"] = pid
    admin = KubeAdmin(state.api_url, certs)
    processes.wait_until(
        "kube-controller-manager",
        lambda: (
            admin.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
        ),
        pid=pid,
        log_file=log,
        timeout=90,
        what="ready (the `default` ServiceAccount was not created)",
    )


def _token_reviewer_jwt(admin: KubeAdmin) -> str:
    namespace, name = TOKEN_REVIEWER
    admin.ensure(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    admin.ensure(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "vaultbridge-token-reviewer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    status, resp = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 365 * 24 * 3600},
        },
    )
    if status != 201:
        raise DevEnvError("kube-apiserver", f"TokenRequest for the token reviewer failed: {resp}")
    return str(resp["status"]["token"])


def _start_vault(state: DevState, certs: CertPaths) -> None:
    """Start the selected server in dev mode and configure it; the same steps for both."""
    log = state.log_file("vault")
    config = None
    if state.vault_server == "openbao":
        # OpenBao takes audit devices from its config file only: always a file device and the
        # UDP socket device the operator's audit stream receives (instant updates; UDP never
        # blocks OpenBao). HashiCorp Vault gets the same two through sys/audit (configure).
        config = audit_stream.audit_devices_config(
            Path(state.home) / "openbao-audit.hcl",
            state.vault_audit_log,
            state.ports["audit-stream"],
            state.audit_stream_prefix,
        )
    pid = processes.start(
        "vault",
        dev_server_argv(state.vault_binary, state.ports["vault"], state.vault_root_token, config),
        log,
        env=server_env(Path(state.home)),
        cwd=Path(state.home),
    )
    state.pids["vault"] = pid
    admin = VaultAdmin(state.vault_addr, state.vault_root_token)
    processes.wait_until("vault", admin.healthy, pid=pid, log_file=log, timeout=60, what="unsealed")
    state.vault_version = admin.check_version(state.vault_server)
    # The banner with the unseal key is printed just after the server starts answering.
    processes.wait_until(
        "vault",
        lambda: read_unseal_key(log) is not None,
        pid=pid,
        log_file=log,
        timeout=10,
        what="printing its unseal key",
    )
    state.vault_unseal_key = read_unseal_key(log)
    kube = KubeAdmin(state.api_url, certs)
    admin.configure(
        server=state.vault_server,
        kube_host=state.api_url,
        kube_ca_pem=certs.ca_cert.read_text(),
        reviewer_jwt=_token_reviewer_jwt(kube),
        issuer=SA_ISSUER,
        sa_public_key_pem=certs.sa_pub.read_text(),
        audit_log=state.vault_audit_log,
        audit_stream=(state.ports["audit-stream"], state.audit_stream_prefix),
    )


def operator_pid_file(state: DevState) -> Path:
    """Where the demo operator (`make demo`) records its pid; `down` stops it too."""
    return Path(state.home) / "operator.pid"


def stop_operator(state: DevState) -> bool:
    pid_file = operator_pid_file(state)
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    was_running = processes.alive(pid)
    processes.stop(pid)
    pid_file.unlink(missing_ok=True)
    return was_running


def down(state: DevState | None = None) -> list[str]:
    state = state or load_state()
    if state is None:
        return []
    stopped = []
    if stop_operator(state):
        stopped.append("operator (demo)")
    # Reverse order: nothing talks to a server that is already gone for long.
    for component in reversed(COMPONENTS):
        pid = state.pids.get(component)
        if pid and processes.alive(pid):
            processes.stop(pid)
            stopped.append(component)
    state.pids = {}
    if Path(state.home).exists():
        _save(state)
    return stopped


def status(state: DevState | None = None) -> list[dict[str, Any]]:
    state = state or load_state()
    if state is None:
        return [{"component": c, "state": "not started"} for c in COMPONENTS]
    rows = []
    for component in COMPONENTS:
        pid = state.pids.get(component)
        row: dict[str, Any] = {
            "component": component,
            "state": "running" if processes.alive(pid) else "stopped",
            "pid": pid,
            "port": state.ports.get(component),
            "version": _version(state, component) if processes.alive(pid) else "",
            "log": str(state.log_file(component)),
        }
        rows.append(row)
    return rows


def _version(state: DevState, component: str) -> str:
    try:
        if component == "etcd":
            with urllib.request.urlopen(f"{state.etcd_url}/version", timeout=2) as resp:  # noqa: S310
                return str(json.loads(resp.read()).get("etcdserver", "?"))
        if component == "kube-apiserver":
            admin = KubeAdmin(state.api_url, ensure_pki(state.pki_dir))
            return str(admin.request("GET", "/version")[1].get("gitVersion", "?"))
        if component == "kube-controller-manager":
            return K8S_VERSION
        if component == "vault":
            version = VaultAdmin(state.vault_addr, state.vault_root_token).version()
            return f"{state.vault_product} {version}"
    except Exception:
        return "?"
    return "?"


def env_lines(state: DevState) -> list[str]:
    path = os.environ.get("PATH", "")
    return [
        f"export KUBECONFIG={state.kubeconfig}",
        f"export VAULT_ADDR={state.vault_addr}",
        f"export VAULT_TOKEN={state.vault_root_token}",
        f"export BAO_ADDR={state.vault_addr}",
        f"export BAO_TOKEN={state.vault_root_token}",
        f"export PATH={':'.join(_path_dirs(state))}:{path}",
        *(
            [
                "export VAULTBRIDGE_AUDIT_STREAM_LISTEN="
                + audit_stream.listen_address(state.ports["audit-stream"]),
                f"export VAULTBRIDGE_AUDIT_STREAM_PREFIX={shlex.quote(state.audit_stream_prefix)}",
            ]
            if "audit-stream" in state.ports
            else []
        ),
    ]


def _path_dirs(state: DevState) -> list[str]:
    """kubectl's directory, and `vault`'s when HashiCorp Vault runs (`bao` is in the venv)."""
    dirs = [state.bin_dir]
    if state.vault_server == "hashicorp" and state.vault_binary:
        dirs.append(str(Path(state.vault_binary).parent))
    return dirs


def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


# --- fault injection: stop and start one component of a running environment -------------------

#: Components that can be stopped and started again without losing state: the API server and
#: the controller manager keep nothing of their own (everything lives in etcd). etcd (wiped on
#: start) and the Vault server (in-memory dev storage) cannot; freeze them with SIGSTOP instead.
RESTARTABLE = ("kube-apiserver", "kube-controller-manager")


def stop_component(state: DevState, component: str) -> None:
    """Stop one component (SIGTERM, then SIGKILL); its port stays reserved in the state."""
    if component not in RESTARTABLE:
        raise DevEnvError(component, f"only {', '.join(RESTARTABLE)} can be stopped and started")
    processes.stop(state.pids.pop(component, None))
    _save(state)


def start_component(state: DevState, component: str) -> None:
    """Start a stopped component again on the same port, against the same etcd."""
    if component not in RESTARTABLE:
        raise DevEnvError(component, f"only {', '.join(RESTARTABLE)} can be stopped and started")
    if processes.alive(state.pids.get(component)):
        return
    certs = ensure_pki(state.pki_dir)
    # The port was released a moment ago; wait until nothing listens on it any more.
    wait_for(lambda: not processes.port_in_use(state.ports[component]), 30)
    if component == "kube-apiserver":
        _start_apiserver(state, certs)
    else:
        _start_controller_manager(state, certs)
    _save(state)


def restart_component(state: DevState, component: str) -> None:
    """Stop and start one component (see `RESTARTABLE`); returns once it is ready again."""
    stop_component(state, component)
    start_component(state, component)
