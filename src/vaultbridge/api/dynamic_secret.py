"""VaultDynamicSecret: leased credentials (database, cloud, ...) kept valid in a Secret."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from vaultbridge.api.common import (
    ApiModel,
    StringMap,
    VaultPath,
)
from vaultbridge.api.destination import SyncedSecretSpec, SyncedSecretStatus
from vaultbridge.api.duration import Duration, parse_duration
from vaultbridge.vault.paths import request_path

HTTPMethod = Literal["GET", "POST", "PUT"]


class VaultDynamicSecretSpec(SyncedSecretSpec):
    """Credentials issued by a Vault secrets engine, renewed or re-issued before they expire."""

    mount: VaultPath
    """Mount of the secrets engine, such as `database`."""
    path: VaultPath
    """Path to request inside the mount, such as `creds/app`."""
    params: StringMap = Field(default_factory=dict, max_length=64, repr=False)
    """Parameters sent with the request."""
    request_http_method: HTTPMethod | None = Field(default=None, alias="requestHTTPMethod")
    """HTTP method of the request: GET, POST or PUT. Unset uses POST when params are set and
    GET otherwise."""
    renewal_percent: Annotated[int, Field(ge=0, le=90)] = 67
    """Renew the lease once this percentage of its duration has passed."""
    revoke: bool = False
    """Revoke the lease in Vault when this object is deleted."""
    allow_static_creds: bool = False
    """The path returns static-role credentials (rotated by Vault, without a lease); re-read
    them after each rotation."""
    refresh_after: Duration | None = None
    """Re-issue the credentials this often when Vault returns no lease, as a duration."""

    def effective_http_method(self) -> HTTPMethod:
        if self.request_http_method is not None:
            return self.request_http_method
        return "POST" if self.params else "GET"

    @property
    def refresh_after_seconds(self) -> float | None:
        return None if self.refresh_after is None else parse_duration(self.refresh_after)

    def request_path(self) -> str:
        """The Vault API path requested for credentials (`mount/path`)."""
        return request_path(self.mount, self.path)

    def vault_paths(self) -> list[str]:
        """The Vault API paths this spec requests: what path policies judge."""
        return [self.request_path()]


class SecretLease(ApiModel):
    """The lease behind the current credentials."""

    id: Annotated[str, StringConstraints(max_length=1024)] = ""
    """Lease ID in Vault."""
    duration: Annotated[int, Field(ge=0)] = 0
    """Lease duration in seconds, as granted at the last issue or renewal."""
    renewable: bool = False
    """Whether Vault allows renewing the lease."""
    request_id: Annotated[str, StringConstraints(max_length=256)] = Field(
        default="", alias="requestID"
    )
    """ID of the Vault request that issued or last renewed the lease."""


class StaticCredsMetaData(ApiModel):
    """Rotation facts of static-role credentials."""

    last_vault_rotation: Annotated[int, Field(ge=0)] = 0
    """When Vault last rotated the credentials, in Unix seconds."""
    rotation_period: Annotated[int, Field(ge=0)] = 0
    """Seconds between two rotations."""
    ttl: Annotated[int, Field(ge=0)] = 0
    """Seconds left before the next rotation, when last read."""


class VaultDynamicSecretStatus(SyncedSecretStatus):
    """The lease the operator holds and when it last renewed it."""

    secret_lease: SecretLease | None = None
    """The current lease."""
    last_renewal_time: Annotated[int, Field(ge=0)] | None = None
    """When the lease was last issued or renewed, in Unix seconds."""
    static_creds_meta_data: StaticCredsMetaData | None = Field(
        default=None, alias="staticCredsMetaData"
    )
    """Rotation facts when the credentials come from a static role."""
