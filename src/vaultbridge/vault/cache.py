"""One logged-in Vault client per (auth, connection, service account), shared by all resources.

A cold start with 1,000 secrets behind one VaultAuth must cost one login, not 1,000: ``get`` is
single-flight per key. Tokens are kept until they near expiry.

Renewal is lazy and non-blocking, driven by ``get`` rather than by timers:

- before the renewal point (``renew_fraction`` of the TTL, default 2/3) ``get`` just returns the
  cached client;
- between the renewal point and the hard limit (``1 - expiry_margin`` of the TTL) ``get``
  still returns the cached client at once and starts one background refresh: ``renew-self``
  when the token is renewable and the last renewal was not capped by its max TTL, otherwise
  (or when renewal fails) a fresh login. A failed refresh is retried no sooner than
  ``retry_interval`` later, while the old token keeps serving;
- past the hard limit (or with no entry) callers wait for a single shared login.

Why lazy: a token nobody asks for needs no renewal (its resources are gone or idle), no timer
per key has to be kept in step with invalidation, and ``close`` only has to cancel the few
refreshes in flight. Controllers requeue well before the renewal point in practice, so an idle
period simply ends in a login instead of a renewal.

With a ``store`` (see ``vault/persist.py``), tokens outlive the process: the first miss of a
key asks the store for a persisted token before logging in, and every login and renewal is
saved. A restored token that is past its renewal point is renewed at once, so a restart after
a long pause does not lose the token (and the leases it holds) to an idle cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.connection import ConnectionSettings, Transport
from vaultbridge.vault.models import AuthToken
from vaultbridge.vault.persist import Restored, TokenStore

log = logging.getLogger(__name__)

LoginFn = Callable[[], Awaitable[AuthToken]]
RenewFn = Callable[[VaultClient], Awaitable[AuthToken]]
CacheEventHook = Callable[[str], None]
"""``on_event(name)`` with name in ``login``, ``login_failed``, ``renewal``, ``renewal_failed``,
``restored`` (a persisted token was adopted instead of a login) and ``save_failed``."""


async def _renew_self(client: VaultClient) -> AuthToken:
    return await client.renew_self()


@dataclass(eq=False)
class _Entry:
    client: VaultClient
    token: AuthToken
    settings: ConnectionSettings
    namespace: str | None
    obtained: float
    ttl: float
    # A renewal that came back shorter than the login TTL hit the max TTL: log in next time.
    capped: bool = False
    next_attempt: float = 0.0
    refresh: asyncio.Task[None] | None = None


class ClientCache:
    """Logged-in ``VaultClient`` objects by an opaque hashable key.

    Counters ``logins``, ``login_failures``, ``renewals`` and ``renewal_failures`` count calls of
    the login / renew functions (so a test can assert "50 resources → 1 login"); ``restores``
    counts persisted tokens adopted from the ``store``; ``on_event`` receives the same events
    for metrics.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        renew_fraction: float = 2 / 3,
        expiry_margin: float = 0.1,
        retry_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        renew: RenewFn = _renew_self,
        on_event: CacheEventHook | None = None,
        store: TokenStore | None = None,
    ) -> None:
        if not 0 < renew_fraction < 1 - expiry_margin <= 1:
            raise ValueError("need 0 < renew_fraction < 1 - expiry_margin <= 1")
        self.transport = transport
        self.renew_fraction = renew_fraction
        self.expiry_margin = expiry_margin
        self.retry_interval = retry_interval
        self._clock = clock
        self._renew = renew
        self.on_event = on_event
        self.store = store
        # Keys whose persisted token was already looked at: after that the store's entry is
        # either adopted, or known to be useless (a login overwrites it), so later misses
        # (invalidation after a 403, expiry) go straight to a login.
        self._restore_tried: set[Hashable] = set()
        self._entries: dict[Hashable, _Entry] = {}
        self._pending: dict[Hashable, asyncio.Task[_Entry]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self.logins = 0
        self.login_failures = 0
        self.renewals = 0
        self.renewal_failures = 0
        self.restores = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # -- timing -----------------------------------------------------------------------------

    def _renew_at(self, e: _Entry) -> float | None:
        return None if e.ttl <= 0 else e.obtained + e.ttl * self.renew_fraction

    def _hard_limit(self, e: _Entry) -> float | None:
        return None if e.ttl <= 0 else e.obtained + e.ttl * (1 - self.expiry_margin)

    # -- public API -------------------------------------------------------------------------

    async def get(
        self,
        key: Hashable,
        login: LoginFn,
        settings: ConnectionSettings,
        namespace: str | None,
    ) -> VaultClient:
        """A client with a live token for ``key``, logging in (once, shared) if needed.

        ``login`` is only called when a login is due; it should build its credentials (e.g. a
        fresh service-account JWT) when called. Login errors propagate to every waiter and are
        not cached.
        """
        if self._closed:
            raise RuntimeError("client cache is closed")
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and (entry.settings != settings or entry.namespace != namespace):
            # Keys are expected to change with the configuration; if they do not, the
            # configuration still wins.
            self._drop(key)
            entry = None
        if entry is not None:
            hard = self._hard_limit(entry)
            if hard is None or now < hard:
                renew_at = self._renew_at(entry)
                if (
                    renew_at is not None
                    and now >= renew_at
                    and entry.refresh is None
                    and now >= entry.next_attempt
                ):
                    self._start_refresh(key, entry, login)
                return entry.client
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(
                self._login(key, login, settings, namespace), name=f"vault-login-{key!r}"
            )
            task.add_done_callback(_consume_exception)
            self._pending[key] = task
        # shield: one impatient caller being cancelled must not cancel everyone's login.
        return (await asyncio.shield(task)).client

    def invalidate(self, key: Hashable) -> bool:
        """Forget the client for ``key`` (e.g. its token was revoked: Vault answered 403).

        A login already in flight is kept: it yields a fresh token anyway.
        """
        return self._drop(key)

    def purge(self, predicate: Callable[[Hashable], bool]) -> int:
        """Forget every key matching ``predicate`` (e.g. all keys of a deleted VaultAuth).

        In-flight logins for those keys still answer their waiters but are not stored.
        """
        keys = [k for k in self._entries if predicate(k)]
        for k in keys:
            self._drop(k)
        for k in [k for k in self._pending if predicate(k)]:
            del self._pending[k]
        self._restore_tried = {k for k in self._restore_tried if not predicate(k)}
        return len(keys)

    async def close(self) -> None:
        """Cancel refreshes and logins in flight and forget everything.

        Tokens are not revoked: they expire on their own within their TTL, and revoking on
        shutdown would cost one Vault write per key exactly when the operator should stop fast.
        """
        self._closed = True
        tasks: list[asyncio.Task[None] | asyncio.Task[_Entry]] = [
            *self._background,
            *self._pending.values(),
        ]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._entries.clear()
        self._pending.clear()
        self._background.clear()

    # -- internals --------------------------------------------------------------------------

    def _drop(self, key: Hashable) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        if entry.refresh is not None:
            entry.refresh.cancel()
        return True

    def _emit(self, event: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("client cache on_event hook failed")

    async def _call_login(self, login: LoginFn) -> AuthToken:
        self.logins += 1
        try:
            token = await login()
        except BaseException:
            self.login_failures += 1
            self._emit("login_failed")
            raise
        self._emit("login")
        return token

    def _new_entry(
        self, token: AuthToken, settings: ConnectionSettings, namespace: str | None
    ) -> _Entry:
        client = VaultClient(
            self.transport, settings, token=token.client_token, namespace=namespace
        )
        return _Entry(
            client=client,
            token=token,
            settings=settings,
            namespace=namespace,
            obtained=self._clock(),
            ttl=float(token.lease_duration),
        )

    async def _login(
        self,
        key: Hashable,
        login: LoginFn,
        settings: ConnectionSettings,
        namespace: str | None,
    ) -> _Entry:
        me = asyncio.current_task()
        try:
            entry = None
            if self.store is not None and key not in self._restore_tried:
                entry = await self._restore(key, login, settings, namespace)
            if entry is None:
                token = await self._call_login(login)
                entry = self._new_entry(token, settings, namespace)
                await self._save(key, entry)
            if self._pending.get(key) is me:
                self._drop(key)
                self._entries[key] = entry
            return entry
        finally:
            if self._pending.get(key) is me:
                del self._pending[key]

    async def _restore(
        self,
        key: Hashable,
        login: LoginFn,
        settings: ConnectionSettings,
        namespace: str | None,
    ) -> _Entry | None:
        """The store's token for ``key`` as a cache entry, or None to log in.

        Errors of the store propagate (and the store is asked again next time): logging in
        instead would replace a token that may still hold leases.
        """
        assert self.store is not None
        probe = VaultClient(self.transport, settings, namespace=namespace)
        restored: Restored | None = await self.store.load(
            key, probe, lambda: self._call_login(login)
        )
        self._restore_tried.add(key)
        if restored is None:
            return None
        entry = self._new_entry(restored.token, settings, namespace)
        if restored.fresh:
            await self._save(key, entry)
            return entry
        age = (datetime.now(UTC) - restored.token.obtained_at).total_seconds()
        entry.obtained -= max(0.0, age)
        now = self._clock()
        renew_at = self._renew_at(entry)
        if renew_at is not None and now >= renew_at and entry.token.renewable:
            # Idle since before the restart: renew now rather than wait for a get that may
            # come after the hard limit (which would mean a login and lost leases).
            try:
                renewed = await self._renew(entry.client)
            except Exception as exc:
                self.renewal_failures += 1
                self._emit("renewal_failed")
                log.info("restored vault token could not be renewed: %s", exc)
            else:
                self.renewals += 1
                self._emit("renewal")
                entry.capped = renewed.lease_duration < entry.token.lease_duration
                entry.obtained = self._clock()
                entry.ttl = float(renewed.lease_duration)
                await self._save(key, entry)
        hard = self._hard_limit(entry)
        if hard is not None and self._clock() >= hard:
            return None
        self.restores += 1
        self._emit("restored")
        return entry

    async def _save(self, key: Hashable, entry: _Entry) -> None:
        if self.store is None:
            return
        # The token as of now: its TTL period and when that began, in wall time (the store
        # outlives this process's monotonic clock).
        started = datetime.now(UTC) - timedelta(seconds=max(0.0, self._clock() - entry.obtained))
        token = replace(entry.token, lease_duration=int(entry.ttl), obtained_at=started)
        try:
            await self.store.save(key, token, entry.client)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The token still serves; the next renewal or login tries again.
            self._emit("save_failed")
            log.warning("persisting the vault token failed: %s", exc)

    def _start_refresh(self, key: Hashable, entry: _Entry, login: LoginFn) -> None:
        task = asyncio.create_task(self._refresh(key, entry, login), name=f"vault-refresh-{key!r}")
        entry.refresh = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, key: Hashable, entry: _Entry, login: LoginFn) -> None:
        try:
            if entry.token.renewable and not entry.capped:
                try:
                    renewed = await self._renew(entry.client)
                except Exception as exc:
                    self.renewal_failures += 1
                    self._emit("renewal_failed")
                    log.info("vault token renewal failed, logging in again: %s", exc)
                else:
                    self.renewals += 1
                    self._emit("renewal")
                    entry.capped = renewed.lease_duration < entry.token.lease_duration
                    entry.obtained = self._clock()
                    entry.ttl = float(renewed.lease_duration)
                    await self._save(key, entry)
                    return
            token = await self._call_login(login)
            if self._entries.get(key) is entry:
                fresh = self._new_entry(token, entry.settings, entry.namespace)
                self._entries[key] = fresh
                await self._save(key, fresh)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The old token still serves until its hard limit; try again a little later.
            entry.next_attempt = self._clock() + self.retry_interval
            log.warning("vault token refresh failed: %s", exc)
        finally:
            entry.refresh = None


def _consume_exception(task: asyncio.Task[_Entry]) -> None:
    # Every waiter may have been cancelled; don't let asyncio log "exception never retrieved".
    if not task.cancelled():
        task.exception()
