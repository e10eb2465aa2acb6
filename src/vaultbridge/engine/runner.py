"""Run an operator process: caches always, controllers while leading, until a signal.

Two managers (engine/manager.py) make one process: ``caches`` runs the informers on every
replica, so a standby's caches stay warm; ``controllers`` runs the controllers, only while this
replica leads (``elector``; without one, at once). The controllers start only once every cache
holds its first list: a half-filled store looks like deleted objects.

Guarantees:
- SIGTERM/SIGINT: the controllers drain within their grace period (a second signal cuts it
  short); a standby has nothing to drain and stops at once. Exit code 0.
- A lost leadership or a component that died: exit code 1, so the process restarts and
  starts over (as client-go operators do), never a replica that half-runs.
- ``while_leading`` (the caller's: metrics, labels, one-off sweeps) is entered when the
  controllers start and left when they stop, whatever the reason; ``close`` runs last, always.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from .leader import LeaderElector, LeadershipLost
from .manager import Manager

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def run_until_stopped(
    caches: Manager,
    controllers: Manager,
    elector: LeaderElector | None,
    *,
    while_leading: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    before_start: Callable[[], Awaitable[None]] | None = None,
    close: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Run until stopped; the process's exit code (see the module docstring)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            controllers.stop()  # second signal: cut the grace period short
            return
        stop.set()
        controllers.stop()
        if elector is not None and not elector.is_leader:
            work.cancel()  # a standby has nothing to drain

    async def lead() -> None:
        synced = asyncio.create_task(_all_synced(caches))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (synced, stopped):
                task.cancel()
            await asyncio.gather(synced, stopped, return_exceptions=True)
        if stop.is_set():
            return
        log.info("caches synced; starting controllers")
        leading = while_leading() if while_leading is not None else contextlib.nullcontext()
        async with leading:
            await controllers.run()

    if before_start is not None:
        await before_start()
    informers = asyncio.create_task(caches.run(), name="informers")
    work = asyncio.create_task(elector.run(lead) if elector else lead(), name="controllers")
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    rc = 0
    try:
        await asyncio.wait({informers, work}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            rc = 1
            if informers.done():
                log.error("informers ended unexpectedly: %r", _exception(informers))
                controllers.stop()
                if elector is not None and not elector.is_leader:
                    work.cancel()
        results = await asyncio.gather(work, return_exceptions=True)
        for result in results:
            if isinstance(result, LeadershipLost):
                log.error("%s; exiting so a fresh process can stand for election", result)
                rc = 1
            elif isinstance(result, Exception):
                log.error("controllers ended with %r", result)
                rc = 1
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
        if close is not None:
            await close()
        caches.stop()
        await asyncio.gather(informers, return_exceptions=True)
    return rc


async def _all_synced(caches: Manager) -> None:
    await asyncio.gather(*(i.wait_synced() for i in caches.informers))


def _exception(task: asyncio.Task[None]) -> BaseException | None:
    return None if task.cancelled() else task.exception()
