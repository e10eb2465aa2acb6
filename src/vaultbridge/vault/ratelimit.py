"""A global requests-per-second bound toward Vault, lowered while Vault pushes back.

One bucket is shared by every request the operator sends, so a cold start with thousands of
resources cannot flood Vault (or trip its rate-limit quotas) however many workers run.
``AdaptiveRate`` moves the bucket's rate below the configured one while Vault answers 429
(AIMD, like TCP congestion control): a rate-limit quota is a signal for the whole operator,
not a failure of the one object whose request happened to be rejected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Classic token bucket: ``burst`` requests at once, then ``rate`` per second.

    ``acquire`` reserves a token immediately and then sleeps until the reservation is due, so
    waiters are served in arrival order without a lock or a wake-up loop: the balance may go
    negative, and its depth below zero is exactly the queue length. A cancelled waiter hands its
    reservation back. ``rate <= 0`` disables limiting.

    ``set_rate`` and ``pause`` change the schedule for everyone: a slower rate or a pause
    forgives the reservations of sleeping waiters, which reserve again (in wake-up order, so
    FIFO is kept) under the new schedule when they wake. Under FIFO a waiter's slot in a
    slower schedule is never earlier than its old one, so waking at the old slot loses nothing.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._updated = clock()
        # Bumped whenever outstanding reservations become void (slower rate, pause).
        self._epoch = 0

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self) -> None:
        now = self._clock()
        if not self.unlimited:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now

    def reserve(self) -> float:
        """Take one token now; return how many seconds the caller must wait before using it."""
        if self.unlimited:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    def refund(self) -> None:
        """Give back a reservation that will not be used (the waiter was cancelled)."""
        if not self.unlimited:
            self._tokens = min(float(self.burst), self._tokens + 1.0)

    def set_rate(self, rate: float, burst: int | None = None) -> None:
        """Serve ``rate`` per second (``<= 0``: unlimited) and bursts of ``burst`` from now on.

        Tokens saved up so far are kept (up to the new burst). A slower rate voids the
        reservations of sleeping waiters (see the class docstring); a faster one lets them keep
        theirs, so new arrivals cannot overtake them.
        """
        self._refill()
        slower = rate > 0 and (self.unlimited or rate < self.rate)
        if burst is not None:
            self.burst = max(1, burst)
        if rate <= 0:
            self._tokens = float(self.burst)
        elif self.unlimited:
            self._tokens = 0.0  # limiting starts now: no saved-up burst
        self.rate = rate
        if slower:
            self._epoch += 1
            self._tokens = max(0.0, self._tokens)
        self._tokens = min(float(self.burst), self._tokens)

    def pause(self, seconds: float) -> None:
        """No request before ``seconds`` from now (Vault's ``Retry-After``); then the rate."""
        if self.unlimited or seconds <= 0:
            return
        self._refill()
        self._epoch += 1
        self._tokens = min(0.0, self._tokens) - seconds * self.rate

    def drain(self) -> None:
        """Spend the saved-up burst: the next requests go at the rate, not all at once."""
        if self.unlimited:
            return
        self._refill()
        self._tokens = min(self._tokens, 0.0)

    async def acquire(self) -> None:
        while True:
            epoch = self._epoch
            wait = self.reserve()
            if wait <= 0:
                return
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                if self._epoch == epoch:
                    self.refund()
                raise
            if self._epoch == epoch:
                return
            # The schedule changed while we slept: our slot belonged to the old one.


class AdaptiveRate:
    """AIMD on a ``TokenBucket``'s rate, driven by the answers Vault gives.

    - Decrease: a 429 answering a request sent at the current rate multiplies the rate by
      ``decrease`` (down to ``floor``), drains the saved-up burst and shrinks the burst to one
      second's worth; a ``Retry-After`` also pauses the bucket that long. 429s answering
      requests sent before the last decrease are the same signal seen late (they were in
      flight) and change nothing — so a burst of rejections is one decrease, not twenty,
      while a quota that keeps rejecting at the lowered rate lowers it again at once.
    - Increase: once no 429 came for ``holdoff`` seconds, the rate grows by ``increase``
      requests/s per second of success (default: the ceiling over one minute), and at the
      ceiling the configured burst returns.
    - The ceiling is the configured rate (``--vault-qps``). With none (0 = unlimited), the
      first 429 starts from the response rate observed over the last second, and climbing
      back to that rate ends limiting.

    ``sent()`` is called before each request and returns a ticket that ``observe`` gets with
    the answer; the clock is injectable for tests.
    """

    def __init__(
        self,
        bucket: TokenBucket,
        *,
        floor: float = 1.0,
        decrease: float = 0.7,
        increase: float | None = None,
        holdoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self.bucket = bucket
        self.ceiling: float | None = bucket.rate if bucket.rate > 0 else None
        self.ceiling_burst = bucket.burst
        self.floor = max(0.001, floor)
        self.decrease = decrease
        self._increase = increase
        self.holdoff = holdoff
        self._clock = clock
        self._generation = 0
        self._last_throttle = float("-inf")
        self._last_change = clock()
        self._target: float | None = None  # where recovery ends (ceiling, or observed rate)
        self.throttled = 0
        self.decreases = 0
        # Responses per second over the last whole second (for an unlimited ceiling).
        self._window_start = clock()
        self._window_count = 0
        self._observed = 0.0

    @property
    def rate(self) -> float:
        """The current rate; 0 while unlimited."""
        return self.bucket.rate if self.bucket.rate > 0 else 0.0

    @property
    def adapted(self) -> bool:
        """Whether the rate is currently below the configured one."""
        return self._target is not None

    def sent(self) -> int:
        return self._generation

    def observe(
        self, status: int, retry_after: float | None = None, ticket: int | None = None
    ) -> None:
        """Feed one answer: a 429 slows down, anything else may speed up again."""
        now = self._clock()
        self._count(now)
        if status == 429:
            self._throttled(now, retry_after, self._generation if ticket is None else ticket)
        else:
            self._recover(now)

    def _count(self, now: float) -> None:
        self._window_count += 1
        span = now - self._window_start
        if span >= 1.0:
            self._observed = self._window_count / span
            self._window_start = now
            self._window_count = 0

    def _observed_rate(self, now: float) -> float:
        span = now - self._window_start
        current = self._window_count / span if span > 0.05 else 0.0
        return max(self._observed, current)

    def _throttled(self, now: float, retry_after: float | None, ticket: int) -> None:
        self.throttled += 1
        self._last_throttle = now
        if ticket == self._generation:  # else: sent before the last decrease, seen late
            self._generation += 1
            self.decreases += 1
            if self._target is None:
                self._target = self.ceiling or max(self.floor, self._observed_rate(now))
            current = self.bucket.rate if self.bucket.rate > 0 else self._target
            new = max(self.floor, current * self.decrease)
            self.bucket.set_rate(new, burst=max(1, int(new)))
            self.bucket.drain()
            self._last_change = now
        if retry_after is not None and retry_after > 0:
            self.bucket.pause(retry_after)

    def _recover(self, now: float) -> None:
        if self._target is None:
            return
        if now - self._last_throttle < self.holdoff:
            self._last_change = now
            return
        step = self._increase if self._increase is not None else max(1.0, self._target / 60.0)
        new = self.bucket.rate + step * max(0.0, now - self._last_change)
        self._last_change = now
        if new >= self._target:
            self.bucket.set_rate(self.ceiling or 0.0, burst=self.ceiling_burst)
            self._target = None
            self._generation += 1
            return
        self.bucket.set_rate(new, burst=max(1, int(new)))
