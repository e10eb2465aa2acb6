"""engine/runner.py: caches always, controllers while leading, exit codes, hooks in order.
(Leader election against a real API server is in the integration suite.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

from vaultbridge.engine import runner
from vaultbridge.engine.controller import Controller, Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.manager import Manager


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def leading(self) -> contextlib.AbstractAsyncContextManager[None]:
        @contextlib.asynccontextmanager
        async def cm() -> AsyncIterator[None]:
            self.events.append("lead")
            try:
                yield
            finally:
                self.events.append("unlead")

        return cm()

    async def before(self) -> None:
        self.events.append("before")

    async def close(self) -> None:
        self.events.append("close")


class Reconciler:
    def __init__(self) -> None:
        self.seen: list[ObjectKey] = []

    async def reconcile(self, key: ObjectKey) -> Result:
        self.seen.append(key)
        return Result()


async def test_sigterm_drains_and_exits_0_with_every_hook_in_order() -> None:
    rec = Recorder()
    caches, controllers = Manager(), Manager(grace_period=1.0)
    reconciler = Reconciler()
    ctl = controllers.add_controller(Controller("c", reconciler, workers=1))
    rc_task = asyncio.create_task(
        runner.run_until_stopped(
            caches,
            controllers,
            None,
            while_leading=rec.leading,
            before_start=rec.before,
            close=rec.close,
        )
    )
    while "lead" not in rec.events:
        await asyncio.sleep(0.01)
    ctl.queue.add(ObjectKey("ns", "a"))
    while not reconciler.seen:
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(rc_task, 10) == 0
    assert rec.events == ["before", "lead", "unlead", "close"]


async def test_a_failed_controller_manager_exits_1_and_still_closes() -> None:
    rec = Recorder()
    caches, controllers = Manager(), Manager(grace_period=1.0)

    async def broken() -> None:
        raise RuntimeError("boom")

    controllers.run = broken  # type: ignore[method-assign]
    rc = await asyncio.wait_for(
        runner.run_until_stopped(
            caches, controllers, None, while_leading=rec.leading, close=rec.close
        ),
        10,
    )
    assert rc == 1
    assert rec.events == ["lead", "unlead", "close"]
