"""A work queue of object keys with de-duplication, priorities, delayed adds and fairness.

The queue holds *keys*, not events: reconcilers re-read current state, so ten changes to one
object while it waits cost one reconcile. Guarantees:

* a key is in the ready queue at most once; re-adding it can only raise its priority;
* a key handed out by ``get`` is never handed out again until ``done`` is called for it;
  adds that arrive in between are remembered and the key is queued again on ``done``;
* within a tenant: higher priority first, FIFO within a priority. A key promoted to a higher
  priority joins the back of that priority's line. (LOW work can wait behind a steady stream
  of HIGH work *of the same tenant*; HIGH is only for new objects and spec changes.)
* across tenants (``Fairness.tenant_of``, e.g. the namespace): every tenant with ready keys
  has one sub-queue, and the sub-queues of a lane are served round-robin, one key per turn.
  A tenant that becomes ready joins the back of the ring, so with T tenants ready in its lane
  its first key is handed out within T turns of that lane, however many keys the others hold
  (1,000 keys of A and 1 of B: B is served by the second ``get``).
* lanes (``Fairness.lane_of``): CRITICAL work is served before ORDINARY work, but never
  starves it: while both lanes have ready keys, ``critical_share`` (k) turns go to CRITICAL
  for each turn of ORDINARY — of any k + 1 consecutive gets, at least k are critical (if it
  has that many) and at least one is ordinary. A lane alone gets every turn.
* ``add_after`` keeps at most one pending delay per key: the earliest, unless ``replace``.

Without ``Fairness`` every key belongs to one tenant of the ordinary lane: the plain
priority queue. The queue knows nothing of what a tenant or a lane means; the caller's
functions decide (they are called once, when a key enters the ready queue).
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


class Lane(IntEnum):
    """Which line a tenant's keys wait in; the platform team decides (see ``Fairness``)."""

    ORDINARY = 0
    CRITICAL = 1


@dataclass(frozen=True, slots=True)
class Fairness(Generic[K]):
    """How the queue shares its workers between tenants (see the module docstring).

    ``tenant_of(key)`` names the key's tenant (an opaque string); ``lane_of(key)`` its lane;
    ``critical_share`` is k, the CRITICAL turns per ORDINARY turn while both wait.
    ``wait_hook(tenant, seconds, turns)`` observes each handed-out key's wait, per tenant: in
    seconds, and in *turns* — the keys (of any tenant) handed out while it was ready. Turns
    are what the fairness rules above bound, whatever the speed of the machine: a quiet
    tenant's key waits about one turn per tenant ready before it (plus critical turns), while
    a busy tenant's keys wait hundreds. Seconds are what a user feels.
    """

    tenant_of: Callable[[K], str]
    lane_of: Callable[[K], Lane] | None = None
    critical_share: int = 4
    wait_hook: Callable[[str, float, int], None] | None = None


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
class _Ready(Generic[K]):
    priority: Priority
    seq: int
    enqueued_at: float
    sub: _SubQueue[K]
    turns_base: int  # keys handed out before this one became ready (see Fairness.wait_hook)


@dataclass(slots=True, eq=False)
class _SubQueue(Generic[K]):
    """One tenant's ready keys in one lane: a heap by (priority, seq) with lazy deletion."""

    tenant: str
    lane: Lane
    heap: list[tuple[int, int, K]]
    live: int = 0  # ready keys of this tenant (heap entries may be stale)


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
        fairness: Fairness[K] | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._wait_hook = wait_hook
        self._fairness = fairness
        if fairness is not None and fairness.critical_share < 1:
            raise ValueError("critical_share must be >= 1")
        self._seq = itertools.count()
        self._ready: dict[K, _Ready[K]] = {}
        # (lane, tenant) -> its sub-queue, while it holds ready keys; each lane's ring holds
        # the sub-queues with ready keys in round-robin order (front = next to serve).
        self._subs: dict[tuple[Lane, str], _SubQueue[K]] = {}
        self._rings: dict[Lane, deque[_SubQueue[K]]] = {lane: deque() for lane in Lane}
        self._critical_streak = 0  # CRITICAL turns since the last ORDINARY one
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
        self._handed_out = 0  # keys handed out by get, ever: the clock of "turns"

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
        entry = _Ready(
            priority, next(self._seq), self._clock(), self._sub_for(key), self._handed_out
        )
        entry.sub.live += 1
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
        ring = self._next_ring()
        if ring is None:
            raise asyncio.QueueEmpty
        sub = ring.popleft()
        key, entry = self._pop_sub(sub)
        if sub.live:
            ring.append(sub)  # served one key: to the back of the line
        else:
            del self._subs[(sub.lane, sub.tenant)]
        del self._ready[key]
        self._processing.add(key)
        waited = max(0.0, self._clock() - entry.enqueued_at)
        turns = self._handed_out - entry.turns_base
        self._handed_out += 1
        if self._wait_hook is not None:
            self._wait_hook(waited, entry.priority)
        if self._fairness is not None and self._fairness.wait_hook is not None:
            self._fairness.wait_hook(sub.tenant, waited, turns)
        return key

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

    def depth_by_tenant(self) -> dict[str, int]:
        """Ready keys per tenant (both lanes summed); tenants with none are absent."""
        depths: dict[str, int] = {}
        for (_lane, tenant), sub in self._subs.items():
            depths[tenant] = depths.get(tenant, 0) + sub.live
        return depths

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

    def _sub_for(self, key: K) -> _SubQueue[K]:
        """The sub-queue a newly ready key joins; a tenant new to the ring joins its back."""
        fair = self._fairness
        tenant = fair.tenant_of(key) if fair is not None else ""
        lane = fair.lane_of(key) if fair is not None and fair.lane_of is not None else Lane.ORDINARY
        sub = self._subs.get((lane, tenant))
        if sub is None:
            sub = self._subs[(lane, tenant)] = _SubQueue(tenant, lane, [])
            self._rings[lane].append(sub)
        return sub

    def _next_ring(self) -> deque[_SubQueue[K]] | None:
        """The lane whose turn it is: CRITICAL, except every (k+1)-th turn while ORDINARY
        waits too (the weighted rule of the module docstring)."""
        critical, ordinary = self._rings[Lane.CRITICAL], self._rings[Lane.ORDINARY]
        share = self._fairness.critical_share if self._fairness is not None else 1
        if critical and (not ordinary or self._critical_streak < share):
            self._critical_streak += 1
            return critical
        if ordinary:
            self._critical_streak = 0
            return ordinary
        return None

    def _pop_sub(self, sub: _SubQueue[K]) -> tuple[K, _Ready[K]]:
        """Take the best live key of a sub-queue (``sub.live > 0``), skipping stale entries."""
        while True:
            _neg_priority, seq, key = heapq.heappop(sub.heap)
            if self._is_live(sub, (_neg_priority, seq, key)):
                sub.live -= 1
                return key, self._ready[key]

    def _is_live(self, sub: _SubQueue[K], item: tuple[int, int, K]) -> bool:
        entry = self._ready.get(item[2])
        return entry is not None and entry.seq == item[1] and entry.sub is sub

    def _push_ready(self, key: K, entry: _Ready[K]) -> None:
        sub = entry.sub
        heapq.heappush(sub.heap, (-int(entry.priority), entry.seq, key))
        if len(sub.heap) > 2 * sub.live + 64:
            sub.heap = [item for item in sub.heap if self._is_live(sub, item)]
            heapq.heapify(sub.heap)

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
