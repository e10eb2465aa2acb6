"""When to renew a lease, re-issue credentials or rotate a certificate: pure time arithmetic.

Everything here takes the current time as an argument, so the rules can be tested without
clocks, and the controllers can recompute the schedule from the persisted status after a
restart instead of remembering timers.

Requeues are jittered *early* (``engine.backoff.jittered`` draws from 80-90 % of the delay).
To keep that from turning into a chain of ever shorter wake-ups before the nominal due time,
an action counts as due once the earliest jittered wake-up point has passed (the "window").
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from vaultbridge.backoff import jittered

DEFAULT_RENEWAL_PERCENT = 67
JITTER_LOW = 0.8
"""Lower bound of ``jittered``: a delay is never shortened below this fraction."""
MIN_DELAY = 0.5
"""Shortest requeue: a lease of a few seconds must not spin the work queue."""


class Action(Enum):
    WAIT = "wait"
    RENEW = "renew"
    REISSUE = "reissue"


@dataclass(frozen=True)
class LeaseTimes:
    """What is known of the current lease: when it was last issued or renewed, for how long."""

    last_renewal: float
    """Unix seconds of the last issue or renewal."""
    duration: float
    """Seconds granted at that issue or renewal."""
    renewable: bool

    @property
    def expires_at(self) -> float:
        return self.last_renewal + self.duration


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    """For WAIT: seconds until the action is due (nominal, not yet jittered)."""


def effective_percent(percent: int) -> int:
    """0 would renew in a tight loop; treat it like the default (the field is optional)."""
    return percent if percent > 0 else DEFAULT_RENEWAL_PERCENT


def renewal_offset(duration: float, percent: int) -> float:
    """Seconds after an issue or renewal at which the next renewal (or re-issue) is due."""
    return max(0.0, duration) * effective_percent(percent) / 100.0


def next_lease_action(lease: LeaseTimes, percent: int, now: float) -> Decision:
    """What to do with a lease at ``now``: wait, renew it, or replace it with new credentials.

    An expired lease (the operator was down, or the clock says so) is re-issued without trying
    to renew: Vault has already revoked it. A non-renewable lease is re-issued at the renewal
    point, which leaves the rest of its lifetime for the consumers to switch over.
    """
    if lease.duration <= 0 or now >= lease.expires_at:
        return Decision(Action.REISSUE)
    offset = renewal_offset(lease.duration, percent)
    window_opens = lease.last_renewal + offset * JITTER_LOW
    if now < window_opens:
        return Decision(Action.WAIT, lease.last_renewal + offset - now)
    return Decision(Action.RENEW if lease.renewable else Action.REISSUE)


def next_credentials_action(
    lease: LeaseTimes | None,
    *,
    issued_at: float,
    static_ttl: float | None,
    refresh: float | None,
    percent: int,
    now: float,
) -> Decision:
    """What to do with dynamic credentials at ``now``.

    With a lease: ``next_lease_action``. Without one, static-role credentials (``static_ttl``:
    seconds until Vault rotates them, as of ``issued_at``) are read again just after the
    rotation, and other lease-less credentials are re-issued every ``refresh`` seconds if set;
    otherwise they do not expire as far as Vault told us (WAIT forever).
    """
    if lease is not None:
        return next_lease_action(lease, percent, now)
    if static_ttl is not None:
        due = issued_at + static_ttl + 1.0
        if now < due:
            return Decision(Action.WAIT, due - now)
        return Decision(Action.REISSUE)
    if refresh:
        return next_deadline_decision(issued_at + refresh, refresh, now)
    return Decision(Action.WAIT, float("inf"))


def renewal_exhausted(asked: float, granted: float, percent: int) -> bool:
    """Whether a renewal hit the lease's max TTL so hard that waiting for the next renewal
    point would let the credentials expire first: then new credentials are needed now.

    ``asked`` is the increment requested (the lease duration at issue). A grant that is shorter
    but still reaches past that renewal point is kept: the next, shorter renewal comes earlier.
    """
    if granted <= 0:
        return True
    return granted < renewal_offset(asked, percent)


def next_deadline_decision(due_at: float, nominal_offset: float, now: float) -> Decision:
    """WAIT until ``due_at`` or act now, with the same early window as leases.

    ``nominal_offset`` is the length of the period that ends at ``due_at`` (it sizes the window).
    """
    window_opens = due_at - max(0.0, nominal_offset) * (1.0 - JITTER_LOW)
    if now < window_opens:
        return Decision(Action.WAIT, due_at - now)
    return Decision(Action.REISSUE)


def cert_rotation_due(issued_at: float | None, expiration: float, expiry_offset: float) -> float:
    """Unix seconds at which a certificate should be replaced: ``expiry_offset`` before expiry.

    A certificate that was already inside its offset when issued (its TTL is shorter than the
    offset) would be "due" forever and be re-issued in a loop; it is replaced after two thirds
    of its lifetime instead, like a lease at the default renewal percentage.
    """
    due = expiration - max(0.0, expiry_offset)
    if issued_at is not None and due <= issued_at:
        return issued_at + (expiration - issued_at) * DEFAULT_RENEWAL_PERCENT / 100.0
    return due


def next_cert_action(
    issued_at: float | None, expiration: float, expiry_offset: float, now: float
) -> Decision:
    """Rotate at ``expiration - expiry_offset``, early-jittered like leases, never later.

    ``issued_at`` is unknown after a restart; the window is then sized from ``now``, and the
    caller should pass that first ``now`` as ``issued_at`` from then on (a window sized from a
    moving ``now`` shrinks with every wake-up and would chain ever shorter sleeps).
    """
    due = cert_rotation_due(issued_at, expiration, expiry_offset)
    if now >= expiration:
        return Decision(Action.REISSUE)
    period = (due - issued_at) if issued_at is not None else (due - now)
    return next_deadline_decision(due, period, now)


def static_creds_delay(ttl: float, rng: random.Random | None = None) -> float:
    """Seconds until re-reading static-role credentials: just *after* Vault rotates them.

    Unlike leases, reading early is useless (the old password is still current), so the
    jitter goes the other way: 1 s plus up to 10 % of the TTL (at most 10 s) late.
    """
    spread = min(10.0, 0.1 * max(0.0, ttl))
    r = rng or random.Random()  # noqa: S311 - scheduling, not cryptography
    return max(0.0, ttl) + 1.0 + r.uniform(0.0, spread)


def requeue_delay(seconds: float, rng: random.Random | None = None) -> float:
    """A jittered (early) requeue delay with a floor, for WAIT decisions."""
    return max(MIN_DELAY, jittered(seconds, rng=rng))
