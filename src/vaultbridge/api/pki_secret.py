"""VaultPKISecret: certificates issued by Vault's PKI engine, rotated before they expire."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from vaultbridge.api.common import (
    VaultPath,
)
from vaultbridge.api.destination import SyncedSecretSpec, SyncedSecretStatus
from vaultbridge.api.duration import Duration, parse_duration
from vaultbridge.vault.paths import request_path

CertFormat = Literal["pem", "der", "pem_bundle"]
PrivateKeyFormat = Literal["", "der", "pkcs8"]
ISSUER_REF_PATTERN = r"^[A-Za-z0-9_-]+$"
"""A PKI issuer: its name or ID (Vault allows letters, digits, `-` and `_` in names; IDs are
UUIDs), or `default`. It becomes one segment of the request path, so nothing else passes."""
NOT_AFTER_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

SanList = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=512)]], Field(max_length=128)
]


class VaultPKISecretSpec(SyncedSecretSpec):
    """A certificate and its private key issued by a Vault PKI role."""

    mount: VaultPath
    """Mount of the PKI secrets engine, such as `pki`."""
    role: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """PKI role that issues the certificate."""
    issuer_ref: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ISSUER_REF_PATTERN)]
        | None
    ) = None
    """PKI issuer that signs the certificate, by name or ID (`default`: the mount's default
    issuer). Unset: the role's issuer (Vault's `issue/<role>`); set: Vault's
    `issuer/<issuerRef>/issue/<role>`, which the Vault policy must allow."""
    common_name: Annotated[str, StringConstraints(max_length=512)] | None = None
    """Common name (CN) of the certificate."""
    alt_names: SanList = Field(default_factory=list)
    """DNS names and email addresses added as subject alternative names."""
    ip_sans: SanList = Field(default_factory=list)
    """IP addresses added as subject alternative names."""
    uri_sans: SanList = Field(default_factory=list)
    """URIs added as subject alternative names."""
    other_sans: SanList = Field(default_factory=list)
    """Other SANs, in Vault's `oid;type:value` form."""
    ttl: Duration | None = None
    """Requested lifetime of the certificate, as a duration such as 720h. Unset uses the role's
    default."""
    format: CertFormat = "pem"
    """Encoding of the certificate: pem, der or pem_bundle."""
    private_key_format: PrivateKeyFormat = ""
    """Encoding of the private key: empty (same as format), der or pkcs8."""
    not_after: (
        Annotated[str, StringConstraints(max_length=20, pattern=NOT_AFTER_PATTERN)] | None
    ) = None
    """Fixed expiry date of the certificate, in UTC as YYYY-MM-DDTHH:MM:SSZ."""
    exclude_cn_from_sans: bool = Field(default=False, alias="excludeCNFromSans")
    """Do not add the common name to the subject alternative names."""
    expiry_offset: Duration = "5m"
    """Issue a new certificate this long before the current one expires, as a duration."""
    revoke: bool = False
    """Revoke the certificate in Vault when it is replaced or this object is deleted."""
    clear: bool = False
    """Empty the Secret's data when this object is deleted."""

    @property
    def ttl_seconds(self) -> float | None:
        return None if self.ttl is None else parse_duration(self.ttl)

    @property
    def expiry_offset_seconds(self) -> float:
        return parse_duration(self.expiry_offset)

    def issue_path(self) -> str:
        """The Vault API path a certificate is issued from: `mount/issue/role`, or with an
        issuer `mount/issuer/<issuerRef>/issue/role`."""
        if self.issuer_ref:
            return request_path(self.mount, "issuer", self.issuer_ref, "issue", self.role)
        return request_path(self.mount, "issue", self.role)

    def revoke_path(self) -> str:
        return request_path(self.mount, "revoke")

    def vault_paths(self) -> list[str]:
        """The Vault API paths this spec requests: what path policies judge (issuing; the
        revocation of a certificate it issued is not judged again)."""
        return [self.issue_path()]


class VaultPKISecretStatus(SyncedSecretStatus):
    """The certificate last issued."""

    serial_number: Annotated[str, StringConstraints(max_length=128)] | None = None
    """Serial number of the current certificate."""
    expiration: Annotated[int, Field(ge=0)] | None = None
    """When the current certificate expires, in Unix seconds."""
    last_rotation: Annotated[int, Field(ge=0)] | None = None
    """When the current certificate was issued (first issue or last rotation), in Unix
    seconds."""
