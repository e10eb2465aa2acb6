"""ClientCache single-flight and token lifetime logic, with a fake clock and fake login/renew.

The login and renew functions are the pure-logic edge here; the real thing (approle against
OpenBao) is covered in tests/integration/test_vault_client.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from vaultbridge.vault import AuthToken, ClientCache, ConnectionSettings, Transport, VaultClient
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


def make_cache(
    transport: Transport, clock: Clock, renew: FakeRenew | None = None, **kw: float
) -> ClientCache:
    return ClientCache(transport, clock=clock, renew=renew or FakeRenew(), **kw)  # type: ignore[arg-type]


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


async def test_login_failure_reaches_every_waiter_and_is_not_cached(transport: Transport) -> None:
    login = FakeLogin()
    login.fail_with = PermissionDenied("permission denied", status=403)
    cache = make_cache(transport, Clock())
    results = await asyncio.gather(
        *(cache.get("k", login, SETTINGS, None) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, PermissionDenied) for r in results)
    assert login.calls == 1
    assert cache.login_failures == 1
    assert "k" not in cache
    login.fail_with = None
    await cache.get("k", login, SETTINGS, None)
    assert login.calls == 2
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
