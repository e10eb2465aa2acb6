"""A global requests-per-second bound toward Vault.

One bucket is shared by every request the operator sends, so a cold start with thousands of
resources cannot flood Vault (or trip its rate-limit quotas) however many workers run.
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

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def reserve(self) -> float:
        """Take one token now; return how many seconds the caller must wait before using it."""
        if self.unlimited:
            return 0.0
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    def refund(self) -> None:
        """Give back a reservation that will not be used (the waiter was cancelled)."""
        if not self.unlimited:
            self._tokens = min(float(self.burst), self._tokens + 1.0)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait <= 0:
            return
        try:
            await self._sleep(wait)
        except asyncio.CancelledError:
            self.refund()
            raise
