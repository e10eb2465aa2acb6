"""VaultConnection: how to reach one Vault or OpenBao server."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from vaultbridge.api.common import AllowedNamespaces, ApiModel, DNSSubdomain, StringMap
from vaultbridge.api.conditions import Conditions
from vaultbridge.api.duration import Duration, parse_duration

ADDRESS_PATTERN = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
CA_CERT_KEY = "ca.crt"
"""The key read from the Secret named by caCertSecretRef."""


class VaultConnectionSpec(ApiModel):
    """Address and TLS settings of a Vault or OpenBao server."""

    address: Annotated[str, StringConstraints(max_length=2048, pattern=ADDRESS_PATTERN)]
    """URL of the server, such as https://vault.vault.svc:8200."""
    ca_cert_secret_ref: DNSSubdomain | None = None
    """Name of a Secret, in the namespace of this VaultConnection, whose `ca.crt` key holds
    the PEM CA bundle that signs the server's certificate. Unset uses the system trust store."""
    tls_server_name: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Name checked against the server's certificate (SNI) instead of the address's host."""
    skip_tls_verify: bool = Field(default=False, alias="skipTLSVerify")
    """Do not verify the server's certificate. For development only."""
    headers: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Extra HTTP headers sent with every request to the server."""
    timeout: Duration = "30s"
    """Time limit for one request to the server, as a duration such as 30s."""
    allowed_namespaces: AllowedNamespaces = Field(default_factory=list)
    """Namespaces whose VaultAuths may use this VaultConnection. Unset or empty: only this
    VaultConnection's own namespace. ["*"]: every namespace. Otherwise the listed namespaces
    (and its own)."""

    @field_validator("allowed_namespaces")
    @classmethod
    def _star_alone(cls, value: list[str]) -> list[str]:
        if "*" in value and len(value) != 1:
            raise ValueError("'*' must be the only entry")
        return value

    def allows_namespace(self, auth_namespace: str, *, own_namespace: str) -> bool:
        """Whether a VaultAuth in `auth_namespace` may send its logins to this server (the
        rule of VaultAuth.allowedNamespaces, one level up)."""
        if auth_namespace == own_namespace or self.allowed_namespaces == ["*"]:
            return True
        return auth_namespace in self.allowed_namespaces

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class VaultConnectionStatus(ApiModel):
    """What the operator last observed of the server."""

    valid: bool | None = None
    """Whether the server answered the last health check."""
    vault_version: Annotated[str, StringConstraints(max_length=128)] | None = None
    """Version reported by the server."""
    sealed: bool | None = None
    """Whether the server reported itself sealed."""
    conditions: Conditions = Field(default_factory=list)
    """Current state of the connection."""
