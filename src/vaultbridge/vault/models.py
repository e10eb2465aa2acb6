"""Typed results of Vault calls. Anything that may hold a secret or a token has a redacted repr.

``data`` dicts hold plain values so callers can build Kubernetes Secrets from them; the
containers keep them out of logs and tracebacks (``repr``/``str`` show shapes, never values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vaultbridge.vault.errors import BadResponse


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def _str_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _opt_dict(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """``sys/health`` as data. Standby nodes forward requests, so they count as usable."""

    initialized: bool
    sealed: bool
    standby: bool
    performance_standby: bool
    version: str
    cluster_name: str | None = None
    cluster_id: str | None = None
    server_time_utc: int | None = None
    #: HashiCorp Vault says `enterprise: true|false`; OpenBao's health has no such field (None).
    enterprise: bool | None = None

    @property
    def usable(self) -> bool:
        return self.initialized and not self.sealed

    @property
    def namespaces_supported(self) -> bool:
        """False only for HashiCorp Vault Community Edition (`enterprise: false`), which
        ignores `X-Vault-Namespace`; Vault Enterprise and OpenBao have namespaces."""
        return self.enterprise is not False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> HealthStatus:
        return cls(
            initialized=bool(body.get("initialized")),
            sealed=bool(body.get("sealed")),
            standby=bool(body.get("standby")),
            performance_standby=bool(body.get("performance_standby")),
            version=str(body.get("version") or ""),
            cluster_name=_opt_str(body.get("cluster_name")),
            cluster_id=_opt_str(body.get("cluster_id")),
            server_time_utc=_int(body.get("server_time_utc")) or None,
            enterprise=ent if isinstance(ent := body.get("enterprise"), bool) else None,
        )


@dataclass(frozen=True, slots=True)
class AuthToken:
    """A Vault token and what Vault told us about it; ``client_token`` is never shown.

    ``lease_duration`` is the TTL in seconds at ``obtained_at``; 0 means no expiry (root tokens).
    ``revocable``: the operator created it by logging in, so it may revoke it when done with it;
    False for a token adopted as given (``from_lookup``: a static token from a Secret).
    """

    client_token: str = field(repr=False)
    accessor: str
    policies: tuple[str, ...]
    lease_duration: int
    renewable: bool
    obtained_at: datetime
    entity_id: str | None = None
    token_type: str | None = None
    warnings: tuple[str, ...] = ()
    revocable: bool = True

    @property
    def expires_at(self) -> datetime | None:
        if self.lease_duration <= 0:
            return None
        return self.obtained_at + timedelta(seconds=self.lease_duration)

    @classmethod
    def from_auth(cls, auth: Mapping[str, Any], *, warnings: object = None) -> AuthToken:
        """From the ``auth`` block of a login or renew-self response."""
        token = auth.get("client_token")
        if not isinstance(token, str) or not token:
            raise BadResponse("auth response without client_token")
        return cls(
            client_token=token,
            accessor=str(auth.get("accessor") or ""),
            policies=_str_tuple(auth.get("token_policies") or auth.get("policies")),
            lease_duration=_int(auth.get("lease_duration")),
            renewable=bool(auth.get("renewable")),
            obtained_at=datetime.now(UTC),
            entity_id=_opt_str(auth.get("entity_id")),
            token_type=_opt_str(auth.get("token_type")),
            warnings=_str_tuple(warnings),
        )

    @classmethod
    def from_lookup(cls, token: str, data: Mapping[str, Any]) -> AuthToken:
        """From ``auth/token/lookup-self`` data, whose ``ttl`` is the remaining lifetime."""
        return cls(
            client_token=token,
            accessor=str(data.get("accessor") or ""),
            policies=_str_tuple(data.get("policies")),
            lease_duration=_int(data.get("ttl")),
            renewable=bool(data.get("renewable")),
            obtained_at=datetime.now(UTC),
            entity_id=_opt_str(data.get("entity_id")),
            token_type=_opt_str(data.get("type")),
            revocable=False,
        )


@dataclass(frozen=True, slots=True)
class VaultResponse:
    """The standard Vault response envelope. ``data`` and ``auth`` may hold secrets."""

    request_id: str
    lease_id: str
    lease_duration: int
    renewable: bool
    data: dict[str, Any] | None
    warnings: tuple[str, ...]
    auth: dict[str, Any] | None

    @classmethod
    def from_body(cls, body: object) -> VaultResponse:
        if not isinstance(body, Mapping):
            raise BadResponse("response body is not a JSON object")
        return cls(
            request_id=str(body.get("request_id") or ""),
            lease_id=str(body.get("lease_id") or ""),
            lease_duration=_int(body.get("lease_duration")),
            renewable=bool(body.get("renewable")),
            data=_opt_dict(body.get("data")),
            warnings=_str_tuple(body.get("warnings")),
            auth=_opt_dict(body.get("auth")),
        )

    def __repr__(self) -> str:
        data = "None" if self.data is None else f"<redacted {len(self.data)} keys>"
        auth = "None" if self.auth is None else "<redacted>"
        return (
            f"VaultResponse(request_id={self.request_id!r}, lease_id={self.lease_id!r}, "
            f"lease_duration={self.lease_duration}, renewable={self.renewable}, data={data}, "
            f"warnings={self.warnings!r}, auth={auth})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KVSecret:
    """A KV secret: ``data`` are the values; ``metadata`` is kv-v2 version metadata (else None).

    ``raw`` is the whole response ``data`` (for kv-v2 it holds both); useful for templates that
    want metadata next to values.
    """

    data: dict[str, Any]
    metadata: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def version(self) -> int | None:
        if self.metadata is None:
            return None
        v = self.metadata.get("version")
        return v if isinstance(v, int) else None

    def __repr__(self) -> str:
        return f"KVSecret(data=<redacted {len(self.data)} keys>, version={self.version})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease's state after renew (``lease_duration`` = new TTL) or lookup (remaining TTL).

    ``issue_time``/``expire_time``/``last_renewal`` are only set by lookup (RFC 3339 strings).
    Lease ids are not secrets (they cannot read anything) but are shown in full here on purpose
    so operators can correlate with Vault's audit log.
    """

    lease_id: str
    lease_duration: int
    renewable: bool
    issue_time: str | None = None
    expire_time: str | None = None
    last_renewal: str | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_renew(cls, body: Mapping[str, Any]) -> LeaseInfo:
        return cls(
            lease_id=str(body.get("lease_id") or ""),
            lease_duration=_int(body.get("lease_duration")),
            renewable=bool(body.get("renewable")),
            warnings=_str_tuple(body.get("warnings")),
        )

    @classmethod
    def from_lookup(cls, data: Mapping[str, Any]) -> LeaseInfo:
        return cls(
            lease_id=str(data.get("id") or ""),
            lease_duration=_int(data.get("ttl")),
            renewable=bool(data.get("renewable")),
            issue_time=_opt_str(data.get("issue_time")),
            expire_time=_opt_str(data.get("expire_time")),
            last_renewal=_opt_str(data.get("last_renewal")),
        )
