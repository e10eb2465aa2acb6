"""The webhook's serving certificate: a self-signed CA kept in a Secret, a short-lived leaf
issued from it, and the `caBundle` of the ValidatingWebhookConfiguration kept current.

Why self-managed: the API server must trust the webhook before the operator can serve a single
review, and requiring cert-manager for that would make it a hard dependency. The CA lives in a
Secret in the operator namespace so every replica (and every restart) serves certificates the
API server already trusts. When the CA itself nears its end, a new one is made and the bundle
carries both the new and the previous CA until the old one has expired, so rotation never opens
a window in which the API server distrusts the serving certificate.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import Conflict, KubeError, NotFound
from vaultbridge.kube.resources import SECRETS

from .webhook_config import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
    sync_ca_bundle,
)

log = logging.getLogger(__name__)

CA_VALIDITY = dt.timedelta(days=365)
CA_RENEW_BEFORE = dt.timedelta(days=90)
LEAF_VALIDITY = dt.timedelta(days=30)
LEAF_RENEW_BEFORE = dt.timedelta(days=10)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CAMaterial:
    cert_pem: bytes
    key_pem: bytes
    bundle_pem: bytes
    """Current CA first, then the previous one while it is still valid."""

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def expires(self) -> dt.datetime:
        return self.cert.not_valid_after_utc


def new_ca(common_name: str, previous: CAMaterial | None = None) -> CAMaterial:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    bundle = cert_pem
    if previous is not None and previous.expires() > now:
        bundle += previous.cert_pem
    return CAMaterial(cert_pem, _key_pem(key), bundle)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue_leaf(ca: CAMaterial, hosts: Sequence[str]) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) of a serving certificate for `hosts` (DNS names and IPs)."""
    ca_cert = ca.cert
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = _now()
    not_after = min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def leaf_needs_renewal(cert_pem: bytes | None, ca: CAMaterial, hosts: Sequence[str]) -> bool:
    if not cert_pem:
        return True
    cert = x509.load_pem_x509_certificate(cert_pem)
    if cert.issuer != ca.cert.subject:
        return True
    if cert.not_valid_after_utc - _now() < LEAF_RENEW_BEFORE:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    return have != set(hosts)


class CertManager:
    """Keeps the CA Secret, the serving certificate files, the SSL context and the caBundle
    current. `ensure()` once before serving, then `run()` for the life of the process."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        ca_secret: str,
        hosts: Sequence[str],
        cert_dir: str = "",
        webhook_config: str = "",
        check_interval: float = 3600.0,
        mutating_config: str = "",
    ) -> None:
        if not hosts:
            raise ValueError("the serving certificate needs at least one host")
        self.kube = kube
        self.namespace = namespace
        self.ca_secret = ca_secret
        self.hosts = list(hosts)
        # Without a directory the key pair only passes through a private temporary directory
        # that is removed as soon as the SSL context has loaded it: no private key is left on
        # disk.
        self.cert_dir = Path(cert_dir) if cert_dir else None
        self.webhook_config = webhook_config
        self.mutating_config = mutating_config
        self.check_interval = check_interval
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca: CAMaterial | None = None
        self._leaf_pem: bytes | None = None
        self._bundle_synced = False

    @property
    def ready(self) -> bool:
        return self._leaf_pem is not None

    async def ensure(self) -> None:
        """Make everything current now (CA, leaf, files, SSL context, caBundle)."""
        self.ca = await self._ensure_ca()
        if leaf_needs_renewal(self._leaf_pem, self.ca, self.hosts):
            cert_pem, key_pem = await asyncio.to_thread(issue_leaf, self.ca, self.hosts)
            await asyncio.to_thread(self._install_leaf, cert_pem, key_pem)
            self._leaf_pem = cert_pem
            log.info("webhook serving certificate issued for %s", ", ".join(self.hosts))
        for resource, name in (
            (VALIDATING_WEBHOOK_CONFIGURATIONS, self.webhook_config),
            (MUTATING_WEBHOOK_CONFIGURATIONS, self.mutating_config),
        ):
            if not name:
                continue
            try:
                changed = await sync_ca_bundle(self.kube, name, self.ca.bundle_pem, resource)
            except NotFound:
                log.warning("%s %s does not exist: caBundle not set", resource.kind, name)
            else:
                if changed:
                    log.info("caBundle of %s updated", name)

    def _install_leaf(self, cert_pem: bytes, key_pem: bytes) -> None:
        if self.cert_dir is None:
            with tempfile.TemporaryDirectory(prefix="vaultbridge-webhook-") as tmp:
                self._write_and_load(Path(tmp), cert_pem, key_pem)
        else:
            self._write_and_load(self.cert_dir, cert_pem, key_pem)

    def _write_and_load(self, directory: Path, cert_pem: bytes, key_pem: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = directory / "tls.crt", directory / "tls.key"
        # Write-then-rename: a reader of the directory never sees half a key pair.
        for path, data in ((key_file, key_pem), (cert_file, cert_pem)):
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            tmp.replace(path)
        # New handshakes use the new pair; open connections keep theirs.
        self.ssl_context.load_cert_chain(cert_file, key_file)

    async def _ensure_ca(self) -> CAMaterial:
        for _attempt in range(3):
            current: CAMaterial | None = None
            resource_version = ""
            try:
                secret = await self.kube.get(SECRETS, self.ca_secret, self.namespace)
            except NotFound:
                secret = None
            if secret is not None:
                data = secret.get("data") or {}
                resource_version = str((secret.get("metadata") or {}).get("resourceVersion"))
                try:
                    current = CAMaterial(
                        base64.b64decode(data["ca.crt"]),
                        base64.b64decode(data["ca.key"]),
                        base64.b64decode(data.get("ca-bundle.crt") or data["ca.crt"]),
                    )
                    current.cert  # noqa: B018 - parse check
                except (KeyError, ValueError):
                    log.warning(
                        "CA Secret %s/%s unreadable: replacing", self.namespace, self.ca_secret
                    )
                    current = None
            if current is not None and current.expires() - _now() > CA_RENEW_BEFORE:
                return current
            fresh = await asyncio.to_thread(new_ca, "vaultbridge-webhook-ca", current)
            metadata: dict[str, Any] = {
                "name": self.ca_secret,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/part-of": "vaultbridge"},
            }
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": "Opaque",
                "data": {
                    "ca.crt": base64.b64encode(fresh.cert_pem).decode(),
                    "ca.key": base64.b64encode(fresh.key_pem).decode(),
                    "ca-bundle.crt": base64.b64encode(fresh.bundle_pem).decode(),
                },
            }
            try:
                if secret is None:
                    await self.kube.create(SECRETS, body, self.namespace)
                else:
                    # A merge patch carrying the resourceVersion is a compare-and-swap.
                    patch = {
                        "metadata": {"resourceVersion": resource_version},
                        "data": body["data"],
                    }
                    await self.kube.patch(SECRETS, self.ca_secret, patch, self.namespace)
            except Conflict:
                continue  # another replica won the race: use its CA
            log.info(
                "webhook CA %s in Secret %s/%s",
                "rotated" if current else "created",
                self.namespace,
                self.ca_secret,
            )
            return fresh
        raise KubeError(f"could not create the webhook CA Secret {self.namespace}/{self.ca_secret}")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.ensure()
            except (KubeError, OSError, ssl.SSLError) as exc:
                log.warning("webhook certificate check failed (retrying later): %s", exc)
