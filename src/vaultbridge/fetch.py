"""What each secret kind fetches from Vault: written once for both delivery targets.

The operator's reconcilers (controllers/) and `vaultbridge agent` (agent/) call these with a
logged-in `VaultClient` and the kind's spec model; each turns around one Vault request per
source, credential or certificate. Nothing here knows Kubernetes, the engine or the
controllers, so the agent imports it and stays light (tests/unit/test_import_contracts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.secrets import pipeline
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.models import KVSecret, VaultResponse


@dataclass(frozen=True, repr=False)
class SourceRead:
    """One KV source as read: its prefix and the secret (values redacted in reprs)."""

    prefix: str
    secret: KVSecret

    @property
    def version(self) -> int | None:
        return self.secret.version


async def read_kv_sources(client: VaultClient, spec: VaultStaticSecretSpec) -> list[SourceRead]:
    """Read every KV source of a VaultStaticSecret, in merge order (one request each)."""
    reads = []
    for source in spec.kv_sources():
        secret = await client.kv_read(
            source.mount,
            source.path,
            kv_version=source.kv_version,
            version=source.version or None,
        )
        reads.append(SourceRead(source.prefix, secret))
    return reads


def kv_pipeline_sources(reads: Sequence[SourceRead]) -> list[pipeline.Source]:
    """The pipeline's view of the KV reads (values, prefix, kv-v2 metadata, `_raw`)."""
    return [
        pipeline.Source(
            data=r.secret.data,
            prefix=r.prefix,
            metadata=r.secret.metadata or {},
            raw=r.secret.raw,
        )
        for r in reads
    ]


async def request_credentials(
    client: VaultClient, spec: VaultDynamicSecretSpec
) -> VaultResponse | None:
    """Ask a secrets engine for credentials (`requestHTTPMethod`, `params`); None when Vault
    answered a write without a body."""
    path = spec.request_path()
    method = spec.effective_http_method()
    if method == "GET":
        return await client.read(path, params=dict(spec.params) or None, operation="dynamic_read")
    return await client.write(path, dict(spec.params), method=method, operation="dynamic_write")


def issue_request(spec: VaultPKISecretSpec) -> dict[str, Any]:
    """The body of `<mount>/issue/<role>`: only what the spec sets, so role defaults apply."""
    body: dict[str, Any] = {"format": spec.format}
    if spec.common_name:
        body["common_name"] = spec.common_name
    for field, values in (
        ("alt_names", spec.alt_names),
        ("ip_sans", spec.ip_sans),
        ("uri_sans", spec.uri_sans),
        ("other_sans", spec.other_sans),
    ):
        if values:
            body[field] = ",".join(values)
    if spec.ttl is not None:
        body["ttl"] = spec.ttl
    if spec.private_key_format:
        body["private_key_format"] = spec.private_key_format
    if spec.not_after:
        body["not_after"] = spec.not_after
    if spec.exclude_cn_from_sans:
        body["exclude_cn_from_sans"] = True
    return body


async def issue_certificate(client: VaultClient, spec: VaultPKISecretSpec) -> VaultResponse | None:
    """Issue a certificate at `<mount>/issue/<role>`."""
    return await client.write(
        spec.issue_path(), issue_request(spec), method="POST", operation="pki_issue"
    )


async def revoke_certificate(client: VaultClient, spec: VaultPKISecretSpec, serial: str) -> None:
    """Revoke a certificate by serial at `<mount>/revoke`."""
    await client.write(
        spec.revoke_path(), {"serial_number": serial}, method="POST", operation="pki_revoke"
    )
