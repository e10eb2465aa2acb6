"""A tiny synchronous Kubernetes REST client for bootstrapping the dev environment.

The operator's own async client lives in `vaultbridge.kube`; the dev environment only needs a
handful of admin calls while no event loop runs, so it uses urllib with the admin certificate.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from .certs import CertPaths


class KubeAdmin:
    def __init__(self, server: str, certs: CertPaths) -> None:
        self.server = server
        self._ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        self._ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - https URL we built ourselves
            self.server + path, data=data, method=method
        )
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as err:
            raw = err.read()
            status = err.code
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode("utf-8", "replace")}
        return status, parsed if isinstance(parsed, dict) else {"items": parsed}

    def get_text(self, path: str, timeout: float = 5) -> tuple[int, str]:
        req = urllib.request.Request(self.server + path)  # noqa: S310
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:  # noqa: S310
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", "replace")

    def annotate(self, path: str, annotations: dict[str, str]) -> dict[str, Any]:
        """Set annotations on the object at `path` (read, then compare-and-swap write)."""
        for _attempt in range(5):
            status, obj = self.request("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path} failed with {status}: {obj.get('message', obj)}")
            obj.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
            status, obj = self.request("PUT", path, obj)
            if status == 200:
                return obj
            if status != 409:
                raise RuntimeError(f"PUT {path} failed with {status}: {obj.get('message', obj)}")
        raise RuntimeError(f"PUT {path}: conflict after 5 attempts")

    def opt_in_vault_login(self, namespace: str, service_account: str = "default") -> None:
        """Let the operator request tokens of this ServiceAccount for Vault logins (the
        `vaultbridge.dev/vault-login: "true"` annotation, docs/security.md)."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}"
        # `default` appears a moment after its namespace (kube-controller-manager creates it).
        deadline = time.monotonic() + 30
        while self.request("GET", path)[0] == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.annotate(path, {"vaultbridge.dev/vault-login": "true"})

    def ensure(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create the object at `path` (collection URL) unless it already exists."""
        status, obj = self.request("POST", path, body)
        if status in (200, 201):
            return obj
        if status == 409:
            name = body["metadata"]["name"]
            _, existing = self.request("GET", f"{path}/{name}")
            return existing
        raise RuntimeError(f"POST {path} failed with {status}: {obj.get('message', obj)}")
