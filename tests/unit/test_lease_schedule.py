"""The renewal / re-issue / rotation arithmetic of the leased kinds (pure, no clocks)."""

from __future__ import annotations

import random

import pytest

from vaultbridge.vault.lease_schedule import (
    MIN_DELAY,
    Action,
    Decision,
    LeaseTimes,
    cert_rotation_due,
    next_cert_action,
    next_deadline_decision,
    next_lease_action,
    renewal_exhausted,
    renewal_offset,
    requeue_delay,
    static_creds_delay,
)

T0 = 1_800_000_000.0


def lease(duration: float = 100, renewable: bool = True, last: float = T0) -> LeaseTimes:
    return LeaseTimes(last_renewal=last, duration=duration, renewable=renewable)


def test_renewal_offset_is_the_percentage_of_the_duration() -> None:
    assert renewal_offset(3600, 67) == pytest.approx(2412)
    assert renewal_offset(6, 50) == pytest.approx(3)
    # 0 % would renew in a loop: it means the default, 67 %.
    assert renewal_offset(100, 0) == pytest.approx(67)
    assert renewal_offset(-5, 67) == 0


def test_lease_waits_until_the_renewal_point() -> None:
    d = next_lease_action(lease(100), 67, T0 + 10)
    assert d.action is Action.WAIT
    assert d.delay == pytest.approx(57)  # 67 s after issue, 10 s already gone


def test_lease_is_due_inside_the_early_jitter_window() -> None:
    # Jittered requeues wake at 80-90 % of the delay; the window opens at 80 % of the offset
    # so that a wake-up in it acts instead of sleeping again for a sliver of time.
    assert next_lease_action(lease(100), 67, T0 + 67 * 0.8 - 0.01).action is Action.WAIT
    assert next_lease_action(lease(100), 67, T0 + 67 * 0.8).action is Action.RENEW
    assert next_lease_action(lease(100), 67, T0 + 90).action is Action.RENEW


def test_a_jittered_wake_up_always_acts() -> None:
    rng = random.Random(7)
    for start in (0.0, 10.0, 30.0, 50.0):
        now = T0 + start
        d = next_lease_action(lease(100), 67, now)
        assert d.action is Action.WAIT
        woke = now + requeue_delay(d.delay, rng)
        assert next_lease_action(lease(100), 67, woke).action is Action.RENEW
        assert woke <= T0 + 67  # never later than the nominal renewal point


def test_non_renewable_lease_is_reissued_at_the_renewal_point() -> None:
    assert next_lease_action(lease(60, renewable=False), 67, T0 + 1).action is Action.WAIT
    assert next_lease_action(lease(60, renewable=False), 67, T0 + 45).action is Action.REISSUE


def test_expired_or_durationless_lease_is_reissued_without_renewing() -> None:
    # The operator was down past the lease's end: Vault already revoked it.
    assert next_lease_action(lease(100), 67, T0 + 100).action is Action.REISSUE
    assert next_lease_action(lease(100), 67, T0 + 5000).action is Action.REISSUE
    assert next_lease_action(lease(0), 67, T0).action is Action.REISSUE


@pytest.mark.parametrize(
    ("asked", "granted", "exhausted"),
    [
        (6, 6, False),  # full grant
        (6, 5, False),  # capped, but still past the next renewal point (4.02 s)
        (6, 4, True),  # capped below the renewal point: the lease ends before we would act
        (6, 1, True),
        (6, 0, True),
        (3600, 2412, False),
        (3600, 2411, True),
    ],
)
def test_renewal_exhausted_when_max_ttl_cuts_below_the_renewal_point(
    asked: int, granted: int, exhausted: bool
) -> None:
    assert renewal_exhausted(asked, granted, 67) is exhausted


def test_max_ttl_timeline_reissues_before_expiry() -> None:
    """default_ttl 6 s, max_ttl 20 s: renew while possible, re-issue before the hard end."""
    rng = random.Random(1)
    issued, max_end = T0, T0 + 20
    current = lease(6, last=issued)
    now = issued
    reissued_at = None
    for _ in range(50):
        d = next_lease_action(current, 67, now)
        if d.action is Action.WAIT:
            now += requeue_delay(d.delay, rng)
            continue
        assert d.action is Action.RENEW
        granted = min(6.0, max_end - now)
        if renewal_exhausted(6, granted, 67):
            reissued_at = now
            break
        current = lease(granted, last=now)
    assert reissued_at is not None
    assert reissued_at < max_end - 1, "new credentials must come before the old ones end"
    assert reissued_at > issued + 12, "renewals should carry the lease most of its max TTL"


def test_deadline_decision_for_refresh_after() -> None:
    assert next_deadline_decision(T0 + 60, 60, T0) == Decision(Action.WAIT, 60)
    assert next_deadline_decision(T0 + 60, 60, T0 + 47.9).action is Action.WAIT
    assert next_deadline_decision(T0 + 60, 60, T0 + 48).action is Action.REISSUE
    assert next_deadline_decision(T0 + 60, 60, T0 + 99).action is Action.REISSUE


def test_certificate_rotates_expiry_offset_before_expiration() -> None:
    issued, expiration = T0, T0 + 30
    assert cert_rotation_due(issued, expiration, 20) == T0 + 10
    d = next_cert_action(issued, expiration, 20, issued)
    assert d == Decision(Action.WAIT, 10)
    assert next_cert_action(issued, expiration, 20, T0 + 7.9).action is Action.WAIT
    assert next_cert_action(issued, expiration, 20, T0 + 8).action is Action.REISSUE
    # Expired: always re-issue.
    assert next_cert_action(None, expiration, 20, T0 + 31).action is Action.REISSUE


def test_certificate_shorter_than_its_offset_does_not_loop() -> None:
    # ttl 30 s with a 5 m offset: "due" at issue time would re-issue forever.
    due = cert_rotation_due(T0, T0 + 30, 300)
    assert due == pytest.approx(T0 + 20.1)
    assert next_cert_action(T0, T0 + 30, 300, T0 + 1).action is Action.WAIT


def test_certificate_schedule_after_restart_without_issue_time() -> None:
    # After a restart only the expiration is known (from status); the controller uses the
    # time it first saw the certificate as the reference, so the window stays put.
    first_seen = T0
    d = next_cert_action(None, T0 + 3600, 300, first_seen)
    assert d.action is Action.WAIT and d.delay == pytest.approx(3300)
    woke = first_seen + requeue_delay(d.delay, random.Random(3))
    assert next_cert_action(first_seen, T0 + 3600, 300, woke).action is Action.REISSUE


def test_static_creds_are_read_just_after_rotation() -> None:
    rng = random.Random(5)
    for ttl in (0, 5, 60, 86400):
        delay = static_creds_delay(ttl, rng)
        assert ttl + 1 <= delay <= ttl + 1 + min(10, 0.1 * ttl)


def test_requeue_delay_is_early_and_floored() -> None:
    rng = random.Random(9)
    for _ in range(100):
        assert 80 <= requeue_delay(100, rng) <= 90
    assert requeue_delay(0.01, rng) == MIN_DELAY
    assert requeue_delay(0, rng) == MIN_DELAY
