"""Per-path rate limit on audit-driven re-reads, without ever losing the last change.

Anyone who can reach the receiver's port can send entries naming any path; each matching entry
costs re-reads from Vault. ``PathLimiter`` bounds that cost to ``limit`` re-reads per path per
``interval``, however fast entries arrive. Guarantees (``clock`` injectable):

* in any window of ``interval`` seconds that starts with a granted entry, a path is granted at
  most ``limit`` times (the deferred re-read below counts in the window it fires in);
* an entry over the limit is not lost: the first one over the limit in a window asks the caller
  to fire once at the end of the window (``Deferred``); further entries in the same window are
  absorbed by that one. A genuine burst of writes therefore ends with a re-read after its last
  write, and the Secret converges, just later;
* memory is bounded: at most ``max_paths`` paths are tracked; expired windows are pruned first,
  and if every tracked path is still inside its window the new path is refused
  (``Refused``) rather than tracked — only possible under a flood, and the stream's gap
  detection repairs what was refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Grant(Enum):
    NOW = "now"
    """Enqueue now."""
    DEFERRED = "deferred"
    """Over the limit: the caller fires once after ``PathLimiter.deferred_delay(path)``
    seconds, then calls ``fired(path)``."""
    ABSORBED = "absorbed"
    """Over the limit, and a deferred fire is already pending for this window."""
    REFUSED = "refused"
    """The table of tracked paths is full of live windows."""


@dataclass(slots=True)
class _Window:
    start: float
    count: int
    deferred: bool = False


class PathLimiter:
    def __init__(
        self,
        limit: int,
        interval: float,
        *,
        max_paths: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or interval <= 0 or max_paths < 1:
            raise ValueError("limit and max_paths must be >= 1 and interval > 0")
        self.limit = limit
        self.interval = interval
        self.max_paths = max_paths
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def check(self, path: str) -> Grant:
        now = self._clock()
        win = self._windows.get(path)
        if win is None or (now - win.start >= self.interval and not win.deferred):
            if win is None and len(self._windows) >= self.max_paths:
                self._prune(now)
                if len(self._windows) >= self.max_paths:
                    return Grant.REFUSED
            self._windows[path] = _Window(now, 1)
            return Grant.NOW
        if win.count < self.limit:
            win.count += 1
            return Grant.NOW
        if win.deferred:
            return Grant.ABSORBED
        win.deferred = True
        return Grant.DEFERRED

    def deferred_delay(self, path: str) -> float:
        """Seconds until the pending deferred fire for ``path`` is due (the window's end)."""
        win = self._windows.get(path)
        return 0.0 if win is None else max(0.0, win.start + self.interval - self._clock())

    def fired(self, path: str) -> None:
        """The deferred fire for ``path`` happened: it opens (and counts in) a new window."""
        self._windows[path] = _Window(self._clock(), 1)

    def __len__(self) -> int:
        return len(self._windows)

    def _prune(self, now: float) -> None:
        expired = [
            p for p, w in self._windows.items() if now - w.start >= self.interval and not w.deferred
        ]
        for p in expired:
            del self._windows[p]
