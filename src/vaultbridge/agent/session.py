"""The agent's Vault logins: as the pod's own ServiceAccount, one per identity.

Guarantees:

- One login per (Vault address and TLS settings, Vault namespace, auth method, mount, role,
  token file), shared by every object of the pod that uses it (`Sessions.get`).
- The projected ServiceAccount token is read from its file at **every** login, never kept:
  the kubelet rotates it, and a kept copy would expire.
- The Vault token is renewed (`renew-self`) at two thirds of its TTL while it is renewable
  and the last renewal was not capped by its max TTL; otherwise, or when renewing fails, the
  agent logs in again. The token is never revoked by the agent: the leases of the pod's
  dynamic credentials are its children and would be revoked with it.
- A 403 may mean the token is gone (revoked, expired during a pause): the call is retried once
  after a fresh login; a second 403 is the policy's answer and is raised.
- The Vault token never leaves this module: not logged, not written to a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from vaultbridge.inject.config import AgentLogin, AgentVault
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.connection import ConnectionSettings, Transport
from vaultbridge.vault.errors import PermissionDenied, VaultError
from vaultbridge.vault.lease_schedule import renewal_exhausted
from vaultbridge.vault.models import AuthToken

log = logging.getLogger(__name__)
T = TypeVar("T")

RENEW_FRACTION = 2 / 3
"""Renew the Vault token at this fraction of its TTL (as the operator's client cache does)."""


class TokenFileError(Exception):
    """The projected ServiceAccount token cannot be read (names the path, never content)."""


def read_token(path: Path) -> str:
    try:
        jwt = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenFileError(
            f"cannot read the ServiceAccount token file {path}: {exc.strerror or exc}"
        ) from None
    if not jwt:
        raise TokenFileError(f"the ServiceAccount token file {path} is empty")
    return jwt


class Session:
    """One logged-in identity on one Vault connection."""

    def __init__(
        self,
        transport: Transport,
        vault: AgentVault,
        login: AgentLogin,
        token_file: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = ConnectionSettings(
            address=vault.address,
            ca_pem=vault.ca_cert_pem.encode() if vault.ca_cert_pem else None,
            tls_server_name=vault.tls_server_name,
            skip_tls_verify=vault.skip_tls_verify,
            headers=vault.headers,
            timeout=vault.timeout_seconds,
        )
        self.client = VaultClient(transport, settings, namespace=vault.namespace)
        self.login_config = login
        self.token_file = token_file
        self._clock = clock
        self._token: AuthToken | None = None
        self._obtained = 0.0
        self._asked = 0
        self._capped = False
        self.logins = 0
        self.renewals = 0

    def __repr__(self) -> str:
        return (
            f"Session(address={self.client.settings.address!r}, "
            f"mount={self.login_config.mount!r}, role={self.login_config.role!r})"
        )

    @property
    def describe(self) -> str:
        return (
            f"{self.login_config.method} login at {self.client.settings.address} "
            f"auth/{self.login_config.mount} role {self.login_config.role}"
        )

    def renew_due(self) -> float | None:
        """Unix seconds at which the token should be renewed (None: no token or no expiry)."""
        if self._token is None or self._token.lease_duration <= 0:
            return None
        return self._obtained + self._token.lease_duration * RENEW_FRACTION

    def expires_at(self) -> float | None:
        """Unix seconds at which the current token expires (None: none, or no expiry)."""
        if self._token is None or self._token.lease_duration <= 0:
            return None
        return self._obtained + self._token.lease_duration

    def _expired(self, now: float) -> bool:
        token = self._token
        if token is None:
            return True
        if token.lease_duration <= 0:
            return False
        return now >= self._obtained + token.lease_duration * 0.95

    async def login(self) -> None:
        jwt = read_token(self.token_file)
        cfg = self.login_config
        if cfg.method == "kubernetes":
            token = await self.client.login_kubernetes(cfg.mount, cfg.role, jwt)
        else:
            token = await self.client.login_jwt(cfg.mount, cfg.role, jwt)
        self._adopt(token)
        self._asked = token.lease_duration
        self._capped = False
        self.logins += 1
        log.info(
            "logged in: %s (token accessor %s, ttl %ss)",
            self.describe,
            token.accessor or "-",
            token.lease_duration,
        )

    def _adopt(self, token: AuthToken) -> None:
        self._token = token
        self._obtained = self._clock()

    async def ensure(self) -> VaultClient:
        """The client with a usable token, logging in if there is none (or it expired)."""
        if self._expired(self._clock()):
            await self.login()
        return self.client

    async def maintain(self) -> None:
        """Renew the token if its renewal point passed (or log in again when it cannot be)."""
        due = self.renew_due()
        if due is None or self._clock() < due:
            return
        token = self._token
        assert token is not None
        if token.renewable and not self._capped:
            try:
                renewed = await self.client.renew_self(increment=self._asked or None)
            except VaultError as exc:
                log.warning("renewing the Vault token failed (%s); logging in again", exc.reason)
            else:
                self._adopt(renewed)
                self.renewals += 1
                self._capped = renewal_exhausted(self._asked, renewed.lease_duration, 67)
                log.info("renewed the Vault token (ttl %ss)", renewed.lease_duration)
                return
        await self.login()

    async def call(self, fn: Callable[[VaultClient], Awaitable[T]]) -> T:
        """`fn(client)` with a logged-in client; one fresh login and retry after a 403."""
        client = await self.ensure()
        try:
            return await fn(client)
        except PermissionDenied:
            log.info("Vault answered 403; logging in again once before giving up")
            await self.login()
            return await fn(self.client)


class Sessions:
    """The pod's sessions, keyed by identity (see the module docstring)."""

    def __init__(self, transport: Transport, token_path: Callable[[str], Path]) -> None:
        self.transport = transport
        self._token_path = token_path
        self._sessions: dict[tuple[str, str], Session] = {}

    def get(self, vault: AgentVault, login: AgentLogin) -> Session:
        key = (vault.model_dump_json(), login.model_dump_json())
        session = self._sessions.get(key)
        if session is None:
            session = Session(self.transport, vault, login, self._token_path(login.token_path))
            self._sessions[key] = session
        return session

    def all(self) -> list[Session]:
        return list(self._sessions.values())
