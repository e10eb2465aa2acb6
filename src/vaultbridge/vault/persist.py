"""The contract between the client cache and a place that keeps tokens across restarts.

Why persist tokens at all: Vault revokes every lease together with the token that created it.
A restarted operator that logs in again holds a new token; the old one lives only until its
TTL, and with it go the leases of every dynamic credential the old process issued — so the
workloads would get new credentials (and restarts) after every operator restart. Keeping the
old token (and renewing it) keeps its leases alive.

The cache knows nothing of where or how tokens are stored: a store is anything with ``load``
and ``save`` (the Kubernetes-Secret implementation lives in ``controllers/token_store.py``, so
this package stays free of Kubernetes). Stores must never put a token in a log line, an
exception message or a repr.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.models import AuthToken

LoginFn = Callable[[], Awaitable[AuthToken]]


@dataclass(frozen=True, slots=True)
class Restored:
    """A token a store handed back on a cache miss.

    ``token.lease_duration``/``obtained_at`` describe the token's current TTL period as well as
    the store knows it (``obtained_at`` may lie in the past, so the cache keeps the original
    renewal schedule). ``fresh`` is True when the store had to log in itself (e.g. to decrypt
    the stored entry) and could not use the stored token: the cache then treats the token like
    any new login and saves it.
    """

    token: AuthToken
    fresh: bool = False


class TokenStoreUnavailable(Exception):
    """The store could not tell whether it holds a token (its backend is unreachable).

    The cache does not log in then (a new token would orphan the stored token's leases once
    it expires); the caller retries later. Messages never contain a token.
    """


class TokenStore(Protocol):
    """Where the client cache keeps tokens across restarts.

    ``load`` is called at most once per key and process, before the first login: it returns a
    still-valid token (checked against Vault through ``client``, which has connection settings
    and namespace but no token) or None. ``login`` is the cache's own counted login, for stores
    that need a token to read their entry (Transit decryption). ``load`` raises
    ``TokenStoreUnavailable`` or a ``VaultError`` when it cannot decide.

    ``save`` is called after every login and renewal with the logged-in ``client``; failures
    are logged by the cache and never fail the login. It returns True when the token is now
    persisted: that is how the cache knows to leave the token alive on shutdown (every token
    it holds that was not persisted is revoked then).
    """

    async def load(self, key: Hashable, client: VaultClient, login: LoginFn) -> Restored | None:
        """The persisted token for ``key`` if it is intact and still valid, else None."""
        ...

    async def save(self, key: Hashable, token: AuthToken, client: VaultClient) -> bool:
        """Persist ``token`` (its TTL period as described by the token) for ``key``; True when
        it is now stored (False: this store does not keep tokens of that key)."""
        ...
