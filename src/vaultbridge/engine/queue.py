"""A work queue of object keys with de-duplication, priorities and delayed adds.

The queue holds *keys*, not events: reconcilers re-read current state, so ten changes to one
object while it waits cost one reconcile. Guarantees:

* a key is in the ready queue at most once; re-adding it can only raise its priority;
* a key handed out by ``get`` is never handed out again until ``done`` is called for it;
  adds that arrive in between are remembered and the key is queued again on ``done``;
* higher priority first, FIFO within a priority. A key promoted to a higher priority joins
  the back of that priority's line. (LOW work can wait behind a steady stream of HIGH work;
  HIGH is only for new objects and spec changes, which are bursty.)
* ``add_after`` keeps at most one pending delay per key: the earliest, unless ``replace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Priority(IntEnum):
    """Queue priority; a larger value is served first."""

    LOW = 0  # periodic refreshes, scheduled requeues
    NORMAL = 1  # events about existing objects (owned Secret drift, metadata changes)
    HIGH = 2  # new objects and spec changes: users are waiting for these


class QueueShutDown(Exception):
    """``get`` on a queue that was shut down."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int  # ready to run
    delayed: int  # waiting for their time
    in_flight: int  # handed out, not yet done
    adds: int  # add() calls that put a key in the ready queue
    deduplicated: int  # add() calls absorbed by a key already queued or in flight
    oldest_wait: float  # seconds the longest-waiting ready key has waited


@dataclass(slots=True)
class _Ready:
    priority: Priority
    seq: int
    enqueued_at: float


@dataclass(slots=True)
class _Delayed:
    due: float
    seq: int
    priority: Priority


