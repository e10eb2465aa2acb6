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

No storms (issue #20): a policy mistake must not turn every retry of every object into a login.

- A 403 is ambiguous: the token is gone (revoked, expired) or the policy lacks the path.
  ``check_denied`` asks Vault once (``auth/token/lookup-self`` with the cached token, which the
  default policy allows), single-flight per key, and remembers an "alive" verdict for
  ``check_interval``. Only a token that is really gone is dropped, so the next ``get`` logs
  in (once, shared) — and at most once per key per ``replace_interval``: a fresh token that
  is "gone" again at once is reported, not replaced in a loop.
- A login that fails is remembered per key: for a backoff that doubles from
  ``login_backoff`` up to ``login_backoff_max``, every ``get`` of that key gets the same
  error without a login (a wrong role costs one login per interval, not one per object).
- Tokens do not pile up (at most two live tokens per key): a token the cache drops
  (``invalidate``, ``purge``, new settings, gone) is revoked with ``revoke-self`` in the
  background; one replaced while still valid (a refresh by login, or past the hard limit) is
  kept as the key's *retired* token until it expires, because the leases it created die with
  it — a third token revokes the retired one. ``close`` revokes every token the store did not
  persist (``TokenStore.save`` returned True). Tokens adopted as given (a static token,
  ``AuthToken.revocable`` False) are never revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.connection import ConnectionSettings, Transport
from vaultbridge.vault.errors import PermissionDenied
from vaultbridge.vault.models import AuthToken
from vaultbridge.vault.persist import Restored, TokenStore

log = logging.getLogger(__name__)

LoginFn = Callable[[], Awaitable[AuthToken]]
RenewFn = Callable[[VaultClient], Awaitable[AuthToken]]
RevokeFn = Callable[[VaultClient], Awaitable[None]]
LookupFn = Callable[[VaultClient], Awaitable[AuthToken]]
CacheEventHook = Callable[[str], None]
"""``on_event(name)`` with name in ``login``, ``login_failed``, ``renewal``, ``renewal_failed``,
``restored`` (a persisted token was adopted instead of a login), ``save_failed``,
``token_alive`` / ``token_gone`` (verdicts of ``check_denied``), ``token_revoked`` and
``token_revoke_failed``."""
KeyEventHook = Callable[[str, Hashable], None]
"""``on_key_event(name, key)``: the same events with the key they concern (logins per
identity); the hook maps the key to a low-cardinality label itself."""


async def _renew_self(client: VaultClient) -> AuthToken:
    return await client.renew_self()


async def _revoke_self(client: VaultClient) -> None:
    await client.revoke_self()


async def _lookup_self(client: VaultClient) -> AuthToken:
    return await client.lookup_self()


class TokenCheck(enum.Enum):
    """``check_denied``'s verdict on a 403."""

    ALIVE = "alive"
    """The token is valid: the policy denies the request. Keep the token and report it (the
    error names the path and the capability); retry on the normal backoff."""
    REPLACED = "replaced"
    """The token is gone and was dropped: call ``get`` again (one login, shared) and retry."""
    GONE = "gone"
    """The token is gone, but this key was given a new token less than ``replace_interval``
    ago: report the 403 now; the next check after the interval replaces it."""

    @property
    def retry(self) -> bool:
        return self is TokenCheck.REPLACED


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
    # The store holds this token for the next process: ``close`` leaves it alive.
    persisted: bool = False
    # When lookup-self last said the token is alive / gone (``check_denied``).
    alive_at: float | None = None
    gone_at: float | None = None
    check: asyncio.Task[TokenCheck] | None = None

    @property
    def expires(self) -> float | None:
        return None if self.ttl <= 0 else self.obtained + self.ttl


@dataclass(eq=False)
class _Identity:
    """What the cache remembers per key beyond its current entry."""

    replaced_at: float = float("-inf")  # last time a gone token was dropped for a new login
    login_failures: int = 0  # consecutive
    login_error: Exception | None = None
    login_retry_at: float = float("-inf")
    retired: _Entry | None = None  # replaced while still valid; kept until it expires


class ClientCache:
    """Logged-in ``VaultClient`` objects by an opaque hashable key.

    Counters ``logins``, ``login_failures``, ``renewals`` and ``renewal_failures`` count calls of
    the login / renew functions (so a test can assert "50 resources → 1 login"); ``restores``
    counts persisted tokens adopted from the ``store``; ``checks`` counts lookup-self calls of
    ``check_denied`` and ``revocations`` / ``revocation_failures`` the revoke-self calls;
    ``on_event`` / ``on_key_event`` receive the same events for metrics. ``live_tokens`` is the
    number of tokens held (current and retired).
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
        check_interval: float = 10.0,
        replace_interval: float = 30.0,
        login_backoff: float = 5.0,
        login_backoff_max: float = 120.0,
        revoke: RevokeFn = _revoke_self,
        lookup: LookupFn = _lookup_self,
        close_timeout: float = 5.0,
        on_key_event: KeyEventHook | None = None,
    ) -> None:
        if not 0 < renew_fraction < 1 - expiry_margin <= 1:
            raise ValueError("need 0 < renew_fraction < 1 - expiry_margin <= 1")
        self.transport = transport
        self.renew_fraction = renew_fraction
        self.expiry_margin = expiry_margin
        self.retry_interval = retry_interval
        self._clock = clock
        self._renew = renew
        self._revoke = revoke
        self._lookup = lookup
        self.on_event = on_event
        self.on_key_event = on_key_event
        self.store = store
        self.check_interval = check_interval
        self.replace_interval = replace_interval
        self.login_backoff = login_backoff
        self.login_backoff_max = login_backoff_max
        self.close_timeout = close_timeout
        # How long the waiters of a login whose key was purged meanwhile may use its token.
        self.orphan_grace = 30.0
        self._identities: dict[Hashable, _Identity] = {}
        self._revocations: set[asyncio.Task[None]] = set()
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
        self.checks = 0
        self.revocations = 0
        self.revocation_failures = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def live_tokens(self) -> int:
        """Tokens held: the current one of each key plus retired ones not yet expired."""
        now = self._clock()
        retired = sum(
            1
            for i in self._identities.values()
            if i.retired is not None and (i.retired.expires or now) > now
        )
        return len(self._entries) + retired

    def live_tokens_of(self, key: Hashable) -> int:
        """Tokens held for ``key`` (never more than two)."""
        ident = self._identities.get(key)
        retired = ident.retired if ident is not None else None
        now = self._clock()
        held = retired is not None and (retired.expires or now) > now
        return int(key in self._entries) + int(held)

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
        shared for the login backoff: until it ends, ``get`` re-raises the last error without
        calling ``login``.
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
            ident = self._identities.get(key)
            if ident is not None and ident.login_error is not None and now < ident.login_retry_at:
                # A failing login (wrong role, bad JWT) is shared by every object of the key
                # for its backoff, not retried per object.
                raise ident.login_error.with_traceback(None)
            task = asyncio.create_task(
                self._login(key, login, settings, namespace), name=f"vault-login-{key!r}"
            )
            task.add_done_callback(_consume_exception)
            self._pending[key] = task
        # shield: one impatient caller being cancelled must not cancel everyone's login.
        return (await asyncio.shield(task)).client

    def invalidate(self, key: Hashable) -> bool:
        """Forget the client for ``key`` and revoke its token (in the background).

        A login already in flight is kept: it yields a fresh token anyway. After a 403 use
        ``check_denied`` instead: it keeps a token that is still valid.
        """
        return self._drop(key)

    async def check_denied(self, key: Hashable, client: VaultClient) -> TokenCheck:
        """Vault answered 403 to ``client`` (from ``get(key)``, or ``with_namespace`` of it):
        is its token gone, or does the policy deny the request? See ``TokenCheck``.

        One ``lookup-self`` with the cached token decides, shared by every concurrent caller
        of the key; an "alive" verdict is reused for ``check_interval``, a "gone" one that
        could not be acted on (``GONE``) until ``replace_interval`` has passed. Errors of the
        lookup itself (Vault unreachable, sealed) propagate.
        """
        entry = self._entries.get(key)
        if entry is None or not entry.client.shares_token(client):
            # The refused token is no longer the cached one (another caller's check replaced
            # it, or it was dropped): the next ``get`` has a newer one, or logs in once.
            return TokenCheck.REPLACED
        now = self._clock()
        if entry.alive_at is not None and now - entry.alive_at < self.check_interval:
            return TokenCheck.ALIVE
        ident = self._identities.get(key)
        if (
            entry.gone_at is not None
            and ident is not None
            and now - ident.replaced_at < self.replace_interval
        ):
            return TokenCheck.GONE
        if entry.check is None:
            task = asyncio.create_task(self._check(key, entry), name=f"vault-check-{key!r}")
            task.add_done_callback(_consume_exception)
            entry.check = task
        return await asyncio.shield(entry.check)

    def purge(self, predicate: Callable[[Hashable], bool]) -> int:
        """Forget every key matching ``predicate`` (e.g. all keys of a deleted VaultAuth).

        In-flight logins for those keys still answer their waiters but are not stored.
        """
        keys = [k for k in self._entries if predicate(k)]
        for k in keys:
            self._drop(k)
        for k in [k for k in self._pending if predicate(k)]:
            del self._pending[k]
        for k in [k for k in self._identities if predicate(k)]:
            retired = self._identities.pop(k).retired
            if retired is not None:
                self._revoke_later(retired)
        self._restore_tried = {k for k in self._restore_tried if not predicate(k)}
        return len(keys)

    async def close(self) -> None:
        """Cancel refreshes and logins in flight, revoke the tokens nobody will use again and
        forget everything.

        A token the store persisted stays alive for the next process (it holds the leases of
        the credentials in use); every other token the cache obtained is revoked — one Vault
        write per key, bounded by ``close_timeout`` in all (what is left then expires at its
        TTL).
        """
        self._closed = True
        tasks: list[asyncio.Task[None] | asyncio.Task[_Entry] | asyncio.Task[TokenCheck]] = [
            *self._background,
            *self._pending.values(),
            *(e.check for e in self._entries.values() if e.check is not None),
        ]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for entry in self._entries.values():
            if not entry.persisted:
                self._revoke_later(entry)
        now = self._clock()
        for ident in self._identities.values():
            if ident.retired is not None and (ident.retired.expires or now) > now:
                self._revoke_later(ident.retired)
        if self._revocations:
            _done, late = await asyncio.wait(set(self._revocations), timeout=self.close_timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)
                log.warning("%d vault token(s) not revoked before shutdown", len(late))
        self._entries.clear()
        self._pending.clear()
        self._background.clear()
        self._identities.clear()

    # -- internals --------------------------------------------------------------------------

    def _identity(self, key: Hashable) -> _Identity:
        ident = self._identities.get(key)
        if ident is None:
            ident = self._identities[key] = _Identity()
        return ident

    def _drop(self, key: Hashable, *, retire: bool = False) -> bool:
        """Forget the entry of ``key``; its token is revoked, or with ``retire`` (replaced
        while still valid: its leases live as long as it does) kept until it expires."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        if entry.refresh is not None:
            entry.refresh.cancel()
        if retire:
            self._retire(key, entry)
        else:
            self._revoke_later(entry)
        return True

    def _retire(self, key: Hashable, entry: _Entry) -> None:
        ident = self._identity(key)
        now = self._clock()
        if ident.retired is not None and (ident.retired.expires or now) > now:
            # It would be this key's third live token: the oldest goes.
            self._revoke_later(ident.retired)
        expires = entry.expires
        if expires is None:
            # A token that never expires would be held forever: revoke instead.
            self._revoke_later(entry)
            ident.retired = None
        else:
            ident.retired = entry if expires > now else None

    def _revoke_later(self, entry: _Entry, delay: float = 0.0) -> None:
        """Revoke ``entry``'s token in the background (never a token adopted as given)."""
        if not entry.token.revocable:
            return
        client = VaultClient(
            self.transport,
            entry.settings,
            token=entry.token.client_token,
            namespace=entry.namespace,
        )
        task = asyncio.create_task(self._revoke_token(client, delay), name="vault-revoke-token")
        self._revocations.add(task)
        task.add_done_callback(self._revocations.discard)

    async def _revoke_token(self, client: VaultClient, delay: float = 0.0) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            await self._revoke(client)
        except asyncio.CancelledError:
            raise
        except PermissionDenied:
            # Already revoked or expired (the usual case for a token found gone).
            self.revocations += 1
            self._emit("token_revoked")
        except Exception as exc:
            self.revocation_failures += 1
            self._emit("token_revoke_failed")
            log.info("revoking a replaced vault token failed (it expires on its own): %s", exc)
        else:
            self.revocations += 1
            self._emit("token_revoked")

    async def _check(self, key: Hashable, entry: _Entry) -> TokenCheck:
        probe = VaultClient(
            self.transport,
            entry.settings,
            token=entry.token.client_token,
            namespace=entry.namespace,
        )
        self.checks += 1
        try:
            await self._lookup(probe)
        except PermissionDenied:
            now = self._clock()
            entry.gone_at = now
            entry.alive_at = None
            self._emit("token_gone", key)
            ident = self._identity(key)
            if now - ident.replaced_at < self.replace_interval:
                log.warning(
                    "vault token replaced less than %.0fs ago is refused again; not logging "
                    "in again before then",
                    self.replace_interval,
                )
                return TokenCheck.GONE
            ident.replaced_at = now
            if self._entries.get(key) is entry:
                # Revoked too (best effort): if lookup-self was only forbidden by a policy
                # without `default`, the token is alive and must not be left behind.
                self._drop(key)
            return TokenCheck.REPLACED
        else:
            entry.alive_at = self._clock()
            entry.gone_at = None
            self._emit("token_alive", key)
            return TokenCheck.ALIVE
        finally:
            entry.check = None

    def _emit(self, event: str, key: Hashable | None = None) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("client cache on_event hook failed")
        if self.on_key_event is not None and key is not None:
            try:
                self.on_key_event(event, key)
            except Exception:
                log.exception("client cache on_key_event hook failed")

    async def _call_login(self, login: LoginFn, key: Hashable | None = None) -> AuthToken:
        self.logins += 1
        try:
            token = await login()
        except BaseException:
            self.login_failures += 1
            self._emit("login_failed", key)
            raise
        self._emit("login", key)
        return token

    def _login_failed(self, key: Hashable, error: Exception) -> None:
        ident = self._identity(key)
        ident.login_failures += 1
        ident.login_error = error
        delay = self.login_backoff * 2 ** min(ident.login_failures - 1, 30)
        ident.login_retry_at = self._clock() + min(self.login_backoff_max, delay)

    def _login_succeeded(self, key: Hashable) -> None:
        ident = self._identities.get(key)
        if ident is not None:
            ident.login_failures = 0
            ident.login_error = None
            ident.login_retry_at = float("-inf")

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
                try:
                    token = await self._call_login(login, key)
                except Exception as exc:
                    self._login_failed(key, exc)
                    raise
                self._login_succeeded(key)
                entry = self._new_entry(token, settings, namespace)
                await self._save(key, entry)
            if self._pending.get(key) is me:
                # An entry still here was past its hard limit: still valid, so retired.
                self._drop(key, retire=True)
                self._entries[key] = entry
            elif not entry.persisted:
                # Purged while logging in: the waiters use the token for the request at hand,
                # nobody after them; revoke it once they are done.
                self._revoke_later(entry, delay=self.orphan_grace)
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
            key, probe, lambda: self._call_login(login, key)
        )
        self._restore_tried.add(key)
        if restored is None:
            return None
        entry = self._new_entry(restored.token, settings, namespace)
        if restored.fresh:
            await self._save(key, entry)
            return entry
        entry.persisted = True
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
            entry.persisted = (await self.store.save(key, token, entry.client)) is True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The token still serves; the next renewal or login tries again.
            entry.persisted = False
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
            token = await self._call_login(login, key)
            fresh = self._new_entry(token, entry.settings, entry.namespace)
            if self._entries.get(key) is entry:
                self._entries[key] = fresh
                # The old token is still valid and may hold leases: retired, not revoked.
                self._retire(key, entry)
                await self._save(key, fresh)
            else:
                # Dropped meanwhile (invalidated, purged): nobody will use this token.
                self._revoke_later(fresh)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The old token still serves until its hard limit; try again a little later.
            entry.next_attempt = self._clock() + self.retry_interval
            log.warning("vault token refresh failed: %s", exc)
        finally:
            entry.refresh = None


def _consume_exception(task: asyncio.Task[_Entry] | asyncio.Task[TokenCheck]) -> None:
    # Every waiter may have been cancelled; don't let asyncio log "exception never retrieved".
    if not task.cancelled():
        task.exception()
