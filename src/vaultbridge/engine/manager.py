"""Run informers and controllers together, and stop them gracefully.

Start order: informers first; controllers only once every informer has synced, because
reconcilers read the stores and a half-filled store looks like deleted objects.
Stop order (``stop()``, SIGTERM or SIGINT): controllers take no new keys; in-flight
reconciles get ``grace_period`` seconds to finish, then are cancelled; shutdown callbacks
run (e.g. flushing Events); informers are cancelled last. ``run()`` returns only when every
task it started has ended. A second signal skips the rest of the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from vaultbridge.engine.controller import Controller
from vaultbridge.engine.informer import Informer

log = logging.getLogger(__name__)

ShutdownCallback = Callable[[], Awaitable[None]]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Manager:
    def __init__(self, *, grace_period: float = 30.0) -> None:
        self.grace_period = grace_period
        self.informers: list[Informer] = []
        self.controllers: list[Controller] = []
        self._shutdown_callbacks: list[ShutdownCallback] = []
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._controllers_started = False

    def add_informer(self, informer: Informer) -> Informer:
        self.informers.append(informer)
        return informer

    def add_controller(self, controller: Controller) -> Controller:
        self.controllers.append(controller)
        return controller

    def on_shutdown(self, callback: ShutdownCallback) -> None:
        """Await ``callback()`` after the controllers stopped, before the informers stop."""
        self._shutdown_callbacks.append(callback)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def ready(self) -> bool:
        """Every informer synced and the controllers are running (readiness probe)."""
        return (
            self._controllers_started
            and not self._stop.is_set()
            and all(i.has_synced for i in self.informers)
        )

    def stop(self) -> None:
        """Begin a graceful stop; calling it again cuts the grace period short."""
        if self._stop.is_set():
            log.warning("second stop request: cancelling in-flight work now")
            self._force.set()
        else:
            log.info("stopping: draining in-flight reconciles (grace %.0fs)", self.grace_period)
            self._stop.set()

    def install_signal_handlers(self) -> None:
        """Route SIGTERM and SIGINT to ``stop()`` (main thread, running loop); undone by run()."""
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self.stop)
        self._signal_loop = loop

    def remove_signal_handlers(self) -> None:
        if self._signal_loop is not None:
            for sig in _SIGNALS:
                self._signal_loop.remove_signal_handler(sig)
            self._signal_loop = None

    async def run(self) -> None:
        """Run until ``stop()``. Re-raises the error of a component that died unexpectedly."""
        informer_tasks = [
            asyncio.create_task(i.run(), name=f"informer-{i.name}") for i in self.informers
        ]
        controller_tasks: list[asyncio.Task[None]] = []
        stop_waiter = asyncio.create_task(self._stop.wait(), name="manager-stop")
        synced = asyncio.create_task(self._wait_synced(), name="manager-sync")
        helpers = (stop_waiter, synced)
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(
                {synced, stop_waiter, *informer_tasks}, return_when=asyncio.FIRST_COMPLETED
            )
            if synced in done and not self._stop.is_set():
                controller_tasks = [
                    asyncio.create_task(c.run(), name=f"controller-{c.name}")
                    for c in self.controllers
                ]
                self._controllers_started = True
                log.info("caches synced; %d controllers running", len(controller_tasks))
                done, _ = await asyncio.wait(
                    {stop_waiter, *informer_tasks, *controller_tasks},
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if not self._stop.is_set():
                failure = _first_failure(done - set(helpers)) or RuntimeError(
                    "a manager component ended unexpectedly"
                )
                log.error("manager: component failed, stopping: %r", failure)
        finally:
            self._stop.set()
            await self._drain(controller_tasks)
            for callback in self._shutdown_callbacks:
                try:
                    await callback()
                except Exception:
                    log.exception("shutdown callback failed")
            for task in (*informer_tasks, *helpers):
                task.cancel()
            await asyncio.gather(*informer_tasks, *helpers, return_exceptions=True)
            self.remove_signal_handlers()
            self._controllers_started = False
        if failure is not None:
            raise failure

    async def _wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self.informers))

    async def _drain(self, controller_tasks: list[asyncio.Task[None]]) -> None:
        for controller in self.controllers:
            controller.shutdown()
        if not controller_tasks:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_period
        pending = {t for t in controller_tasks if not t.done()}
        force = asyncio.create_task(self._force.wait(), name="manager-force")
        try:
            while pending and not force.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    {*pending, force}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            force.cancel()
            await asyncio.gather(force, return_exceptions=True)
        pending = {t for t in controller_tasks if not t.done()}
        if pending:
            busy = sum(c.in_flight for c in self.controllers)
            log.warning("grace period over: cancelling %d in-flight reconciles", busy)
            for task in pending:
                task.cancel()
        results = await asyncio.gather(*controller_tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("controller ended with %r", result)


def _first_failure(tasks: set[asyncio.Task[Any]]) -> BaseException | None:
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            return exc
    return None
