"""ClientCache single-flight and token lifetime logic, with a fake clock and fake login/renew.

The login and renew functions are the pure-logic edge here; the real thing (approle against
OpenBao) is covered in tests/integration/test_vault_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from vaultbridge.vault import (
    AuthToken,
    ClientCache,
    ConnectionSettings,
    TokenCheck,
    Transport,
    VaultClient,
)
from vaultbridge.vault.errors import PermissionDenied, VaultUnreachable

SETTINGS = ConnectionSettings("http://127.0.0.1:9")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token(ttl: int, *, renewable: bool = True, n: int = 0) -> AuthToken:
    return AuthToken.from_auth(
        {
            "client_token": f"tok-{n}",
            "accessor": f"acc-{n}",
            "lease_duration": ttl,
            "renewable": renewable,
        }
    )


class FakeLogin:
    """Counts calls; optionally blocks until released, fails, or hands out short TTLs."""

    def __init__(self, ttl: int = 300, *, renewable: bool = True) -> None:
        self.ttl = ttl
        self.renewable = renewable
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail_with: Exception | None = None
        self._n = itertools.count(1)

    async def __call__(self) -> AuthToken:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        return token(self.ttl, renewable=self.renewable, n=next(self._n))


class FakeRenew:
    def __init__(self, ttl: int = 300) -> None:
        self.ttl = ttl
        self.calls: list[VaultClient] = []
        self.gate: asyncio.Event | None = None
        self.fail_with: Exception | None = None

    async def __call__(self, client: VaultClient) -> AuthToken:
        self.calls.append(client)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return token(self.ttl)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    yield t
    await t.close()


class FakeRevoke:
    """Records the tokens revoked (revoke-self) instead of sending anything."""

    def __init__(self) -> None:
        self.tokens: list[str | None] = []
        self.fail_with: Exception | None = None

    async def __call__(self, client: VaultClient) -> None:
        self.tokens.append(client._token)
        if self.fail_with is not None:
            raise self.fail_with


class FakeLookup:
    """lookup-self: alive unless the token is in ``gone``; optionally blocks."""

    def __init__(self) -> None:
        self.calls = 0
        self.gone: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, client: VaultClient) -> AuthToken:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if client._token in self.gone:
            raise PermissionDenied("permission denied", status=403)
        return token(100)


def make_cache(
    transport: Transport,
    clock: Clock,
    renew: FakeRenew | None = None,
    revoke: FakeRevoke | None = None,
    lookup: FakeLookup | None = None,
    **kw: float,
) -> ClientCache:
    return ClientCache(
        transport,
        clock=clock,
        renew=renew or FakeRenew(),
        revoke=revoke or FakeRevoke(),
        lookup=lookup or FakeLookup(),
        **kw,  # type: ignore[arg-type]
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fifty_concurrent_gets_cause_exactly_one_login(transport: Transport) -> None:
    login = FakeLogin()
    login.gate = asyncio.Event()
    cache = make_cache(transport, Clock())
    callers = [asyncio.create_task(cache.get("k", login, SETTINGS, None)) for _ in range(50)]
    await settle()
    assert login.calls == 1
    login.gate.set()
    clients = await asyncio.gather(*callers)
    assert len({id(c) for c in clients}) == 1
    assert cache.logins == 1
    assert login.calls == 1
    assert clients[0].has_token
    assert clients[0].namespace is None
    # later callers are served from the cache
    assert await cache.get("k", login, SETTINGS, None) is clients[0]
    assert login.calls == 1
    await cache.close()


async def test_distinct_keys_log_in_separately(transport: Transport) -> None:
    login = FakeLogin()
    cache = make_cache(transport, Clock())
    a, b = await asyncio.gather(
        cache.get(("auth-a", 1), login, SETTINGS, "ns1"),
        cache.get(("auth-b", 1), login, SETTINGS, None),
    )
    assert a is not b
    assert a.namespace == "ns1"
    assert login.calls == 2
    assert len(cache) == 2
    await cache.close()


async def test_login_failure_reaches_every_waiter_and_is_shared_for_the_backoff(
    transport: Transport,
) -> None:
    clock = Clock()
    login = FakeLogin()
    login.fail_with = PermissionDenied("permission denied", status=403)
    cache = make_cache(transport, clock, login_backoff=5.0, login_backoff_max=20.0)
    results = await asyncio.gather(
        *(cache.get("k", login, SETTINGS, None) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, PermissionDenied) for r in results)
    assert login.calls == 1
    assert cache.login_failures == 1
    assert "k" not in cache
    # Within the backoff every caller of the key gets the same error without a login...
    for _ in range(100):
        with pytest.raises(PermissionDenied):
            await cache.get("k", login, SETTINGS, None)
    assert login.calls == 1
    # ...other keys are not affected...
    login.fail_with = None
    await cache.get("other", login, SETTINGS, None)
    assert login.calls == 2
    # ...and after it one login is tried again; the backoff doubles up to its maximum.
    login.fail_with = PermissionDenied("permission denied", status=403)
    windows = []
    for _ in range(4):
        clock.now += 0.001
        start = clock.now
        with pytest.raises(PermissionDenied):
            await cache.get("k", login, SETTINGS, None)
        calls = login.calls
        while True:
            clock.now += 0.5
            with contextlib.suppress(PermissionDenied):
                await cache.get("k", login, SETTINGS, None)
            if login.calls > calls:
                break
        windows.append(round(clock.now - start))
    assert windows == [5, 10, 20, 20]
    login.fail_with = None
    clock.now += 20
    await cache.get("k", login, SETTINGS, None)
    assert "k" in cache
    await cache.close()


async def test_renewal_starts_at_two_thirds_without_blocking_callers(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew(ttl=300)
    renew.gate = asyncio.Event()
    login = FakeLogin(ttl=300)
    cache = make_cache(transport, clock, renew)
    client = await cache.get("k", login, SETTINGS, None)

    clock.now += 199  # just before 2/3 of 300 s
    assert await cache.get("k", login, SETTINGS, None) is client
    await settle()
    assert renew.calls == []

    clock.now += 2  # past the renewal point: callers still get the client immediately
    for _ in range(20):
        assert await cache.get("k", login, SETTINGS, None) is client
    await settle()
    assert renew.calls == [client]  # one renewal in flight, however many callers
    renew.gate.set()
    await settle()
    assert cache.renewals == 1
    assert login.calls == 1

    # the renewed TTL counts from the renewal: 250 s later is still before the new hard limit
    clock.now += 250
    assert await cache.get("k", login, SETTINGS, None) is client
    await settle()
    assert login.calls == 1
    await cache.close()


async def test_failed_renewal_falls_back_to_login_in_background(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew()
    renew.fail_with = PermissionDenied("permission denied", status=403)
    login = FakeLogin(ttl=300)
    cache = make_cache(transport, clock, renew)
    first = await cache.get("k", login, SETTINGS, None)
    clock.now += 210
    assert await cache.get("k", login, SETTINGS, None) is first  # old token still serves
    await settle()
    assert cache.renewal_failures == 1
    assert login.calls == 2
    second = await cache.get("k", login, SETTINGS, None)
    assert second is not first
    await cache.close()


async def test_non_renewable_token_is_replaced_by_login(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew()
    login = FakeLogin(ttl=60, renewable=False)
    cache = make_cache(transport, clock, renew)
    first = await cache.get("k", login, SETTINGS, None)
    clock.now += 45
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert renew.calls == []
    assert login.calls == 2
    assert await cache.get("k", login, SETTINGS, None) is not first
    await cache.close()


async def test_renewal_capped_by_max_ttl_leads_to_login_next_time(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew(ttl=90)  # asked for 300 again, Vault granted 90: max TTL is near
    login = FakeLogin(ttl=300)
    cache = make_cache(transport, clock, renew)
    await cache.get("k", login, SETTINGS, None)
    clock.now += 201
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert (cache.renewals, login.calls) == (1, 1)
    clock.now += 61  # 2/3 of the capped 90 s
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert (cache.renewals, login.calls) == (1, 2)
    await cache.close()


async def test_past_hard_limit_callers_wait_for_one_fresh_login(transport: Transport) -> None:
    clock = Clock()
    login = FakeLogin(ttl=100)
    cache = make_cache(transport, clock)
    first = await cache.get("k", login, SETTINGS, None)
    clock.now += 95  # beyond 90 % of the TTL: too close to expiry to hand out
    clients = await asyncio.gather(*(cache.get("k", login, SETTINGS, None) for _ in range(10)))
    assert {id(c) for c in clients} == {id(clients[0])}
    assert clients[0] is not first
    assert login.calls == 2
    await cache.close()


async def test_token_without_ttl_is_never_refreshed(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew()
    login = FakeLogin(ttl=0)
    cache = make_cache(transport, clock, renew)
    first = await cache.get("k", login, SETTINGS, None)
    clock.now += 10**9
    assert await cache.get("k", login, SETTINGS, None) is first
    await settle()
    assert renew.calls == []
    assert login.calls == 1
    await cache.close()


async def test_failed_refresh_is_retried_only_after_retry_interval(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew()
    renew.fail_with = VaultUnreachable("down")
    login = FakeLogin(ttl=300)
    cache = make_cache(transport, clock, renew, retry_interval=5.0)
    first = await cache.get("k", login, SETTINGS, None)
    clock.now += 201
    login.fail_with = VaultUnreachable("down")
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert (len(renew.calls), login.calls) == (1, 2)
    clock.now += 1
    assert await cache.get("k", login, SETTINGS, None) is first
    await settle()
    assert (len(renew.calls), login.calls) == (1, 2)  # within retry interval: nothing
    clock.now += 5
    login.fail_with = None
    renew.fail_with = None
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert len(renew.calls) == 2
    assert cache.renewals == 1
    await cache.close()


async def test_invalidate_forces_a_new_login(transport: Transport) -> None:
    login = FakeLogin()
    cache = make_cache(transport, Clock())
    first = await cache.get("k", login, SETTINGS, None)
    assert cache.invalidate("k")
    assert not cache.invalidate("k")
    second = await cache.get("k", login, SETTINGS, None)
    assert second is not first
    assert login.calls == 2
    await cache.close()


async def test_purge_drops_matching_keys_only(transport: Transport) -> None:
    login = FakeLogin()
    cache = make_cache(transport, Clock())
    for key in [("auth-a", 1), ("auth-a", 2), ("auth-b", 1)]:
        await cache.get(key, login, SETTINGS, None)

    def predicate(k: object) -> bool:
        return isinstance(k, tuple) and k[0] == "auth-a"

    assert cache.purge(predicate) == 2
    assert len(cache) == 1
    assert ("auth-b", 1) in cache
    await cache.close()


async def test_changed_settings_for_same_key_cause_a_new_login(transport: Transport) -> None:
    login = FakeLogin()
    cache = make_cache(transport, Clock())
    first = await cache.get("k", login, SETTINGS, None)
    other = ConnectionSettings("http://127.0.0.1:10")
    second = await cache.get("k", login, other, None)
    assert second is not first
    assert second.settings is other
    assert (await cache.get("k", login, other, "ns")).namespace == "ns"
    assert login.calls == 3
    await cache.close()


async def test_a_cancelled_caller_does_not_cancel_the_shared_login(transport: Transport) -> None:
    login = FakeLogin()
    login.gate = asyncio.Event()
    cache = make_cache(transport, Clock())
    impatient = asyncio.create_task(cache.get("k", login, SETTINGS, None))
    patient = asyncio.create_task(cache.get("k", login, SETTINGS, None))
    await settle()
    impatient.cancel()
    await settle()
    login.gate.set()
    client = await patient
    assert impatient.cancelled()
    assert client.has_token
    assert login.calls == 1
    await cache.close()


async def test_close_cancels_refreshes_in_flight(transport: Transport) -> None:
    clock = Clock()
    renew = FakeRenew()
    renew.gate = asyncio.Event()  # never released
    login = FakeLogin(ttl=300)
    cache = make_cache(transport, clock, renew)
    await cache.get("k", login, SETTINGS, None)
    clock.now += 250
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert len(renew.calls) == 1
    background = [t for t in asyncio.all_tasks() if t.get_name().startswith("vault-refresh-")]
    assert len(background) == 1
    await cache.close()
    assert background[0].cancelled()
    assert len(cache) == 0
    with pytest.raises(RuntimeError, match="closed"):
        await cache.get("k", login, SETTINGS, None)


async def test_hooks_report_logins_and_renewals(transport: Transport) -> None:
    events: list[str] = []
    clock = Clock()
    login = FakeLogin(ttl=300)
    cache = ClientCache(transport, clock=clock, renew=FakeRenew(), on_event=events.append)
    await cache.get("k", login, SETTINGS, None)
    clock.now += 250
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert events == ["login", "renewal"]
    await cache.close()


def test_renewal_point_must_precede_hard_limit() -> None:
    with pytest.raises(ValueError):
        ClientCache(Transport(), renew_fraction=0.95, expiry_margin=0.1)


# -- issue #20: a 403 is checked, not answered with a login; tokens do not pile up ------------


async def test_denied_with_a_live_token_is_the_policy_one_lookup_no_login(
    transport: Transport,
) -> None:
    clock = Clock()
    login, lookup = FakeLogin(), FakeLookup()
    lookup.gate = asyncio.Event()
    cache = make_cache(transport, clock, lookup=lookup, check_interval=10.0)
    client = await cache.get("k", login, SETTINGS, None)
    # Twenty objects of the identity are refused at once: one lookup-self answers them all.
    checks = [
        asyncio.create_task(cache.check_denied("k", client.with_namespace("team")))
        for _ in range(20)
    ]
    await settle()
    assert lookup.calls == 1
    lookup.gate.set()
    verdicts = await asyncio.gather(*checks)
    assert set(verdicts) == {TokenCheck.ALIVE}
    assert not TokenCheck.ALIVE.retry
    # The alive verdict is reused for check_interval, then asked again.
    for _ in range(50):
        assert await cache.check_denied("k", client) is TokenCheck.ALIVE
    assert lookup.calls == 1
    clock.now += 10
    assert await cache.check_denied("k", client) is TokenCheck.ALIVE
    assert lookup.calls == 2
    assert login.calls == 1
    assert await cache.get("k", login, SETTINGS, None) is client
    await cache.close()


async def test_gone_token_is_replaced_once_per_interval_and_revoked(transport: Transport) -> None:
    clock = Clock()
    login, lookup, revoke = FakeLogin(), FakeLookup(), FakeRevoke()
    cache = make_cache(transport, clock, lookup=lookup, revoke=revoke, replace_interval=30.0)
    first = await cache.get("k", login, SETTINGS, None)
    lookup.gone.add("tok-1")  # revoked by hand
    verdicts = await asyncio.gather(*(cache.check_denied("k", first) for _ in range(20)))
    assert set(verdicts) == {TokenCheck.REPLACED}
    assert lookup.calls == 1
    assert "k" not in cache
    # Every caller gets again: one shared login.
    clients = await asyncio.gather(*(cache.get("k", login, SETTINGS, None) for _ in range(20)))
    assert {id(c) for c in clients} == {id(clients[0])}
    assert login.calls == 2
    await settle()
    assert revoke.tokens == ["tok-1"]  # best effort, in case lookup-self was only forbidden
    # A caller still holding the old client is told to get again, without a lookup.
    assert await cache.check_denied("k", first) is TokenCheck.REPLACED
    assert lookup.calls == 1
    # The new token is refused too, at once: no second login within the interval.
    lookup.gone.add("tok-2")
    assert await cache.check_denied("k", clients[0]) is TokenCheck.GONE
    assert await cache.check_denied("k", clients[0]) is TokenCheck.GONE
    assert lookup.calls == 2  # the gone verdict is remembered too
    assert await cache.get("k", login, SETTINGS, None) is clients[0]
    clock.now += 30
    assert await cache.check_denied("k", clients[0]) is TokenCheck.REPLACED
    await cache.get("k", login, SETTINGS, None)
    assert login.calls == 3
    await cache.close()


async def test_lookup_errors_propagate_and_keep_the_token(transport: Transport) -> None:
    login = FakeLogin()

    async def unreachable(_client: VaultClient) -> AuthToken:
        raise VaultUnreachable("cannot reach")

    cache = ClientCache(transport, clock=Clock(), revoke=FakeRevoke(), lookup=unreachable)
    client = await cache.get("k", login, SETTINGS, None)
    with pytest.raises(VaultUnreachable):
        await cache.check_denied("k", client)
    assert await cache.get("k", login, SETTINGS, None) is client
    assert login.calls == 1
    await cache.close()


async def test_replaced_tokens_are_retired_then_revoked_at_most_two_live(
    transport: Transport,
) -> None:
    clock = Clock()
    login = FakeLogin(ttl=300, renewable=False)  # every refresh is a login
    revoke = FakeRevoke()
    cache = make_cache(transport, clock, revoke=revoke)
    await cache.get("k", login, SETTINGS, None)  # tok-1, expires at 1300
    assert cache.live_tokens_of("k") == 1
    clock.now += 201  # past the renewal point: a background login replaces the token
    login.ttl = 60  # (the role's TTL was lowered meanwhile)
    await cache.get("k", login, SETTINGS, None)
    await settle()
    # The replaced token stays alive (its leases live as long as it does) as "retired".
    assert login.calls == 2
    assert cache.live_tokens_of("k") == 2
    assert revoke.tokens == []
    clock.now += 41  # tok-2 (60 s) is past its renewal point while tok-1 still lives
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert login.calls == 3
    # A third live token: the oldest is revoked.
    assert revoke.tokens == ["tok-1"]
    assert cache.live_tokens_of("k") == cache.live_tokens == 2
    # A retired token past its expiry is not counted (and not revoked: it is gone anyway).
    clock.now += 60
    assert cache.live_tokens_of("k") == 1
    # Past the hard limit of the current one, the waited-for login retires it too.
    await cache.get("k", login, SETTINGS, None)
    assert login.calls == 4
    assert cache.live_tokens_of("k") == 1  # tok-3 expired meanwhile: nothing to hold
    await cache.close()
    assert revoke.tokens == ["tok-1", "tok-4"]  # not persisted: revoked at shutdown


async def test_invalidate_purge_and_new_settings_revoke_the_dropped_token(
    transport: Transport,
) -> None:
    login, revoke = FakeLogin(), FakeRevoke()
    cache = make_cache(transport, Clock(), revoke=revoke)
    await cache.get("a", login, SETTINGS, None)
    await cache.get("b", login, SETTINGS, None)
    cache.invalidate("a")
    cache.purge(lambda k: k == "b")
    await cache.get("c", login, SETTINGS, None)
    await cache.get("c", login, ConnectionSettings("http://127.0.0.1:10"), None)
    await settle()
    assert sorted(t or "" for t in revoke.tokens) == ["tok-1", "tok-2", "tok-3"]
    await cache.close()


class FakeStore:
    def __init__(self, persist: bool) -> None:
        self.persist = persist
        self.saved: list[str] = []

    async def load(self, key: object, client: VaultClient, login: object) -> None:
        return None

    async def save(self, key: object, token: AuthToken, client: VaultClient) -> bool:
        self.saved.append(token.client_token)
        return self.persist


@pytest.mark.parametrize("persist", [True, False])
async def test_close_revokes_only_tokens_not_persisted(transport: Transport, persist: bool) -> None:
    revoke = FakeRevoke()
    store = FakeStore(persist)
    cache = ClientCache(transport, clock=Clock(), revoke=revoke, lookup=FakeLookup(), store=store)
    await cache.get("k", FakeLogin(), SETTINGS, None)

    async def static_token() -> AuthToken:
        # What `use_token` returns for a token given in a Secret: never ours to revoke.
        return AuthToken.from_lookup("static", {"ttl": 300})

    await cache.get("static", static_token, SETTINGS, None)
    assert store.saved == ["tok-1", "static"]
    await cache.close()
    # The persisted token holds the leases the next process keeps; the static one is the
    # user's. Revocation failures at shutdown are tolerated.
    assert revoke.tokens == ([] if persist else ["tok-1"])


async def test_close_bounds_the_time_spent_revoking(transport: Transport) -> None:
    async def hang(_client: VaultClient) -> None:
        await asyncio.Event().wait()

    cache = ClientCache(
        transport, clock=Clock(), revoke=hang, lookup=FakeLookup(), close_timeout=0.05
    )
    await cache.get("k", FakeLogin(), SETTINGS, None)
    await cache.close()  # returns although the revocation never answers
    assert len(cache) == 0


async def test_key_events_name_the_key(transport: Transport) -> None:
    events: list[tuple[str, object]] = []
    login = FakeLogin()
    cache = ClientCache(
        transport,
        clock=Clock(),
        revoke=FakeRevoke(),
        lookup=FakeLookup(),
        on_key_event=lambda name, key: events.append((name, key)),
    )
    client = await cache.get("k", login, SETTINGS, None)
    await cache.check_denied("k", client)
    login.fail_with = VaultUnreachable("down")
    with pytest.raises(VaultUnreachable):
        await cache.get("j", login, SETTINGS, None)
    assert events == [("login", "k"), ("token_alive", "k"), ("login_failed", "j")]
    await cache.close()


async def test_token_of_a_login_purged_in_flight_is_revoked_after_its_waiters(
    transport: Transport,
) -> None:
    login, revoke = FakeLogin(), FakeRevoke()
    login.gate = asyncio.Event()
    cache = make_cache(transport, Clock(), revoke=revoke)
    cache.orphan_grace = 0.01
    waiter = asyncio.create_task(cache.get("k", login, SETTINGS, None))
    await settle()
    cache.purge(lambda k: k == "k")  # its VaultAuth was deleted meanwhile
    login.gate.set()
    client = await waiter  # the waiter still gets its client...
    assert client.has_token
    assert "k" not in cache
    for _ in range(100):
        if revoke.tokens:
            break
        await asyncio.sleep(0.01)
    assert revoke.tokens == ["tok-1"]  # ...and the token is revoked after the grace
    await cache.close()
