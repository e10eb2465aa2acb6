"""Manager lifecycle: SIGTERM drains in-flight reconciles, grace period, forced stop,
component failure, and no task left behind. (Informers against a real API server are in
tests/integration/test_engine_informer.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable

import pytest

from vaultbridge.engine.controller import Controller, Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.manager import Manager

A = ObjectKey("ns", "a")
B = ObjectKey("ns", "b")


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


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


class Slow:
    """Reconcile takes ``seconds``; records starts, completions and cancellations."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[ObjectKey] = []
        self.finished: list[ObjectKey] = []
        self.cancelled: list[ObjectKey] = []

    async def reconcile(self, key: ObjectKey) -> Result:
        self.started.append(key)
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.finished.append(key)
        return Result()


async def test_sigterm_drains_in_flight_reconciles_then_returns() -> None:
    rec = Slow(0.2)
    ctrl = Controller("c", rec, workers=1)
    mgr = Manager(grace_period=5.0)
    mgr.add_controller(ctrl)
    closed: list[str] = []

    async def flush_events() -> None:
        closed.append("events")

    mgr.on_shutdown(flush_events)
    mgr.install_signal_handlers()
    run = asyncio.create_task(mgr.run())
    try:
        await until(lambda: mgr.ready)
        ctrl.enqueue(A)
        ctrl.enqueue(B)  # waits behind A: the only worker is busy
        await until(lambda: ctrl.in_flight == 1)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(run, 3)
    finally:
        mgr.remove_signal_handlers()
    assert rec.finished == [A]  # finished, not cancelled
    assert rec.cancelled == []
    assert B not in rec.started  # no new work after the signal
    assert closed == ["events"]
    assert mgr.stopping and not mgr.ready
    # The handlers were removed by run(): SIGTERM is back to its default disposition.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_grace_period_over_cancels_in_flight() -> None:
    rec = Slow(3600)
    ctrl = Controller("c", rec, workers=2)
    mgr = Manager(grace_period=0.1)
    mgr.add_controller(ctrl)
    run = asyncio.create_task(mgr.run())
    await until(lambda: mgr.ready)
    ctrl.enqueue(A)
    await until(lambda: ctrl.in_flight == 1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    mgr.stop()
    await asyncio.wait_for(run, 3)
    assert 0.09 <= loop.time() - start < 2.0
    assert rec.cancelled == [A]


async def test_second_stop_skips_the_grace_period() -> None:
    rec = Slow(3600)
    ctrl = Controller("c", rec)
    mgr = Manager(grace_period=60.0)
    mgr.add_controller(ctrl)
    run = asyncio.create_task(mgr.run())
    await until(lambda: mgr.ready)
    ctrl.enqueue(A)
    await until(lambda: ctrl.in_flight == 1)
    mgr.stop()
    await asyncio.sleep(0.05)
    assert not run.done()
    mgr.stop()
    await asyncio.wait_for(run, 2)
    assert rec.cancelled == [A]


async def test_stop_before_sync_starts_no_controllers() -> None:
    rec = Slow(0)
    ctrl = Controller("c", rec)
    mgr = Manager()
    mgr.add_controller(ctrl)
    mgr.stop()
    ctrl.enqueue(A)
    await asyncio.wait_for(mgr.run(), 2)
    assert rec.started == []


class Broken(Controller):
    async def run(self) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("controller bug")


async def test_component_failure_stops_everything_and_is_raised() -> None:
    healthy = Slow(3600)
    good = Controller("good", healthy)
    mgr = Manager(grace_period=0.05)
    mgr.add_controller(good)
    mgr.add_controller(Broken("bad", Slow(0)))
    good.enqueue(A)
    with pytest.raises(RuntimeError, match="controller bug"):
        await asyncio.wait_for(mgr.run(), 3)
    assert healthy.cancelled == [A]


async def test_cancelling_run_still_cleans_up() -> None:
    rec = Slow(3600)
    ctrl = Controller("c", rec)
    mgr = Manager(grace_period=0.05)
    mgr.add_controller(ctrl)
    run = asyncio.create_task(mgr.run())
    await until(lambda: mgr.ready)
    ctrl.enqueue(A)
    await until(lambda: ctrl.in_flight == 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert rec.cancelled == [A]
