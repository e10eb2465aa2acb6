"""WorkQueue semantics: de-duplication, priorities, delays, exclusivity of a key, shutdown.

Ordering and delay tests drive the queue synchronously with a fake clock (deterministic);
the async tests check the waiting paths on the real loop with short real delays.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority, QueueShutDown, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    assert not leaked, f"leaked tasks: {leaked}"


def k(name: str) -> ObjectKey:
    return ObjectKey("ns", name)


def drain(q: WorkQueue[ObjectKey]) -> list[str]:
    out: list[str] = []
    while True:
        try:
            key = q.get_nowait()
        except asyncio.QueueEmpty:
            return out
        out.append(key.name)
        q.done(key)


def test_duplicate_adds_are_processed_once() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue(clock=Clock())
    q.add(k("a"))
    q.add(k("a"))
    q.add(k("a"), Priority.LOW)
    assert len(q) == 1
    assert drain(q) == ["a"]
    stats = q.stats()
    assert (stats.adds, stats.deduplicated) == (1, 2)


def test_higher_priority_first_fifo_within_priority() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue(clock=Clock())
    q.add(k("low1"), Priority.LOW)
    q.add(k("norm1"), Priority.NORMAL)
    q.add(k("high1"), Priority.HIGH)
    q.add(k("low2"), Priority.LOW)
    q.add(k("high2"), Priority.HIGH)
    q.add(k("norm2"), Priority.NORMAL)
    assert drain(q) == ["high1", "high2", "norm1", "norm2", "low1", "low2"]


def test_readding_with_higher_priority_promotes_and_lower_never_demotes() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue(clock=Clock())
    q.add(k("refresh"), Priority.LOW)
    q.add(k("other"), Priority.NORMAL)
    q.add(k("spec"), Priority.HIGH)
    q.add(k("refresh"), Priority.HIGH)  # promoted: joins the back of the HIGH line
    q.add(k("spec"), Priority.LOW)  # no demotion
    assert drain(q) == ["spec", "refresh", "other"]


def test_key_in_flight_is_not_handed_out_again_until_done() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue(clock=Clock())
    q.add(k("a"), Priority.LOW)
    assert q.get_nowait() == k("a")
    q.add(k("a"), Priority.NORMAL)
    q.add(k("a"), Priority.HIGH)
    q.add(k("b"), Priority.NORMAL)
    # "a" is in flight: only "b" is available.
    assert q.get_nowait() == k("b")
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    q.done(k("a"))
    # Re-queued once, with the highest priority requested while in flight.
    q.add(k("c"), Priority.NORMAL)
    assert q.get_nowait() == k("a")
    q.done(k("a"))
    assert q.get_nowait() == k("c")
    q.done(k("b"))
    q.done(k("c"))
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


def test_delayed_add_becomes_ready_at_its_time() -> None:
    clock = Clock()
    q: WorkQueue[ObjectKey] = WorkQueue(clock=clock)
    q.add_after(k("a"), 10.0)
    assert len(q) == 0 and q.stats().delayed == 1
    clock.now += 9.9
    q.poke()
    assert drain(q) == []
    clock.now += 0.1
    assert drain(q) == ["a"]  # get_nowait promotes due keys itself
    assert q.stats().delayed == 0


def test_earlier_pending_delay_wins_unless_new_one_is_sooner_or_replaces() -> None:
    clock = Clock()
    q: WorkQueue[ObjectKey] = WorkQueue(clock=clock)
    q.add_after(k("a"), 10.0)
    q.add_after(k("a"), 20.0)
    assert q.delayed_until(k("a")) == clock.now + 10.0
    q.add_after(k("a"), 5.0)
    assert q.delayed_until(k("a")) == clock.now + 5.0
    q.add_after(k("a"), 30.0, replace=True)
    assert q.delayed_until(k("a")) == clock.now + 30.0
    clock.now += 29.0
    assert drain(q) == []
    clock.now += 1.0
    assert drain(q) == ["a"]


def test_delayed_keeps_highest_priority_and_cancel_drops_it() -> None:
    clock = Clock()
    q: WorkQueue[ObjectKey] = WorkQueue(clock=clock)
    q.add_after(k("a"), 5.0, Priority.LOW)
    q.add_after(k("a"), 9.0, Priority.HIGH)  # later: ignored, but its priority is kept
    q.add_after(k("b"), 5.0, Priority.NORMAL)
    q.add_after(k("c"), 1.0)
    q.cancel_delayed(k("c"))
    clock.now += 5.0
    assert drain(q) == ["a", "b"]


def test_delayed_key_that_is_in_flight_waits_for_done() -> None:
    clock = Clock()
    q: WorkQueue[ObjectKey] = WorkQueue(clock=clock)
    q.add(k("a"))
    assert q.get_nowait() == k("a")
    q.add_after(k("a"), 1.0)
    clock.now += 2.0
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    q.done(k("a"))
    assert drain(q) == ["a"]


def test_zero_delay_adds_now() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue(clock=Clock())
    q.add_after(k("a"), 0.0, Priority.HIGH)
    assert drain(q) == ["a"]


def test_wait_time_reported_and_stats() -> None:
    clock = Clock()
    waits: list[tuple[float, Priority]] = []
    q: WorkQueue[ObjectKey] = WorkQueue(clock=clock, wait_hook=lambda s, p: waits.append((s, p)))
    q.add(k("a"), Priority.HIGH)
    clock.now += 3.0
    q.add(k("b"))
    q.add_after(k("c"), 60.0)
    stats = q.stats()
    assert (stats.depth, stats.delayed, stats.in_flight) == (2, 1, 0)
    assert stats.oldest_wait == 3.0
    clock.now += 1.0
    assert q.get_nowait() == k("a")
    assert q.stats().in_flight == 1
    assert waits == [(4.0, Priority.HIGH)]


async def test_get_waits_for_add() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add(k("a"))
    assert await asyncio.wait_for(getter, 1) == k("a")


async def test_get_wakes_for_delayed_key_on_real_loop() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after(k("a"), 0.05)
    assert await asyncio.wait_for(q.get(), 2) == k("a")
    assert loop.time() - start >= 0.045
    q.done(k("a"))
    q.shutdown()


async def test_cancelled_getter_hands_its_wakeup_to_another() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.add(k("a"))  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it can take the key
    assert await asyncio.wait_for(second, 1) == k("a")
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_shutdown_releases_waiting_getters_and_ignores_new_work() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0.01)
    q.add_after(k("later"), 0.01)
    q.shutdown()
    for getter in getters:
        with pytest.raises(QueueShutDown):
            await asyncio.wait_for(getter, 1)
    q.add(k("a"))
    assert len(q) == 0
    with pytest.raises(QueueShutDown):
        await q.get()
    await asyncio.sleep(0.02)  # the cancelled delay timer must not fire into a dead queue
    assert len(q) == 0


async def test_workers_never_process_one_key_concurrently() -> None:
    q: WorkQueue[ObjectKey] = WorkQueue()
    running: dict[ObjectKey, int] = defaultdict(int)
    max_running: dict[ObjectKey, int] = defaultdict(int)
    processed: dict[ObjectKey, int] = defaultdict(int)
    release = asyncio.Event()
    started = asyncio.Event()

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            running[key] += 1
            max_running[key] = max(max_running[key], running[key])
            started.set()
            await release.wait()
            await asyncio.sleep(0)
            processed[key] += 1
            running[key] -= 1
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    q.add(k("hot"))
    await asyncio.wait_for(started.wait(), 1)  # "hot" is now in flight, held
    for _ in range(10):
        q.add(k("hot"), Priority.HIGH)
        q.add(k("cold"))
        await asyncio.sleep(0)
    # Three idle workers, but "hot" is in flight: only "cold" may be taken.
    assert len(q) == 0 and q.stats().in_flight == 2
    release.set()
    for _ in range(200):
        if len(q) == 0 and q.stats().in_flight == 0:
            break
        await asyncio.sleep(0.01)
    q.shutdown()
    await asyncio.gather(*workers)
    assert max_running[k("hot")] == 1
    # Once for the first add, once more for all the adds that arrived while in flight.
    assert processed[k("hot")] == 2
    assert processed[k("cold")] == 2
