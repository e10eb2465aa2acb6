"""`TLSBao`: a private `bao`/`vault server -dev -dev-tls` of the session's kind with its own CA
(the `tls_bao` fixture in conftest.py). Used by test_vault_tls.py and test_inject_agent.py.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class TLSBao:
    addr: str
    root_token: str
    ca_pem: bytes

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        req = urllib.request.Request(
            f"{self.addr}/v1/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
        )
        req.add_header("X-Vault-Token", self.root_token)
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}
