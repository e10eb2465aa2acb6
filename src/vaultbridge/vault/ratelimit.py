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
from collections import deque
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Classic token bucket: ``burst`` requests at once, then ``rate`` per second.

    ``acquire`` reserves a token immediately and then sleeps until the reservation is due, so
    waiters are served in arrival order without a lock or a wake-up loop: the balance may go
    negative, and its depth below zero is exactly the queue length. A cancelled waiter hands its
    reservation back. ``rate <= 0`` disables limiting.

    ``set_rate``, ``pause`` and ``drain`` change the schedule for everyone (``AdaptiveRate``
    drives them). A slower rate or a pause voids the reservations of sleeping waiters, which
    reserve again under the new schedule when they wake — in wake-up order, so FIFO is kept,
    and under FIFO a waiter's slot in a slower schedule is never earlier than its old one, so
    waking at the old slot loses nothing.
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
        # Tokens accrue from here on; in the future while paused.
        self._updated = clock()
        # Bumped whenever outstanding reservations become void (slower rate, pause).
        self._epoch = 0

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @property
    def epoch(self) -> int:
        """Changes whenever outstanding reservations become void (slower rate, pause). A
        caller that ``reserve``s and sleeps itself (e.g. a fair-share pump in front of the
        bucket) reserves again when it changed during the sleep, and refunds only when it did
        not — exactly what ``acquire`` does."""
        return self._epoch

    def _refill(self) -> float:
        now = self._clock()
        if now > self._updated:
            if not self.unlimited:
                elapsed = now - self._updated
                self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._updated = now
        return now

    def reserve(self) -> float:
        """Take one token now; return how many seconds the caller must wait before using it."""
        if self.unlimited:
            return 0.0
        now = self._refill()
        self._tokens -= 1.0
        paused = max(0.0, self._updated - now)
        if self._tokens >= 0:
            return paused
        return paused + -self._tokens / self.rate

    def refund(self) -> None:
        """Give back a reservation that will not be used (the waiter was cancelled)."""
        if not self.unlimited:
            self._tokens = min(float(self.burst), self._tokens + 1.0)

    def set_rate(self, rate: float, burst: int | None = None) -> None:
        """Serve ``rate`` per second (``<= 0``: unlimited) and bursts of ``burst`` from now on.

        Tokens saved up so far are kept (up to the new burst). A slower rate voids the
        reservations of sleeping waiters (see the class docstring); a faster one lets them keep
        theirs (they may go a little later than the new rate would allow; AIMD raises the rate
        in small steps) while the queue behind them drains at the new rate.
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
        """No request before ``seconds`` from now (a longer pause already set stands), then
        the rate without a saved-up burst."""
        if self.unlimited or seconds <= 0:
            return
        now = self._refill()
        self._epoch += 1
        self._tokens = 0.0
        self._updated = max(self._updated, now + seconds)

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


_MAX_CONFIRMED = 4  # the probe slows to 1/16 at most: a quota raised later is still found


class AdaptiveRate:
    """AIMD on a ``TokenBucket``'s rate, driven by the answers Vault gives.

    - **Decrease**, on a 429: the rate drops to ``decrease`` times itself, and to no more than
      ``knee_margin`` times what Vault accepted over the last second (a quota's rate, found
      in one step instead of a cascade); the saved-up burst is dropped and the burst shrinks
      to one second's worth; the bucket pauses for ``Retry-After``, or ``pause`` seconds
      without one (a quota's window is spent: whatever is sent before it ends is rejected).
      One decrease per round trip and per ``holdoff``: 429s answering requests sent before the
      last decrease (``sent()`` tickets), or arriving within ``holdoff`` of it, are the same
      signal seen late; they only pause.
    - **Increase**, while no 429 came for ``holdoff`` seconds: ``increase`` requests/s per
      second (default: the ceiling over one minute), but only ``probe`` times the knee (the
      rate Vault accepted at the last 429) per second within ±10 % of the knee, so the rate
      probes a quota gently instead of hitting it every few seconds; climbing from below, it
      stops at the band's lower edge instead of jumping over the band in one step. Each 429
      met again at the same knee (±25 %) halves the probe (down to 1/16): a quota that stays
      put is crossed every 10, 20, 40... seconds, not every 10 s forever (the 429s of those
      crossings were 10 % of all reads under a fixed quota; the budget is 5 %). At the
      ceiling the configured burst returns.
    - The ceiling is the configured rate (``--vault-qps``). With none (0 = unlimited), the
      first 429 starts from the accepted rate, and climbing back to the rate observed before
      it ends limiting.

    The clock is injectable for tests.
    """

    def __init__(
        self,
        bucket: TokenBucket,
        *,
        floor: float = 1.0,
        decrease: float = 0.7,
        increase: float | None = None,
        holdoff: float = 1.0,
        pause: float = 0.5,
        knee_margin: float = 0.9,
        probe: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        if not 0 < knee_margin <= 1:
            raise ValueError("knee_margin must be in (0, 1]")
        self.bucket = bucket
        self.ceiling: float | None = bucket.rate if bucket.rate > 0 else None
        self.ceiling_burst = bucket.burst
        self.floor = max(0.001, floor)
        self.decrease = decrease
        self.knee_margin = knee_margin
        self._increase = increase
        self.probe = probe
        self.holdoff = holdoff
        self.pause = pause
        self._clock = clock
        self._generation = 0
        self._last_decrease = float("-inf")
        self._last_throttle = float("-inf")
        self._last_change = clock()
        self._target: float | None = None  # where recovery ends (ceiling, or observed rate)
        self._knee: float | None = None
        self._confirmed = 0  # consecutive decreases at (about) the same knee
        # Times of the answers of the last second: accepted ones, and all of them.
        self._accepted: deque[float] = deque()
        self._answered: deque[float] = deque()
        self.throttled = 0
        self.decreases = 0

    @property
    def rate(self) -> float:
        """The current rate; 0 while unlimited."""
        return self.bucket.rate if self.bucket.rate > 0 else 0.0

    @property
    def adapted(self) -> bool:
        """Whether the rate is currently below the configured one."""
        return self._target is not None

    def sent(self) -> int:
        """A ticket for a request about to be sent; give it back to ``observe``."""
        return self._generation

    def observe(
        self, status: int, retry_after: float | None = None, ticket: int | None = None
    ) -> None:
        """Feed one answer: a 429 slows down, anything else may speed up again."""
        now = self._clock()
        self._window(now, accepted=status != 429)
        if status == 429:
            self._throttled(now, retry_after, self._generation if ticket is None else ticket)
        else:
            self._recover(now)

    def _window(self, now: float, *, accepted: bool) -> None:
        self._answered.append(now)
        if accepted:
            self._accepted.append(now)
        for q in (self._answered, self._accepted):
            while q and q[0] <= now - 1.0:
                q.popleft()

    def _throttled(self, now: float, retry_after: float | None, ticket: int) -> None:
        self.throttled += 1
        self._last_throttle = now
        if ticket == self._generation and now - self._last_decrease >= self.holdoff:
            self._generation += 1
            self.decreases += 1
            self._last_decrease = now
            accepted = float(len(self._accepted))  # over the last second
            if self._target is None:
                self._target = self.ceiling or max(self.floor, float(len(self._answered)))
            current = self.bucket.rate if self.bucket.rate > 0 else self._target
            new = current * self.decrease
            if accepted > 0:
                new = min(new, accepted * self.knee_margin)
                same = self._knee is not None and abs(accepted - self._knee) <= 0.25 * self._knee
                self._confirmed = min(self._confirmed + 1, _MAX_CONFIRMED) if same else 0
                self._knee = accepted
            new = max(self.floor, new)
            self.bucket.set_rate(new, burst=max(1, int(new)))
            self.bucket.drain()
            self._last_change = now
        self.bucket.pause(retry_after if retry_after is not None else self.pause)

    def _recover(self, now: float) -> None:
        if self._target is None:
            return
        if now - self._last_throttle < self.holdoff:
            self._last_change = now
            return
        step = self._increase if self._increase is not None else max(1.0, self._target / 60.0)
        rate = self.bucket.rate
        knee = self._knee
        low, high = (
            (0.0, 0.0) if knee is None else (knee * self.knee_margin, knee * (2 - self.knee_margin))
        )
        if knee is not None and low <= rate < high:
            # Near the rate Vault last refused: probe it gently, in proportion to it (a quota
            # of 2/s and one of 2,000/s alike take ~20 s to cross the band), and more gently
            # each time the same knee refused us again.
            step = min(step, knee * self.probe / (1 << self._confirmed))
        new = rate + step * max(0.0, now - self._last_change)
        if rate < low < new:
            new = low  # enter the band at its edge; probing starts there
        self._last_change = now
        if new >= self._target:
            self.bucket.set_rate(self.ceiling or 0.0, burst=self.ceiling_burst)
            self._target = None
            self._knee = None
            self._confirmed = 0
            self._generation += 1
            return
        self.bucket.set_rate(new, burst=max(1, int(new)))
