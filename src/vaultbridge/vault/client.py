"""The typed Vault/OpenBao API surface the controllers use: health, auth, KV, generic, leases.

Works the same against HashiCorp Vault and OpenBao (OpenBao's HTTP API is Vault's); where they
differ, the method says so. A client is cheap: it is a transport, connection settings, a token
and a namespace. The ``ClientCache`` keeps one per (auth, connection, service account).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from vaultbridge.vault.connection import ConnectionSettings, RawResponse, Transport
from vaultbridge.vault.errors import (
    BadResponse,
    InvalidRequest,
    NamespacesUnsupported,
    NotFound,
    PermissionDenied,
    SecretVersionDeleted,
    VaultError,
    classify,
)
from vaultbridge.vault.models import (
    AuthToken,
    HealthStatus,
    KVSecret,
    LeaseInfo,
    VaultResponse,
)
from vaultbridge.vault.paths import kv_request_path, validate_path

KVVersion = Literal[1, 2]

#: How long a transport remembers whether the server at an address has namespaces (one
#: `sys/health` per address and period, only for clients that use a namespace).
NAMESPACE_PROBE_TTL = 300.0

# Ask sys/health to answer 200 in every state so we can read the JSON and classify it
# ourselves; its default status codes (429 standby, 503 sealed, 501 uninitialised...) would
# otherwise be indistinguishable from real failures.
_HEALTH_PARAMS = {
    "standbyok": "true",
    "perfstandbyok": "true",
    "standbycode": "200",
    "performancestandbycode": "200",
    "drsecondarycode": "200",
    "sealedcode": "200",
    "uninitcode": "200",
}


class RevokeOutcome(StrEnum):
    """What revoking a lease came to (see ``VaultClient.try_revoke_lease``)."""

    REVOKED = "revoked"
    """Vault revoked it (or had nothing left to revoke under that id)."""
    PERMISSION_DENIED = "permission_denied"
    """The token's policy lacks ``update`` on ``sys/leases/revoke/<lease id>``: waiting will not
    help; the lease lives until its TTL ends."""
    LEASE_UNKNOWN = "lease_unknown"
    """Vault no longer knows the lease (expired, revoked, tidied): nothing to do."""
    TRANSIENT = "transient"
    """Vault unreachable, sealed, throttled or failing: retrying later may succeed."""


@dataclass(frozen=True, slots=True)
class LeaseRevocation:
    outcome: RevokeOutcome
    error: VaultError | None = None


def revoke_outcome(error: BaseException | None) -> RevokeOutcome:
    """The outcome a failed lease revocation stands for (``None``: it succeeded).

    For callers that revoke through their own error handling (e.g. one that first tells a
    revoked token from a missing policy) and hold the typed ``VaultError``.
    """
    if error is None:
        return RevokeOutcome.REVOKED
    if isinstance(error, PermissionDenied):
        return RevokeOutcome.PERMISSION_DENIED
    if isinstance(error, InvalidRequest | NotFound):
        # Vault answers 400 "invalid lease ID" rather than 404 for a lease it does not know.
        return RevokeOutcome.LEASE_UNKNOWN
    return RevokeOutcome.TRANSIENT


class VaultClient:
    """One identity (token + namespace) on one Vault connection.

    ``namespace`` is sent as ``X-Vault-Namespace`` on every request except ``sys/health``
    (which only exists in the root namespace). Namespaces are a Vault Enterprise feature; OpenBao
    has them since 2.3. HashiCorp Vault Community Edition ignores the header altogether, so a
    namespaced request would be served by the root namespace: before the first namespaced
    request to an address, the client asks ``sys/health`` (remembered per address for
    ``NAMESPACE_PROBE_TTL`` seconds by the transport) and refuses with ``NamespacesUnsupported``
    when the server says it is Vault CE (``enterprise: false``). A health answer that says
    nothing (an error, another shape) changes nothing.
    """

    def __init__(
        self,
        transport: Transport,
        settings: ConnectionSettings,
        *,
        token: str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.namespace = namespace or None
        self._token = token or None

    def __repr__(self) -> str:
        return (
            f"VaultClient(address={self.settings.address!r}, namespace={self.namespace!r}, "
            f"token={'<set>' if self._token else None})"
        )

    def with_namespace(self, namespace: str | None) -> VaultClient:
        """The same token on the same connection, in another Vault namespace.

        For a secret resource's own `namespace`, which overrides its VaultAuth's. Vault
        Enterprise and OpenBao accept a token from a parent namespace in a child namespace.
        """
        return VaultClient(self.transport, self.settings, token=self._token, namespace=namespace)

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def shares_token(self, other: VaultClient) -> bool:
        """Whether ``other`` sends the same token (e.g. it is ``with_namespace`` of this one)."""
        return self._token is not None and self._token == other._token

    #: A 429 is retried this many times inside one call (after 0.25, 0.5, 1, 2 s or Vault's
    #: ``Retry-After``, and behind the global rate limiter, which a 429 slows down and pauses)
    #: before ``VaultThrottled`` is raised.
    throttle_retries = 4

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        send_token: bool = True,
        send_namespace: bool = True,
        token: str | None = None,
    ) -> RawResponse:
        validate_path(path)
        if send_namespace and self.namespace:
            await self._require_namespaces(path, operation)
        delay = 0.0
        for attempt in range(self.throttle_retries + 1):
            if attempt:
                # Also when the transport has no rate adapter (whose pause would space the
                # retries): a quota's window has to pass before a retry can succeed.
                await asyncio.sleep(delay)
            raw = await self.transport.request(
                self.settings,
                method,
                path,
                operation=operation,
                token=(token or self._token) if send_token else None,
                namespace=self.namespace if send_namespace else None,
                params=params,
                json_body=body,
            )
            # A quota's 429 rejects the request before Vault acts on it, so even a write is
            # safe to send again.
            if raw.status != 429:
                break
            delay = raw.retry_after or 0.25 * 2**attempt
        if 200 <= raw.status < 300:
            if not raw.json_ok:
                raise BadResponse(
                    "response is not JSON", status=raw.status, path=path, operation=operation
                )
            return raw
        raise classify(
            raw.status,
            raw.body,
            path=path,
            operation=operation,
            method=method,
            retry_after=raw.retry_after,
        )

    async def _require_namespaces(self, path: str, operation: str) -> None:
        async def probe() -> bool:
            try:
                return (await self.sys_health()).namespaces_supported
            except VaultError:
                # Not told (e.g. a proxy that hides sys/health, or a server that is down):
                # behave as before and let the request itself succeed or fail. Only a server
                # that says it is Vault CE is refused.
                return True

        address = self.settings.address
        supported = await self.transport.server_fact(
            f"namespaces-supported {address}", NAMESPACE_PROBE_TTL, probe
        )
        if not supported:
            raise NamespacesUnsupported(
                f"Vault namespace {self.namespace!r} requested, but the server at {address} is "
                "HashiCorp Vault Community Edition, which has no namespaces and would answer "
                "from the root namespace; remove the namespace, or use Vault Enterprise or "
                "OpenBao",
                path=path,
                operation=operation,
            )

    @staticmethod
    def _envelope(raw: RawResponse, path: str, operation: str) -> VaultResponse:
        try:
            return VaultResponse.from_body(raw.body)
        except BadResponse as exc:
            raise BadResponse(
                str(exc.args[0]) if exc.args else "bad response",
                status=raw.status,
                path=path,
                operation=operation,
            ) from None

    @staticmethod
    def _data(resp: VaultResponse, path: str, operation: str) -> dict[str, Any]:
        if resp.data is None:
            raise BadResponse("response has no data", path=path, operation=operation)
        return resp.data

    # -- health -----------------------------------------------------------------------------

    async def sys_health(self) -> HealthStatus:
        """Server state without raising for sealed/standby/uninitialised (see ``usable``).

        Unauthenticated and namespace-less. Very old Vault versions ignore some of the code
        parameters; whatever status comes back, a body with ``initialized`` is accepted.
        """
        path = "sys/health"
        raw = await self.transport.request(
            self.settings, "GET", path, operation="sys_health", params=_HEALTH_PARAMS
        )
        if isinstance(raw.body, Mapping) and "initialized" in raw.body:
            return HealthStatus.from_body(raw.body)
        if 200 <= raw.status < 300:
            raise BadResponse(
                "health response has an unexpected shape",
                status=raw.status,
                path=path,
                operation="sys_health",
            )
        raise classify(raw.status, raw.body, path=path, operation="sys_health")

    # -- auth -------------------------------------------------------------------------------

    async def _login(self, mount: str, body: dict[str, Any], operation: str) -> AuthToken:
        validate_path(mount, what="mount")
        path = f"auth/{mount}/login"
        raw = await self._call("POST", path, operation=operation, body=body, send_token=False)
        resp = self._envelope(raw, path, operation)
        if resp.auth is None:
            raise BadResponse("login response has no auth block", path=path, operation=operation)
        try:
            token = AuthToken.from_auth(resp.auth, warnings=list(resp.warnings))
        except BadResponse:
            raise BadResponse(
                "login response has no client_token", path=path, operation=operation
            ) from None
        self._token = token.client_token
        return token

    async def login_kubernetes(self, mount: str, role: str, jwt: str) -> AuthToken:
        """Kubernetes auth: Vault sends the service-account JWT to the TokenReview API.

        The client adopts the new token and also returns it.
        """
        return await self._login(mount, {"role": role, "jwt": jwt}, "login_kubernetes")

    async def login_jwt(self, mount: str, role: str, jwt: str) -> AuthToken:
        """JWT/OIDC auth with a JWT (e.g. a projected service-account token) verified by Vault
        against configured keys, JWKS or OIDC discovery — no TokenReview round trip."""
        return await self._login(mount, {"role": role, "jwt": jwt}, "login_jwt")

    async def login_approle(self, mount: str, role_id: str, secret_id: str | None) -> AuthToken:
        """AppRole auth; ``secret_id`` may be None for roles with ``bind_secret_id=false``."""
        body: dict[str, Any] = {"role_id": role_id}
        if secret_id is not None:
            body["secret_id"] = secret_id
        return await self._login(mount, body, "login_approle")

    async def lookup_self(self) -> AuthToken:
        """The current token as Vault sees it now (``lease_duration`` = remaining TTL)."""
        return await self._lookup_self(self._require_token())

    async def _lookup_self(self, token: str) -> AuthToken:
        path = "auth/token/lookup-self"
        raw = await self._call("GET", path, operation="lookup_self", token=token)
        data = self._data(self._envelope(raw, path, "lookup_self"), path, "lookup_self")
        return AuthToken.from_lookup(token, data)

    async def use_token(self, token: str) -> AuthToken:
        """Adopt a static token after checking it with ``lookup-self``; unchanged on failure."""
        if not token:
            raise InvalidRequest("empty token", operation="lookup_self")
        info = await self._lookup_self(token)
        self._token = token
        return info

    async def renew_self(self, increment: int | None = None) -> AuthToken:
        """Extend the current token. Vault caps the result at the token's max TTL and says so
        in ``warnings``; a returned ``lease_duration`` shorter than asked means the cap is near.
        """
        path = "auth/token/renew-self"
        body = {} if increment is None else {"increment": int(increment)}
        raw = await self._call("PUT", path, operation="renew_self", body=body)
        resp = self._envelope(raw, path, "renew_self")
        if resp.auth is None:
            raise BadResponse("renew response has no auth block", path=path, operation="renew_self")
        return AuthToken.from_auth(resp.auth, warnings=list(resp.warnings))

    async def revoke_self(self) -> None:
        """Revoke the current token (and its leases); the client then holds no token."""
        await self._call("PUT", "auth/token/revoke-self", operation="revoke_self")
        self._token = None

    def _require_token(self) -> str:
        if self._token is None:
            raise InvalidRequest("client has no token; log in first")
        return self._token

    # -- KV ---------------------------------------------------------------------------------

    @staticmethod
    def _kv_path(mount: str, path: str, kv_version: int, kind: str = "data") -> str:
        if kv_version not in (1, 2):
            raise InvalidRequest(f"unsupported kv_version {kv_version!r}")
        # One spelling for the request and the path-policy check (vault/paths.py); each part
        # is validated on its own so that an error names the mount or the path.
        validate_path(mount, what="mount")
        validate_path(path)
        return kv_request_path(mount, path, kv_version, kind)

    async def kv_read(
        self, mount: str, path: str, *, kv_version: KVVersion, version: int | None = None
    ) -> KVSecret:
        """Read a KV secret. kv-v2: latest, or ``version``; a soft-deleted or destroyed version
        raises ``SecretVersionDeleted`` (a ``NotFound``), a missing secret ``NotFound``.
        """
        full = self._kv_path(mount, path, kv_version)
        params: dict[str, str] | None = None
        if version is not None:
            if kv_version != 2:
                raise InvalidRequest("version pinning needs kv-v2", path=full)
            if version < 0:
                raise InvalidRequest("version must be >= 0", path=full)
            params = {"version": str(version)}
        raw = await self._call("GET", full, operation="kv_read", params=params)
        resp = self._envelope(raw, full, "kv_read")
        outer = self._data(resp, full, "kv_read")
        if kv_version == 1:
            return KVSecret(data=outer, metadata=None, raw=outer)
        values = outer.get("data")
        meta = outer.get("metadata")
        if not isinstance(meta, Mapping):
            raise BadResponse("kv-v2 response without metadata", path=full, operation="kv_read")
        if values is None and (meta.get("deletion_time") or meta.get("destroyed")):
            # Some Vault versions answer 200 with null data for a deleted version.
            raise SecretVersionDeleted(
                "secret version deleted",
                version_metadata=meta,
                status=raw.status,
                path=full,
                operation="kv_read",
            )
        if not isinstance(values, Mapping):
            raise BadResponse("kv-v2 response without data", path=full, operation="kv_read")
        return KVSecret(data=dict(values), metadata=dict(meta), raw=outer)

    async def kv_write(
        self,
        mount: str,
        path: str,
        data: Mapping[str, Any],
        *,
        kv_version: KVVersion,
        cas: int | None = None,
    ) -> dict[str, Any] | None:
        """Write a KV secret; for kv-v2 returns the new version's metadata."""
        full = self._kv_path(mount, path, kv_version)
        if kv_version == 2:
            body: dict[str, Any] = {"data": dict(data)}
            if cas is not None:
                body["options"] = {"cas": cas}
            raw = await self._call("POST", full, operation="kv_write", body=body)
            return self._envelope(raw, full, "kv_write").data
        await self._call("POST", full, operation="kv_write", body=dict(data))
        return None

    async def kv_delete(
        self,
        mount: str,
        path: str,
        *,
        kv_version: KVVersion,
        versions: list[int] | None = None,
    ) -> None:
        """kv-v1: delete. kv-v2: soft-delete the latest version, or the given ``versions``."""
        if kv_version == 2 and versions:
            full = self._kv_path(mount, path, 2, kind="delete")
            await self._call("POST", full, operation="kv_delete", body={"versions": versions})
            return
        full = self._kv_path(mount, path, kv_version)
        await self._call("DELETE", full, operation="kv_delete")

    # -- generic ----------------------------------------------------------------------------

    async def read(
        self, path: str, *, params: Mapping[str, str] | None = None, operation: str = "read"
    ) -> VaultResponse:
        """GET any path (dynamic credentials, ``sys/...``); 404 raises ``NotFound``."""
        raw = await self._call("GET", path, operation=operation, params=params)
        return self._envelope(raw, path, operation)

    async def write(
        self,
        path: str,
        data: Mapping[str, Any] | None = None,
        *,
        method: Literal["PUT", "POST"] = "PUT",
        operation: str = "write",
    ) -> VaultResponse | None:
        """PUT/POST any path; None when Vault answers 204 (no body)."""
        raw = await self._call(
            method, path, operation=operation, body=dict(data) if data is not None else {}
        )
        if raw.body is None:
            return None
        return self._envelope(raw, path, operation)

    async def delete(self, path: str, *, operation: str = "delete") -> None:
        await self._call("DELETE", path, operation=operation)

    # -- leases -----------------------------------------------------------------------------

    async def renew_lease(self, lease_id: str, increment: int | None = None) -> LeaseInfo:
        """Renew a lease; Vault may grant less than ``increment`` (max TTL) — check the result."""
        body: dict[str, Any] = {"lease_id": lease_id}
        if increment is not None:
            body["increment"] = int(increment)
        raw = await self._call("PUT", "sys/leases/renew", operation="renew_lease", body=body)
        if not isinstance(raw.body, Mapping):
            raise BadResponse(
                "lease renew response is not an object",
                path="sys/leases/renew",
                operation="renew_lease",
            )
        return LeaseInfo.from_renew(raw.body)

    async def revoke_lease(self, lease_id: str) -> None:
        """Revoke a lease with the path form ``sys/leases/revoke/<lease id>``, so a policy can
        grant it per mount and role (``sys/leases/revoke/database/creds/app/*``, ``update``)
        instead of the right to revoke any lease; when that is refused, the body form once
        (policies that grant ``sys/leases/revoke``). Raises the typed error; see
        ``try_revoke_lease`` / ``revoke_outcome`` for the outcome as a value."""
        validate_path(lease_id, what="lease id")
        try:
            await self._call(
                "PUT", f"sys/leases/revoke/{lease_id}", operation="revoke_lease", body={}
            )
        except PermissionDenied as denied:
            # Policies written for the body form (`sys/leases/revoke`, any lease) keep working;
            # if that is refused too, the error names the least-privilege path.
            try:
                await self._call(
                    "PUT",
                    "sys/leases/revoke",
                    operation="revoke_lease",
                    body={"lease_id": lease_id},
                )
            except PermissionDenied:
                raise denied from None

    async def try_revoke_lease(self, lease_id: str) -> LeaseRevocation:
        """``revoke_lease`` with the outcome as a value: revoked, permission denied, lease
        unknown or transient (the error is kept for messages)."""
        try:
            await self.revoke_lease(lease_id)
        except VaultError as exc:
            return LeaseRevocation(revoke_outcome(exc), exc)
        return LeaseRevocation(RevokeOutcome.REVOKED)

    async def lookup_lease(self, lease_id: str) -> LeaseInfo:
        """Remaining TTL and times of a lease; ``InvalidRequest`` if Vault no longer knows it
        (Vault answers 400 "invalid lease" rather than 404)."""
        path = "sys/leases/lookup"
        raw = await self._call("PUT", path, operation="lookup_lease", body={"lease_id": lease_id})
        data = self._data(self._envelope(raw, path, "lookup_lease"), path, "lookup_lease")
        return LeaseInfo.from_lookup(data)
