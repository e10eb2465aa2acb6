"""One Vault request on behalf of a secret resource, with the shared error mapping.

A cached token may have been revoked behind the operator's back, and Vault answers 403 for
that just as for a missing policy: the client cache tells them apart with one lookup-self
(`ClientCache.check_denied`, shared per identity), and only a token that is really gone is
replaced (one login, shared). A policy problem is reported with the path and capability.
A 429 has already been retried by the client (and has lowered the global rate); it is
retried here a little more before it becomes a problem. Every Vault error becomes a
`ReconcileProblem` whose `__cause__` is the typed Vault error, so callers can still tell
"the lease is gone" from "Vault is down".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import PermissionDenied, VaultError, VaultThrottled

from .errors import ReconcileProblem
from .reasons import Reason
from .resolution import ResolvedAuth
from .vault_access import VaultAccess

T = TypeVar("T")


async def call_vault(
    access: VaultAccess,
    resolved: ResolvedAuth,
    consumer_namespace: str,
    vault_namespace: str | None,
    fn: Callable[[VaultClient], Awaitable[T]],
) -> T:
    """Run `fn(client)` with the resource's Vault client; after a 403 whose token turns out to
    be gone, once more with a new token."""
    attempt = 0
    throttled = 0
    while True:
        client = await access.client(resolved, consumer_namespace)
        if vault_namespace:
            # A per-resource Vault namespace overrides the VaultAuth's.
            client = client.with_namespace(vault_namespace)
        try:
            return await fn(client)
        except PermissionDenied as exc:
            try:
                replaced = await access.token_replaced(resolved, consumer_namespace, client)
            except VaultError as err:
                raise ReconcileProblem(err.reason, f"Vault request failed: {err}") from err
            if replaced and attempt == 0:
                attempt += 1
                continue
            raise ReconcileProblem(
                Reason.VAULT_PERMISSION_DENIED, f"Vault refused the request: {exc}"
            ) from exc
        except VaultThrottled as exc:
            if throttled < THROTTLE_ROUNDS:
                throttled += 1
                await asyncio.sleep(exc.retry_after or 1.0)
                continue
            raise ReconcileProblem(exc.reason, f"Vault request failed: {exc}") from exc
        except VaultError as exc:
            raise ReconcileProblem(exc.reason, f"Vault request failed: {exc}") from exc


#: Extra rounds for a request Vault keeps throttling (each round is itself retried by the
#: client behind the global rate limiter, which every 429 slows down).
THROTTLE_ROUNDS = 2
