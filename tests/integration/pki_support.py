"""The PKI secrets engine of one test (`PKI`): its mount with its own root CA on the dev
environment's OpenBao, the role `web`, and the app's VaultPKISecrets; `same_key` checks a key
against a certificate. Used by test_pki_secret.py and every module that needs certificates.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .helpers import App
from .operator_harness import dump

PLURAL = "vaultpkisecrets"
NOT_BEFORE = 10
"""The role backdates notBefore by this many seconds (clock skew allowance)."""


class PKI:
    """One test's PKI mount (own root CA, role `web` for *.example.com) and its objects."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.bao = app.vault.bao
        self.mount = f"pki-{app.ns}"
        self.bao.must(
            "POST", f"sys/mounts/{self.mount}", {"type": "pki", "config": {"max_lease_ttl": "24h"}}
        )
        root = self.bao.must(
            "POST",
            f"{self.mount}/root/generate/internal",
            {"common_name": f"Root {app.ns}", "key_type": "ec", "key_bits": 256, "ttl": "24h"},
        )
        self.ca = x509.load_pem_x509_certificate(root["data"]["certificate"].encode())
        self.bao.must(
            "POST",
            f"{self.mount}/roles/web",
            {
                "allowed_domains": ["example.com"],
                "allow_subdomains": True,
                "allow_ip_sans": True,
                "allowed_uri_sans": ["spiffe://example.com/*"],
                "key_type": "ec",
                "key_bits": 256,
                "max_ttl": "2h",
                "not_before_duration": f"{NOT_BEFORE}s",
            },
        )
        policy = f"""
path "{self.mount}/issue/web" {{ capabilities = ["update"] }}
path "{self.mount}/revoke" {{ capabilities = ["update"] }}
"""
        self.bao.must("PUT", f"sys/policies/acl/{app.vault.role}", {"policy": policy})

    def vps(self, name: str, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultPKISecret",
            "metadata": {"name": name},
            "spec": {
                "vaultAuthRef": "default",
                "mount": self.mount,
                "role": "web",
                "destination": {"name": name, "create": True},
                **spec,
            },
        }
        return self.app.create(PLURAL, body)

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.app.get(PLURAL, name) or {}).get("status") or {})

    def wait_synced(self, name: str, timeout: float = 30) -> dict[str, str]:
        self.app.wait_condition(name, "SecretSynced", "True", plural=PLURAL, timeout=timeout)
        data = self.app.secret_data(name)
        assert data is not None and data.get("certificate"), dump(self.status(name))
        return data

    def revocation_time(self, serial: str) -> int:
        resp = self.bao.must("GET", f"{self.mount}/cert/{serial}")
        return int(resp["data"].get("revocation_time") or 0)

    def crl(self) -> x509.CertificateRevocationList:
        """The mount's CRL, rebuilt first so that it lists every revocation so far."""
        self.bao.must("GET", f"{self.mount}/crl/rotate")
        resp = self.bao.must("GET", f"{self.mount}/cert/crl")
        return x509.load_pem_x509_crl(resp["data"]["certificate"].encode())

    def close(self) -> None:
        self.bao.call("DELETE", f"sys/mounts/{self.mount}")


def same_key(key_pem: str, cert: x509.Certificate) -> bool:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(serialization.Encoding.DER, spki)
        == cert.public_key().public_bytes(serialization.Encoding.DER, spki)
    )
