"""Bring up the dev environment with audit logs and prepare what every scenario shares.

The operator gets its own client certificate (user `vaultbridge-operator`, group
`system:masters`) so the API server's audit log tells its requests apart from the bench's,
which use the dev admin certificate.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from vaultbridge.devenv import crds, environment
from vaultbridge.devenv.certs import CertPaths, ensure_pki, issue_certificate, load_ca
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.vaultserver import VaultAdmin as BaoAdmin

OPERATOR_NAMESPACE = "vaultbridge-system"
OPERATOR_USER = "vaultbridge-operator"
GROUP_PATH = "/apis/vaultbridge.dev/v1beta1"
ROLE = "bench"
_REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchEnv:
    state: DevState
    certs: CertPaths
    operator_kubeconfig: Path
    role: str = ROLE

    @property
    def logs(self) -> Path:
        path = Path(self.state.home) / "bench"
        path.mkdir(exist_ok=True)
        return path

    def profile_path(self) -> str:
        # One file per operator process (a run starts several), collapsed stacks.
        return str(self.logs / f"operator-profile-{time.time_ns()}.txt")

    @property
    def audited(self) -> bool:
        return self.state.audit

    def admin(self) -> KubeAdmin:
        return KubeAdmin(self.state.api_url, self.certs)

    def bao(self) -> BaoAdmin:
        return BaoAdmin(self.state.vault_addr, self.state.vault_root_token)


def prepare(
    state: DevState | None = None,
    log: object = print,
    vault_server: str | None = None,
    home: Path | None = None,
) -> BenchEnv:
    """Use `state` if given (the test session's environment), else `up(audit=True)` with the
    chosen Vault server (`vault_server`, see `environment.up`) in `home` (default
    `$VAULTBRIDGE_DEV_HOME`)."""
    if state is None:
        state = environment.up(audit=True, vault_server=vault_server, log=log, home=home)
    certs = ensure_pki(state.pki_dir)
    admin = KubeAdmin(state.api_url, certs)
    crds.install_crds(admin, _REPO / "deploy" / "crds")
    _operator_namespace(admin, state)
    env = BenchEnv(state, certs, _operator_kubeconfig(state, certs))
    _vault_role(env.bao())
    return env


def _operator_namespace(admin: KubeAdmin, state: DevState) -> None:
    admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
    )
    path = f"{GROUP_PATH}/namespaces/{OPERATOR_NAMESPACE}/vaultconnections"
    body = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultConnection",
        "metadata": {"name": "default", "namespace": OPERATOR_NAMESPACE},
        "spec": {"address": state.vault_addr, "timeout": "10s", "allowedNamespaces": ["*"]},
    }
    status, existing = admin.request("GET", f"{path}/default")
    if status == 200:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]  # type: ignore[index]
        admin.request("PUT", f"{path}/default", body)
    else:
        admin.request("POST", path, body)


def _operator_kubeconfig(state: DevState, certs: CertPaths) -> Path:
    # Written on every run: the API server's port changes whenever the environment restarts.
    path = Path(state.home) / "bench" / "operator.kubeconfig"
    path.parent.mkdir(exist_ok=True)
    ca_cert, ca_key = load_ca(certs)
    cert, key = issue_certificate(
        ca_cert, ca_key, common_name=OPERATOR_USER, organization="system:masters", client=True
    )

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dev",
                "cluster": {
                    "server": state.api_url,
                    "certificate-authority-data": b64(certs.ca_cert.read_bytes()),
                },
            }
        ],
        "users": [
            {
                "name": OPERATOR_USER,
                "user": {
                    "client-certificate-data": b64(cert.public_bytes(serialization.Encoding.PEM)),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": OPERATOR_USER}}],
        "current-context": "dev",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def _vault_role(bao: BaoAdmin) -> None:
    policy = 'path "secret/data/bench/*" { capabilities = ["read"] }'
    bao.must("PUT", f"sys/policies/acl/{ROLE}", {"policy": policy})
    bao.must(
        "POST",
        f"auth/kubernetes/role/{ROLE}",
        {
            "bound_service_account_names": ["default"],
            "bound_service_account_namespaces": ["*"],
            "audience": "vault",
            "token_policies": [ROLE],
            "token_ttl": "1h",
        },
    )
