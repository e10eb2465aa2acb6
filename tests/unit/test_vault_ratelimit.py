"""TokenBucket arithmetic, with a fake clock and a sleep that advances it."""

from __future__ import annotations

import asyncio

import pytest

from vaultbridge.vault.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Record the wait without advancing time: concurrent waiters all reserve "at once".
        self.sleeps.append(seconds)


def make(rate: float, burst: int) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


async def test_burst_is_free_then_requests_queue_at_rate() -> None:
    bucket, clock = make(rate=2.0, burst=3)
    for _ in range(5):
        await bucket.acquire()
    # three free tokens, then 0.5 s and 1.0 s: the second waiter queues behind the first
    assert clock.sleeps == [pytest.approx(0.5), pytest.approx(1.0)]


async def test_tokens_refill_with_time_but_never_beyond_burst() -> None:
    bucket, clock = make(rate=10.0, burst=2)
    assert bucket.reserve() == 0
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now += 60  # a long idle time refills only up to burst
    assert bucket.reserve() == 0
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)


async def test_waits_are_fair_and_spaced_by_one_over_rate() -> None:
    bucket, clock = make(rate=4.0, burst=1)
    await asyncio.gather(*(bucket.acquire() for _ in range(5)))
    assert clock.sleeps == [pytest.approx(x) for x in (0.25, 0.5, 0.75, 1.0)]


async def test_sustained_rate_matches_configuration() -> None:
    bucket, clock = make(rate=5.0, burst=1)
    waits = []
    for _ in range(50):
        w = bucket.reserve()
        waits.append(w)
        clock.now += w  # each caller proceeds exactly when allowed
    assert clock.now - 100.0 == pytest.approx(49 / 5.0)


@pytest.mark.parametrize("rate", [0.0, -1.0])
async def test_non_positive_rate_means_unlimited(rate: float) -> None:
    bucket, clock = make(rate=rate, burst=1)
    for _ in range(1000):
        await bucket.acquire()
    assert clock.sleeps == []
    assert bucket.unlimited


async def test_cancelled_waiter_returns_its_reservation() -> None:
    clock = FakeClock()
    blocked = asyncio.Event()

    async def never(_: float) -> None:
        await blocked.wait()

    bucket = TokenBucket(1.0, 1, clock=clock, sleep=never)
    assert bucket.reserve() == 0
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Without the refund the next caller would wait 2 s (behind a ghost), not 1 s.
    assert bucket.reserve() == pytest.approx(1.0)


async def test_burst_below_one_is_treated_as_one() -> None:
    bucket, _ = make(rate=1.0, burst=0)
    assert bucket.burst == 1
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(1.0)