class WorkQueue(Generic[K]):
    """See the module docstring. ``clock`` returns seconds (monotonic); inject one in tests.

    Delayed keys become ready through a loop timer when the queue is used inside a running
    loop; with an injected fake clock, call ``poke()`` after moving the clock.
    ``wait_hook(seconds, priority)`` observes how long each key waited (for metrics).
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
        wait_hook: Callable[[float, Priority], None] | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._wait_hook = wait_hook
        self._seq = itertools.count()
        self._ready: dict[K, _Ready] = {}
        self._ready_heap: list[tuple[int, int, K]] = []
        self._processing: set[K] = set()
        self._dirty: dict[K, Priority] = {}
        self._delayed: dict[K, _Delayed] = {}
        self._delayed_heap: list[tuple[float, int, K]] = []
        self._getters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        self._shutdown = False
        self._adds = 0
        self._deduplicated = 0

    # -- adding --------------------------------------------------------------------------

    def add(self, key: K, priority: Priority = Priority.NORMAL) -> None:
        """Queue ``key`` now (or raise its priority if it is already queued)."""
        if self._shutdown:
            return
        if key in self._processing:
            prev = self._dirty.get(key)
            self._dirty[key] = priority if prev is None else max(prev, priority)
            self._deduplicated += 1
            return
        entry = self._ready.get(key)
        if entry is not None:
            self._deduplicated += 1
            if priority > entry.priority:
                entry.priority = priority
                entry.seq = next(self._seq)
                self._push_ready(key, entry)
            return
        entry = _Ready(priority, next(self._seq), self._clock())
        self._ready[key] = entry
        self._push_ready(key, entry)
        self._adds += 1
        self._wake_one()

    def add_after(
        self,
        key: K,
        delay: float,
        priority: Priority = Priority.LOW,
        *,
        replace: bool = False,
    ) -> None:
        """Queue ``key`` after ``delay`` seconds.

        If a delay is already pending for ``key``, the earlier of the two wins (the pending
        one keeps the higher priority of both) — unless ``replace``, where the new delay
        supersedes it (a fresh reconcile result is the authority on when to come back).
        """
        if self._shutdown:
            return
        if delay <= 0:
            self.cancel_delayed(key)
            self.add(key, priority)
            return
        due = self._clock() + delay
        pending = self._delayed.get(key)
        if pending is not None and not replace and pending.due <= due:
            pending.priority = max(pending.priority, priority)
            return
        entry = _Delayed(due, next(self._seq), priority)
        self._delayed[key] = entry
        heapq.heappush(self._delayed_heap, (due, entry.seq, key))
        self._compact_delayed()
        self._arm_timer()

    def cancel_delayed(self, key: K) -> None:
        """Drop a pending ``add_after`` for ``key`` (the heap entry goes stale)."""
        if self._delayed.pop(key, None) is not None:
            self._arm_timer()

    # -- taking ------------------------------------------------------------------------

    def get_nowait(self) -> K:
        """Take the next ready key; raises ``asyncio.QueueEmpty`` or ``QueueShutDown``."""
        if self._shutdown:
            raise QueueShutDown(self.name)
        self._promote_due()
        while self._ready_heap:
            _neg_priority, seq, key = heapq.heappop(self._ready_heap)
            entry = self._ready.get(key)
            if entry is None or entry.seq != seq:
                continue  # superseded by a promotion
            del self._ready[key]
            self._processing.add(key)
            if self._wait_hook is not None:
                self._wait_hook(max(0.0, self._clock() - entry.enqueued_at), entry.priority)
            return key
        raise asyncio.QueueEmpty

    async def get(self) -> K:
        """Wait for the next ready key. Raises ``QueueShutDown`` once the queue is shut down."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return self.get_nowait()
            except asyncio.QueueEmpty:
                pass
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken but leave: hand the wake-up on
                raise

    def done(self, key: K) -> None:
        """Mark ``key`` finished; if it was added meanwhile, queue it again now."""
        self._processing.discard(key)
        again = self._dirty.pop(key, None)
        if again is not None:
            self.add(key, again)

    # -- lifecycle / introspection ----------------------------------------------------------

    def shutdown(self) -> None:
        """Stop handing out work: pending and future ``get`` calls raise ``QueueShutDown``.

        In-flight keys may still call ``done``. Queued and delayed keys are dropped.
        """
        self._shutdown = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_due = None
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    @property
    def is_shutdown(self) -> bool:
        return self._shutdown

    def poke(self) -> None:
        """Move due delayed keys to the ready queue now (after a fake clock moved)."""
        self._promote_due()
        self._arm_timer()

    def __len__(self) -> int:
        """Number of keys ready to run."""
        return len(self._ready)

    def __contains__(self, key: object) -> bool:
        return key in self._ready or key in self._delayed or key in self._processing

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def delayed_until(self, key: K) -> float | None:
        """Clock time at which a pending delay for ``key`` fires, if any."""
        entry = self._delayed.get(key)
        return entry.due if entry is not None else None

    def stats(self) -> QueueStats:
        now = self._clock()
        oldest = min((e.enqueued_at for e in self._ready.values()), default=now)
        return QueueStats(
            depth=len(self._ready),
            delayed=len(self._delayed),
            in_flight=len(self._processing),
            adds=self._adds,
            deduplicated=self._deduplicated,
            oldest_wait=max(0.0, now - oldest),
        )

    # -- internals -----------------------------------------------------------------------

    def _push_ready(self, key: K, entry: _Ready) -> None:
        heapq.heappush(self._ready_heap, (-int(entry.priority), entry.seq, key))
        if len(self._ready_heap) > 2 * len(self._ready) + 64:
            self._ready_heap = [(-int(e.priority), e.seq, k) for k, e in self._ready.items()]
            heapq.heapify(self._ready_heap)

    def _compact_delayed(self) -> None:
        if len(self._delayed_heap) > 2 * len(self._delayed) + 64:
            self._delayed_heap = [(e.due, e.seq, k) for k, e in self._delayed.items()]
            heapq.heapify(self._delayed_heap)

    def _next_delayed(self) -> tuple[float, int, K] | None:
        """Earliest live delayed entry, discarding stale heap tops on the way."""
        heap = self._delayed_heap
        while heap:
            due, seq, key = heap[0]
            entry = self._delayed.get(key)
            if entry is not None and entry.seq == seq:
                return due, seq, key
            heapq.heappop(heap)
        return None

    def _promote_due(self) -> None:
        if not self._delayed:
            return
        now = self._clock()
        while (top := self._next_delayed()) is not None and top[0] <= now:
            heapq.heappop(self._delayed_heap)
            key = top[2]
            entry = self._delayed.pop(key)
            self.add(key, entry.priority)

    def _arm_timer(self) -> None:
        if self._shutdown:
            return
        top = self._next_delayed()
        if top is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_due = None
            return
        due = top[0]
        if self._timer is not None and self._timer_due == due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (synchronous use with a fake clock): poke() drives delays
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = loop.call_later(max(0.0, due - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = None
        self._promote_due()
        self._arm_timer()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
