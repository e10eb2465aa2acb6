"""Retry delays: per-key exponential backoff and jitter for periodic requeues.

Both are randomised so that many objects failing (or refreshing) together do not come back
in lockstep, e.g. after an operator restart or a Vault outage.
"""

from __future__ import annotations

import random
from collections.abc import Hashable


class Backoff:
    """Exponential backoff per key: ``base * factor**n``, capped at ``cap``, ± ``jitter``.

    The nominal delay after the n-th consecutive failure (n from 0) is
    ``min(cap, base * factor**n)``; the returned delay is that value times a uniform factor in
    ``[1 - jitter, 1 + jitter]``. Defaults give 5 s, 7.5 s, 11.25 s, … up to 60 s, so actual
    delays range from 4 s to 72 s. Keys are forgotten on ``reset`` (call it on success).
    """

    def __init__(
        self,
        base: float = 5.0,
        cap: float = 60.0,
        factor: float = 1.5,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base or factor < 1.0 or not 0.0 <= jitter < 1.0:
            raise ValueError("need 0 < base <= cap, factor >= 1 and 0 <= jitter < 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()  # noqa: S311 - scheduling, not cryptography
        self._failures: dict[Hashable, int] = {}

    def nominal(self, failures: int) -> float:
        """Delay before jitter after ``failures`` previous consecutive failures."""
        # Stop multiplying once capped: factor**n overflows a float for large n.
        delay = self.base
        for _ in range(failures):
            delay *= self.factor
            if delay >= self.cap:
                return self.cap
        return min(delay, self.cap)

    def failure(self, key: Hashable) -> float:
        """Record a failure of ``key`` and return how long to wait before retrying it."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        spread = self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return self.nominal(n) * spread

    def reset(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """Consecutive failures recorded for ``key``."""
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        return len(self._failures)


_default_rng = random.Random()  # noqa: S311 - scheduling, not cryptography


def jittered(
    delay: float, low: float = 0.8, high: float = 0.9, rng: random.Random | None = None
) -> float:
    """A requeue delay drawn uniformly from ``[low * delay, high * delay]``.

    Periodic work (refresh, renewal) is scheduled a little *early* rather than around the
    nominal time: running late could let a lease or certificate pass its deadline, running
    early costs nothing. The spread keeps objects created together from staying in lockstep.
    """
    if delay <= 0:
        return 0.0
    if not 0.0 < low <= high:
        raise ValueError("need 0 < low <= high")
    return (rng or _default_rng).uniform(low * delay, high * delay)
