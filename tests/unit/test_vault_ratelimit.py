"""TokenBucket arithmetic, with a fake clock and a sleep that advances it."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from vaultbridge.vault.ratelimit import AdaptiveRate, TokenBucket


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


# -- AdaptiveRate: AIMD on the bucket's rate (issue #20) ----------------------------------------


def adaptive(rate: float, burst: int, **kw: float) -> tuple[TokenBucket, AdaptiveRate, FakeClock]:
    bucket, clock = make(rate, burst)
    return bucket, AdaptiveRate(bucket, clock=clock, **kw), clock


def test_429_multiplies_the_rate_once_per_round_trip() -> None:
    bucket, aimd, clock = adaptive(100.0, 200, decrease=0.5, floor=5.0, holdoff=1.0)
    tickets = [aimd.sent() for _ in range(30)]  # thirty requests in flight at the old rate
    for t in tickets:
        aimd.observe(429, None, t)
    # One signal seen thirty times: one decrease, and no saved-up burst left.
    assert aimd.rate == pytest.approx(50.0)
    assert aimd.decreases == 1
    assert aimd.throttled == 30
    assert bucket.burst == 50
    # A request sent at the lowered rate and refused within the holdoff: the same signal.
    aimd.observe(429, None, aimd.sent())
    assert aimd.decreases == 1
    # Refused again later: lowered again, down to the floor.
    for expected in (25.0, 12.5, 6.25, 5.0, 5.0):
        clock.now += 1.0
        aimd.observe(429, None, aimd.sent())
        assert aimd.rate == pytest.approx(expected)


def test_429_without_retry_after_pauses_briefly_then_spaces_at_the_new_rate() -> None:
    bucket, aimd, _clock = adaptive(100.0, 200, decrease=0.5, pause=0.5)
    aimd.observe(429, None, aimd.sent())
    assert bucket.reserve() == pytest.approx(0.5 + 1 / 50)
    assert bucket.reserve() == pytest.approx(0.5 + 2 / 50)


def test_decrease_goes_straight_below_what_vault_accepted() -> None:
    # A quota of 20/s met at 100/s: twenty answers accepted in the last second, then a 429.
    _bucket, aimd, clock = adaptive(100.0, 200, decrease=0.7, knee_margin=0.9)
    for _ in range(20):
        clock.now += 0.01
        aimd.observe(200)
    aimd.observe(429, None, aimd.sent())
    assert aimd.rate == pytest.approx(18.0)  # not 70, 49, 34, 24, 17 one 429 at a time
    assert aimd.decreases == 1
    # Answers older than a second do not count.
    clock.now += 5.0
    aimd.observe(429, None, aimd.sent())
    assert aimd.rate == pytest.approx(18.0 * 0.7)


def test_recovery_slows_down_near_the_rate_vault_refused() -> None:
    _bucket, aimd, clock = adaptive(
        100.0, 200, increase=2.0, knee_margin=0.9, holdoff=1.0, probe=0.01
    )
    for _ in range(20):
        clock.now += 0.01
        aimd.observe(200)
    aimd.observe(429, None, aimd.sent())
    assert aimd.rate == pytest.approx(18.0)  # at 0.9 x the knee (20) already
    clock.now += 0.5
    aimd.observe(200)  # within the holdoff: nothing
    clock.now += 10.5
    aimd.observe(200)
    assert aimd.rate == pytest.approx(18.0 + 0.2 * 10.5)  # 1 % of the knee per second
    clock.now += 10.0
    aimd.observe(200)
    assert aimd.rate == pytest.approx(22.1)
    clock.now += 5.0
    aimd.observe(200)  # past 110 % of the knee without a 429: the full step again
    assert aimd.rate == pytest.approx(22.1 + 2.0 * 5.0)


def test_success_recovers_additively_after_the_holdoff_up_to_the_ceiling() -> None:
    bucket, aimd, clock = adaptive(60.0, 200, decrease=0.5, increase=2.0, holdoff=1.0)
    aimd.observe(429, None, aimd.sent())
    assert aimd.rate == pytest.approx(30.0)
    clock.now += 0.5
    aimd.observe(200)  # within the holdoff: no increase yet
    assert aimd.rate == pytest.approx(30.0)
    clock.now += 1.0
    aimd.observe(200)  # holdoff over: +2 req/s per second since the last change
    assert aimd.rate == pytest.approx(32.0)
    clock.now += 5.0
    aimd.observe(404)  # any answer but 429 counts as "Vault keeps up"
    assert aimd.rate == pytest.approx(42.0)
    assert aimd.adapted
    clock.now += 100.0
    aimd.observe(200)
    assert aimd.rate == 60.0  # never above --vault-qps
    assert bucket.burst == 200  # the configured burst is back
    assert not aimd.adapted


def test_default_increase_recovers_the_ceiling_within_about_a_minute() -> None:
    _bucket, aimd, clock = adaptive(120.0, 10, decrease=0.5)
    aimd.observe(429, None, aimd.sent())
    clock.now += 1.0
    aimd.observe(200)
    for _ in range(30):
        clock.now += 1.0
        aimd.observe(200)
    assert aimd.rate == pytest.approx(120.0)


def test_retry_after_pauses_the_bucket() -> None:
    bucket, aimd, _clock = adaptive(10.0, 10)
    aimd.observe(429, 3.0, aimd.sent())
    assert bucket.reserve() == pytest.approx(3.0 + 1 / 7.0)
    # A late 429 of a request sent before the decrease still honours its Retry-After.
    aimd.observe(429, 5.0, 0)
    assert aimd.decreases == 1
    assert bucket.reserve() >= 5.0


def test_unlimited_ceiling_starts_from_the_observed_rate_and_returns_to_unlimited() -> None:
    bucket, aimd, clock = adaptive(0.0, 5, decrease=0.5, increase=10.0)
    assert aimd.rate == 0.0
    for _ in range(80):  # 80 answers within one second
        clock.now += 1 / 80
        aimd.observe(200)
    aimd.observe(429, None, aimd.sent())
    assert aimd.rate == pytest.approx(40.5, rel=0.05)  # half of what went through
    assert not bucket.unlimited
    clock.now += 1.0
    aimd.observe(200)
    clock.now += 10.0
    aimd.observe(200)
    # The climb stops at the knee band's lower edge (0.9 x the 80 accepted), not past it...
    assert aimd.rate == pytest.approx(72.0)
    clock.now += 13.0
    aimd.observe(200)  # ...then probes at 1 % of the knee per second up to what went through
    assert aimd.rate == 0.0
    assert bucket.unlimited


async def test_sleeping_waiters_reserve_again_after_a_decrease() -> None:
    clock = FakeClock()
    wakes: list[float] = []

    async def sleep(seconds: float) -> None:
        wakes.append(seconds)
        clock.now += seconds  # time passes for this waiter only (they run one by one)

    bucket = TokenBucket(10.0, 1, clock=clock, sleep=sleep)
    assert bucket.reserve() == 0
    first = bucket.reserve()  # a waiter holding a slot at 10/s
    assert first == pytest.approx(0.1)
    bucket.set_rate(2.0)  # Vault pushed back meanwhile
    # The next waiter is spaced at the new rate, not at the slot the old schedule gave.
    await bucket.acquire()
    assert wakes == [pytest.approx(0.5)]


async def test_slower_rate_voids_reservations_of_sleepers() -> None:
    clock = FakeClock()
    release = asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            await release.wait()
            clock.now += seconds

    bucket = TokenBucket(10.0, 1, clock=clock, sleep=sleep)
    assert bucket.reserve() == 0
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    assert waits == [pytest.approx(0.1)]
    bucket.set_rate(1.0)
    release.set()
    await waiter
    # Woken at its old slot, the waiter saw the new schedule and waited again at 1/s.
    assert len(waits) == 2
    assert waits[1] == pytest.approx(0.9)


def test_faster_rate_keeps_reservations() -> None:
    bucket, _clock = make(rate=1.0, burst=1)
    bucket.reserve()
    assert bucket.reserve() == pytest.approx(1.0)
    bucket.set_rate(4.0)
    # The queue (one waiter deep) is now served at 4/s: the next slot is two quarters away.
    assert bucket.reserve() == pytest.approx(0.5)


def test_decrease_factor_is_validated() -> None:
    bucket, _ = make(rate=1.0, burst=1)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError):
            AdaptiveRate(bucket, decrease=bad)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
        ("3600", 60.0),
    ],
)
def test_retry_after_header_is_parsed_and_capped(header: str | None, seconds: float | None) -> None:
    from vaultbridge.vault.connection import _retry_after

    assert _retry_after(header) == seconds


def test_epoch_tells_pumps_that_their_reservation_is_void() -> None:
    bucket, _clock = make(rate=10.0, burst=1)
    epoch = bucket.epoch
    bucket.set_rate(20.0)  # faster: reservations stand
    assert bucket.epoch == epoch
    bucket.set_rate(5.0)
    assert bucket.epoch == epoch + 1
    bucket.pause(1.0)
    assert bucket.epoch == epoch + 2


def test_a_quota_met_again_at_the_same_knee_is_probed_ever_more_gently() -> None:
    # A fixed quota of 20/s: each crossing of the knee band costs 429s, so every 429 at the
    # same knee halves the probe: crossings every ~10, 20, 40 s instead of every 10 s forever.
    _bucket, aimd, clock = adaptive(
        100.0, 200, increase=2.0, knee_margin=0.9, holdoff=1.0, probe=0.01
    )

    def hit_the_quota() -> None:
        clock.now += 1.0  # twenty answers accepted within the last second, then a 429
        for _ in range(20):
            clock.now += 0.01
            aimd.observe(200)
        aimd.observe(429, None, aimd.sent())

    def seconds_to_reach(rate: float) -> float:
        waited = 0.0
        while aimd.rate < rate:
            clock.now += 1.0
            waited += 1.0
            aimd.observe(200)
        return waited

    hit_the_quota()
    crossings = []
    for _ in range(4):
        crossings.append(seconds_to_reach(20.0))
        hit_the_quota()
    assert crossings[0] == pytest.approx(11.0)  # 18 -> 20 at 1 % of the knee (0.2/s)
    for before, after in itertools.pairwise(crossings):
        assert after >= 1.6 * before


def test_a_climb_from_below_enters_the_knee_band_at_its_edge() -> None:
    bucket, aimd, clock = adaptive(100.0, 200, increase=10.0, knee_margin=0.9, decrease=0.5)
    for _ in range(20):
        clock.now += 0.01
        aimd.observe(200)
    aimd.observe(429, None, aimd.sent())  # knee 20: rate 18
    clock.now += 2.0
    aimd.observe(429, None, aimd.sent())  # nothing accepted in the last second: halved
    assert aimd.rate == pytest.approx(9.0)
    clock.now += 1.5
    aimd.observe(200)  # +10/s would be 19, inside the band: it stops at its edge
    assert bucket.rate == pytest.approx(18.0)
