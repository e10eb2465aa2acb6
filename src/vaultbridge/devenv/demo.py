"""`make demo`: the whole product on one machine, from nothing to synced Secrets.

1. the dev environment (etcd, kube-apiserver, kube-controller-manager, OpenBao or — after
   `vaultbridge dev up --vault-server hashicorp` or with `VAULTBRIDGE_VAULT_SERVER=hashicorp` —
   HashiCorp Vault);
2. the CRDs, the operator namespace and a `default` VaultConnection pointing at that server;
3. Vault content and a Kubernetes-auth role for the `demo` namespace;
4. the operator, as a background process (log: <state>/logs/operator.log);
5. the resources in examples/, then the resulting Secrets (values masked);
6. a write to Vault, and the Secret following it.
The environment and the operator keep running; `vaultbridge dev down` stops both.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import environment, processes
from .certs import ensure_pki
from .crds import install_crds
from .environment import DevState, operator_pid_file
from .errors import DevEnvError
from .kubeapi import KubeAdmin
from .paths import controlplane_module_dir
from .vaultserver import VaultAdmin

OPERATOR_NAMESPACE = "vaultbridge-system"
DEMO_NAMESPACE = "demo"
SECRETS = ("db-credentials", "db-dsn", "app-config", "web-secret")


def _say(message: str) -> None:
    print(message, flush=True)


def examples_dir() -> Path:
    return controlplane_module_dir().parent.parent / "examples"


def _mask(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    if len(text) <= 4:
        return "****"
    return f"{text[:2]}{'*' * min(8, len(text) - 2)} ({len(text)} chars)"


def start_operator(state: DevState) -> int:
    """Start (or reuse) the demo operator as a detached process."""
    pid_file = operator_pid_file(state)
    if pid_file.exists():
        pid = int(pid_file.read_text().split()[0])
        if processes.alive(pid):
            return pid
    log = state.log_file("operator")
    health = processes.free_port()
    argv = [
        sys.executable, "-m", "vaultbridge.cli", "run",
        "--kubeconfig", state.kubeconfig,
        "--namespace", OPERATOR_NAMESPACE,
        "--log-format", "text",
        "--metrics-bind-address", f"127.0.0.1:{processes.free_port()}",
        "--health-bind-address", f"127.0.0.1:{health}",
    ]  # fmt: skip
    pid = processes.start("operator", argv, log)
    pid_file.write_text(f"{pid}\n")

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=1) as resp:
            return bool(resp.status == 200)

    processes.wait_until("operator", ready, pid=pid, log_file=log, timeout=60, what="ready")
    return pid


def _prepare_vault(state: DevState) -> VaultAdmin:
    bao = VaultAdmin(state.vault_addr, state.vault_root_token)
    bao.must("POST", "secret/data/demo/db", {"data": {"username": "app", "password": "s3cr3t-v1"}})
    bao.must("POST", "secret/data/demo/api", {"data": {"key": "api-key-v1", "region": "eu-1"}})
    policy = 'path "secret/data/demo/*" { capabilities = ["read"] }'
    bao.must("PUT", "sys/policies/acl/demo", {"policy": policy})
    bao.must("POST", "auth/kubernetes/role/demo", {
        "bound_service_account_names": ["default"],
        "bound_service_account_namespaces": [DEMO_NAMESPACE],
        "audience": "vault",  # the audience of the operator's tokens (never the API server's)
        "token_policies": ["demo"],
        "token_ttl": "1h",
    })  # fmt: skip
    return bao


def _prepare_cluster(state: DevState, admin: KubeAdmin) -> None:
    install_crds(admin)
    admin.ensure("/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE},
    })  # fmt: skip
    path = f"/apis/vaultbridge.dev/v1beta1/namespaces/{OPERATOR_NAMESPACE}/vaultconnections"
    body: dict[str, Any] = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultConnection",
        "metadata": {"name": "default", "namespace": OPERATOR_NAMESPACE},
        # The platform's connection: VaultAuths of every namespace may use it.
        "spec": {"address": state.vault_addr, "allowedNamespaces": ["*"]},
    }
    status, existing = admin.request("GET", f"{path}/default")
    if status == 200:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        admin.request("PUT", f"{path}/default", body)
    else:
        admin.request("POST", path, body)


def _kubectl(state: DevState, *args: str) -> str:
    cmd = [str(Path(state.bin_dir) / "kubectl"), "--kubeconfig", state.kubeconfig, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DevEnvError("kubectl", f"`kubectl {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _apply_examples(state: DevState) -> str:
    """`kubectl apply -f examples/`, once more if it raced the ServiceAccount controller.

    The examples create the `demo` namespace and annotate its `default` ServiceAccount in one
    apply; the ServiceAccount controller creates `default` as soon as the namespace exists, so
    apply's create can meet an AlreadyExists. A second apply patches the existing object."""
    try:
        return _kubectl(state, "apply", "-f", str(examples_dir()))
    except DevEnvError as exc:
        if "AlreadyExists" not in str(exc):
            raise
        return _kubectl(state, "apply", "-f", str(examples_dir()))


