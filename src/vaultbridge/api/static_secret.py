"""VaultStaticSecret: KV secrets (v1 or v2) copied into a Secret and kept fresh.

Besides VSO's single `mount`/`path`, `sources` merges several KV paths into one Secret, a gap
VSO users work around with one Secret per path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from vaultbridge.api.common import (
    ApiModel,
    CelRule,
    DNSSubdomain,
    VaultPath,
)
from vaultbridge.api.destination import INJECT_CEL_RULES, SyncedSecretSpec, SyncedSecretStatus
from vaultbridge.api.duration import Duration, parse_duration
from vaultbridge.vault.paths import kv_request_path

KVType = Literal["kv-v1", "kv-v2"]

_VERSION_RULE = CelRule(
    rule="!has(self.version) || (has(self.type) && self.type == 'kv-v2')",
    message="version can only be set with type kv-v2",
    field_path=".version",
)


def _check_version(kv_type: str | None, version: int | None) -> None:
    if version is not None and kv_type != "kv-v2":
        raise ValueError("version can only be set with type kv-v2")


class KVSource(ApiModel):
    """One KV secret merged into the destination Secret."""

    cel_rules = (_VERSION_RULE,)

    mount: VaultPath
    """Mount of the KV secrets engine, such as `secret`."""
    path: VaultPath
    """Path of the secret inside the mount, such as `team-a/db`."""
    type: KVType
    """Version of the KV secrets engine: kv-v1 or kv-v2."""
    version: Annotated[int, Field(ge=0)] | None = None
    """Pin this version of a kv-v2 secret. Unset or 0 reads the latest version."""
    prefix: Annotated[str, StringConstraints(max_length=128, pattern=r"^[-._a-zA-Z0-9]*$")] = ""
    """Prepended to every key read from this source, to keep keys of different sources apart."""

    @model_validator(mode="after")
    def _version_needs_kv2(self) -> Self:
        _check_version(self.type, self.version)
        return self

    @property
    def kv_version(self) -> Literal[1, 2]:
        return 2 if self.type == "kv-v2" else 1

    def request_path(self) -> str:
        """The Vault API path read for this source (`mount/data/path` for kv-v2)."""
        return kv_request_path(self.mount, self.path, self.kv_version)


class SyncConfig(ApiModel):
    """How the operator learns that the secret changed in Vault (VSO's field)."""

    instant_updates: bool = False
    """Re-read the secret as soon as Vault's audit stream reports a write to one of its paths,
    in addition to refreshAfter (which stays the safety net). Needs an operator started with
    --audit-stream-listen and a socket audit device on the Vault server (docs/operations.md);
    works with open-source Vault and OpenBao."""


class VaultStaticSecretSpec(SyncedSecretSpec):
    """A KV secret, or several merged, synced into a Kubernetes Secret."""

    cel_rules = (
        *INJECT_CEL_RULES,
        CelRule(
            rule=(
                "has(self.sources) && size(self.sources) > 0"
                " ? !has(self.mount) && !has(self.path) && !has(self.type) && !has(self.version)"
                " : has(self.mount) && has(self.path) && has(self.type)"
            ),
            message="set either mount, path and type, or a non-empty sources list, not both",
        ),
        _VERSION_RULE,
    )

    mount: VaultPath | None = None
    """Mount of the KV secrets engine, such as `secret`. Required unless sources is set."""
    path: VaultPath | None = None
    """Path of the secret inside the mount. Required unless sources is set."""
    type: KVType | None = None
    """Version of the KV secrets engine: kv-v1 or kv-v2. Required unless sources is set."""
    version: Annotated[int, Field(ge=0)] | None = None
    """Pin this version of a kv-v2 secret. Unset or 0 reads the latest version."""
    sources: Annotated[list[KVSource], Field(max_length=16)] = Field(default_factory=list)
    """Several KV secrets merged into one Secret. A key produced by two sources is an error:
    give the sources distinct prefixes (each source's `_raw` becomes `<prefix>_raw`).
    Exclusive with mount, path and type."""
    refresh_after: Duration | None = None
    """Re-read the secret from Vault this often, as a duration such as 1h. Unset: the operator's
    --default-refresh-after (60s) when hmacSecretData is true, else only when this object or
    the Secret changes."""
    hmac_secret_data: bool = True
    """Keep a keyed hash of the Secret's data in the status to detect changes and hand edits."""
    sync_config: SyncConfig | None = None
    """Change-driven sync: `instantUpdates: true` follows Vault writes within seconds."""

    @property
    def instant_updates(self) -> bool:
        return self.sync_config is not None and self.sync_config.instant_updates

    @model_validator(mode="after")
    def _single_or_sources(self) -> Self:
        single = (self.mount, self.path, self.type)
        if self.sources:
            if any(v is not None for v in (*single, self.version)):
                raise ValueError(
                    "set either mount, path and type, or a non-empty sources list, not both"
                )
        elif any(v is None for v in single):
            raise ValueError(
                "set either mount, path and type, or a non-empty sources list, not both"
            )
        _check_version(self.type, self.version)
        return self

    @property
    def refresh_after_seconds(self) -> float | None:
        return None if self.refresh_after is None else parse_duration(self.refresh_after)

    def kv_sources(self) -> list[KVSource]:
        """The KV secrets to read, in merge order, whichever way the spec names them."""
        if self.sources:
            return list(self.sources)
        assert self.mount is not None and self.path is not None and self.type is not None
        return [KVSource(mount=self.mount, path=self.path, type=self.type, version=self.version)]

    def vault_paths(self) -> list[str]:
        """The Vault API paths this spec reads: what path policies judge."""
        return [s.request_path() for s in self.kv_sources()]


class VaultStaticSecretStatus(SyncedSecretStatus):
    """What the operator last wrote."""

    last_sync_time: datetime | None = None
    """When the Secret was last written or confirmed up to date."""
    destination_name: DNSSubdomain | None = None
    """Name of the Secret last written; lets the operator clean up after a rename."""
    vault_version: Annotated[int, Field(ge=0)] | None = None
    """Version of the kv-v2 secret last read (single-path specs only)."""
