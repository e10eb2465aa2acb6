"""FairShare in front of the TokenBucket: round-robin tokens over tenants, with a fake clock
whose sleep advances time (the whole timeline is simulated, so orders are deterministic)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from vaultbridge.vault.fairshare import FairShare, current_tenant, tenant_scope
from vaultbridge.vault.ratelimit import TokenBucket


class SimClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    assert not leaked, f"leaked tasks: {leaked}"


def make(
    rate: float = 10.0, burst: int = 1, waits: list[tuple[str, float]] | None = None
) -> tuple[FairShare, TokenBucket, SimClock]:
    clock = SimClock()
    bucket = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    fair = FairShare(
        bucket,
        clock=clock,
        sleep=clock.sleep,
        on_wait=(lambda t, s: waits.append((t, s))) if waits is not None else None,
    )
    return fair, bucket, clock


async def run_requests(fair: FairShare, plan: list[str], order: list[str]) -> None:
    async def one(tenant: str) -> None:
        with tenant_scope(tenant):
            await fair.acquire()
        order.append(tenant)

    await asyncio.gather(*(one(t) for t in plan))


async def test_without_contention_tokens_come_straight_from_the_bucket() -> None:
    fair, _bucket, clock = make(rate=10.0, burst=5)
    order: list[str] = []
    await run_requests(fair, ["a"] * 5, order)
    assert order == ["a"] * 5
    assert clock.sleeps == []


async def test_one_request_of_a_quiet_tenant_passes_a_thousand_queued_ones() -> None:
    fair, _bucket, _clock = make(rate=100.0, burst=1)
    order: list[str] = []
    noisy = asyncio.ensure_future(run_requests(fair, ["noisy"] * 1000, order))
    while fair.waiting < 990:  # the 1,000 queue up (a few are granted meanwhile)
        await asyncio.sleep(0)
    granted_before = len(order)
    quiet = asyncio.ensure_future(run_requests(fair, ["quiet"], order))
    await asyncio.gather(noisy, quiet)
    assert order.index("quiet") - granted_before <= 2
    assert len(order) == 1001


async def test_tokens_are_shared_round_robin_while_tenants_wait() -> None:
    fair, _bucket, _clock = make(rate=10.0, burst=1)
    order: list[str] = []
    await run_requests(fair, ["a"] * 60 + ["b"] * 30 + ["c"] * 5, order)
    first = Counter(order[1:16])  # after the one free token: 15 grants, 5 turns each
    assert first == {"a": 5, "b": 5, "c": 5}
    middle = Counter(order[16:66])  # c is done; a and b alternate
    assert middle == {"a": 25, "b": 25}


async def test_total_rate_is_the_buckets() -> None:
    fair, _bucket, clock = make(rate=10.0, burst=1)
    order: list[str] = []
    start = clock.now
    await run_requests(fair, ["a", "b", "c", "d"] * 5, order)
    assert len(order) == 20
    # one free token, then 19 at 10 per second
    assert clock.now - start == pytest.approx(1.9)


async def test_waits_are_reported_per_tenant() -> None:
    waits: list[tuple[str, float]] = []
    fair, _bucket, _clock = make(rate=10.0, burst=1, waits=waits)
    await run_requests(fair, ["a", "a", "b"], [])
    # a's first request took the free token without waiting (not reported)
    assert [t for t, _ in waits] == ["a", "b"] or [t for t, _ in waits] == ["b", "a"]
    assert all(s > 0 for _, s in waits)


async def test_cancelled_waiter_gives_up_its_place_and_unused_tokens_go_back() -> None:
    fair, bucket, _clock = make(rate=1.0, burst=1)
    await fair.acquire("a")  # the free token
    waiter = asyncio.ensure_future(fair.acquire("b"))
    await asyncio.sleep(0)
    assert fair.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert fair.waiting == 0
    for _ in range(5):
        await asyncio.sleep(0)
    # The pump reserved a token for b and gave it back: the bucket is as if b never came.
    assert bucket.reserve() == pytest.approx(0.0, abs=1e-6)


async def test_tenant_comes_from_the_context_unless_given() -> None:
    assert current_tenant.get() == ""
    with tenant_scope("team-a"):
        assert current_tenant.get() == "team-a"
        with tenant_scope("team-b"):
            assert current_tenant.get() == "team-b"
        assert current_tenant.get() == "team-a"
    assert current_tenant.get() == ""


async def test_unlimited_bucket_never_waits() -> None:
    fair, _bucket, clock = make(rate=0.0, burst=1)
    await run_requests(fair, ["a"] * 100, [])
    assert clock.sleeps == []


async def test_a_pause_during_the_wait_voids_the_reservation_and_the_pump_reserves_again() -> None:
    clock = SimClock()
    bucket = TokenBucket(10.0, 1, clock=clock, sleep=clock.sleep)
    paused: list[float] = []

    async def sleep(seconds: float) -> None:
        if not paused:
            paused.append(seconds)
            bucket.pause(2.0)  # e.g. Vault answered 429 with Retry-After: 2 meanwhile
        await clock.sleep(seconds)

    fair = FairShare(bucket, clock=clock, sleep=sleep)
    await fair.acquire("a")  # the free token
    start = clock.now
    await fair.acquire("b")
    assert paused == [pytest.approx(0.1)]
    assert clock.now - start >= 2.0  # not granted at the voided slot (0.1 s)