def _secret(admin: KubeAdmin, name: str) -> dict[str, bytes] | None:
    status, obj = admin.request("GET", f"/api/v1/namespaces/{DEMO_NAMESPACE}/secrets/{name}")
    if status != 200:
        return None
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def run_demo() -> int:
    _say("==> 1/6 dev environment (first run builds Kubernetes from source: minutes)")
    state = environment.up(log=lambda m: print(m, file=sys.stderr))
    admin = KubeAdmin(state.api_url, ensure_pki(state.pki_dir))
    _say(
        f"    API server {state.api_url}, "
        f"{state.vault_product} {state.vault_version} {state.vault_addr}"
    )
    _say("==> 2/6 CRDs, operator namespace, VaultConnection `default`")
    _prepare_cluster(state, admin)
    _say("==> 3/6 Vault: secret/demo/db, secret/demo/api, Kubernetes auth role `demo`")
    bao = _prepare_vault(state)
    _say("==> 4/6 operator")
    pid = start_operator(state)
    _say(f"    running as pid {pid}, log {state.log_file('operator')}")
    _say(f"==> 5/6 kubectl apply -f {examples_dir()}")
    _say("    " + _apply_examples(state).strip().replace("\n", "\n    "))
    if not _wait(lambda: all(_secret(admin, s) is not None for s in SECRETS), 60):
        _say(_kubectl(state, "get", "vaultstaticsecrets", "-n", DEMO_NAMESPACE))
        raise DevEnvError(
            "operator", "the example Secrets did not appear", state.log_file("operator")
        )
    _say(_kubectl(state, "get", "vaultstaticsecrets", "-n", DEMO_NAMESPACE))
    for name in SECRETS:
        data = _secret(admin, name) or {}
        _say(f"    Secret {DEMO_NAMESPACE}/{name}:")
        for key in sorted(data):
            _say(f"      {key:<16} {_mask(data[key])}")
    _say("==> 6/6 write a new password to Vault and watch the Secret follow")
    before = _secret(admin, "db-credentials") or {}
    started = time.monotonic()
    bao.must("POST", "secret/data/demo/db", {"data": {"username": "app", "password": "s3cr3t-v2"}})
    followed = _wait(
        lambda: (_secret(admin, "db-credentials") or {}).get("password") == b"s3cr3t-v2", 30
    )
    if not followed:
        raise DevEnvError(
            "operator", "the Secret did not follow the Vault write", state.log_file("operator")
        )
    after = (_secret(admin, "db-credentials") or {})["password"]
    _say(
        f"    db-credentials.password: {_mask(before.get('password', b''))} -> {_mask(after)}, "
        f"value changed: {'yes' if after != before.get('password') else 'no'}, "
        f"after {time.monotonic() - started:.1f}s (refreshAfter: 5s)"
    )
    bao.must("POST", "secret/data/demo/db", {"data": {"username": "app", "password": "s3cr3t-v1"}})
    _say("")
    _say("Everything keeps running. Try:")
    _say('  eval "$(.venv/bin/vaultbridge dev env)"')
    _say(f"  kubectl get vaultstaticsecrets,secrets -n {DEMO_NAMESPACE}")
    cli = "vault" if state.vault_server == "hashicorp" else "bao"
    _say(
        f"  {cli} kv put secret/demo/api key=new-key region=eu-1   "
        "# web-secret follows, web restarts"
    )
    _say(
        f"  kubectl get deploy web -n {DEMO_NAMESPACE} "
        "-o jsonpath='{.spec.template.metadata.annotations}'"
    )
    _say("Stop everything: .venv/bin/vaultbridge dev down")
    return 0


def main() -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        return run_demo()
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
