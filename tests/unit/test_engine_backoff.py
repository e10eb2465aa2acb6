"""Backoff growth, cap, reset and jitter; jittered() bounds and spread."""

from __future__ import annotations

import random
import statistics

import pytest

from vaultbridge.engine.backoff import Backoff, jittered
from vaultbridge.engine.keys import ObjectKey

KEY = ObjectKey("ns", "a")


def test_grows_by_factor_from_base_to_cap_without_jitter() -> None:
    b = Backoff(jitter=0.0)
    delays = [b.failure(KEY) for _ in range(10)]
    assert delays[:7] == pytest.approx([5.0, 7.5, 11.25, 16.875, 25.3125, 37.96875, 56.953125])
    assert delays[7:] == [60.0, 60.0, 60.0]
    assert b.failures(KEY) == 10


def test_cap_holds_after_very_many_failures() -> None:
    b = Backoff(jitter=0.0)
    for _ in range(5000):  # factor**5000 would overflow a float
        delay = b.failure(KEY)
    assert delay == 60.0


def test_reset_starts_over_and_keys_are_independent() -> None:
    b = Backoff(jitter=0.0)
    other = ObjectKey("ns", "b")
    for _ in range(4):
        b.failure(KEY)
    assert b.failure(other) == 5.0
    b.reset(KEY)
    assert b.failures(KEY) == 0
    assert b.failure(KEY) == 5.0
    assert b.failure(other) == 7.5
    b.reset(KEY)
    b.reset(other)
    assert len(b) == 0


def test_jitter_stays_within_20_percent_and_spreads() -> None:
    b = Backoff(rng=random.Random(7))
    first = [b.failure(ObjectKey("ns", f"k{i}")) for i in range(2000)]
    assert min(first) >= 4.0 and max(first) <= 6.0
    # Spread, not lockstep: close to uniform over [4, 6].
    assert statistics.pstdev(first) > 0.5
    assert len({round(d, 3) for d in first}) > 1000
    capped = Backoff(rng=random.Random(8))
    for _ in range(20):
        last = capped.failure(KEY)
    assert 48.0 <= last <= 72.0


def test_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff(base=10, cap=5)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


def test_jittered_is_early_and_spread() -> None:
    rng = random.Random(3)
    samples = [jittered(100.0, rng=rng) for _ in range(2000)]
    assert min(samples) >= 80.0 and max(samples) <= 90.0
    assert statistics.pstdev(samples) > 2.0
    assert jittered(0.0) == 0.0
    assert jittered(-5.0) == 0.0
    assert 50.0 <= jittered(100.0, low=0.5, high=0.6) <= 60.0
    with pytest.raises(ValueError):
        jittered(10.0, low=0.9, high=0.8)
