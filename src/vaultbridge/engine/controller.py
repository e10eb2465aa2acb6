"""Run a reconciler over a work queue with N workers.

Level-triggered: the queue carries keys only; a reconcile computes the desired state of that
key from scratch (reading informer stores) and converges. Workers never die: an exception
is logged and the key comes back after a per-key exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from vaultbridge.engine.backoff import Backoff
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Fairness, Priority, QueueShutDown, WorkQueue
from vaultbridge.kube import objects

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: Maps an object from a watched informer to the keys of the objects to reconcile.
Mapper = Callable[[Obj], Iterable[ObjectKey]]
#: (event type ADDED|MODIFIED|DELETED, old object or None, new object) -> priority, or None
#: to ignore the event.
PriorityFn = Callable[[str, Obj | None, Obj], Priority | None]
#: (controller name, key, seconds, outcome "success"|"requeue"|"error"); must not raise.
ReconcileHook = Callable[[str, ObjectKey, float, str], None]


@dataclass(frozen=True, slots=True)
class Result:
    """Outcome of a successful reconcile.

    ``requeue_after``: seconds until the key should be reconciled again, honoured as given
    (jitter it in the reconciler with ``backoff.jittered``); ``None`` means only when
    something changes. A failed reconcile raises instead and is retried with backoff.

    ``finish``: the reconcile's last step, run *without holding a worker* (e.g. a status
    write after the Secret is right). Until it completes the key stays in flight: no other
    reconcile of it starts, its requeue is not scheduled and its duration is not observed;
    if it raises, the key is retried with backoff exactly as if the reconcile had raised.
    So a reconcile with a ``finish`` behaves as one that awaited it at the end, except that
    its worker takes the next key meanwhile. At most ``workers`` finishes run at once (a
    worker waits for a free slot before it hands one off), so they cannot pile up.
    """

    requeue_after: float | None = None
    finish: Callable[[], Awaitable[None]] | None = None


class Reconciler(Protocol):
    async def reconcile(self, key: ObjectKey) -> Result: ...


def default_priority(event: str, old: Obj | None, new: Obj) -> Priority | None:
    """New objects and spec (generation) changes are HIGH; any other change is NORMAL."""
    if event == "ADDED":
        return Priority.HIGH
    if (
        event == "MODIFIED"
        and old is not None
        and objects.generation(old) != objects.generation(new)
    ):
        return Priority.HIGH
    return Priority.NORMAL


def ignore_status_only(event: str, old: Obj | None, new: Obj) -> Priority | None:
    """Like ``default_priority``, but skip updates that change nothing a reconcile reads
    except ``status`` — typically the controller's own status patch coming back.

    Only for resources that track ``metadata.generation`` (custom resources with a status
    subresource); for others every update looks status-only.
    """
    if event == "MODIFIED" and old is not None:
        old_meta, new_meta = objects.meta(old), objects.meta(new)
        if objects.generation(new) and all(
            old_meta.get(f) == new_meta.get(f)
            for f in (
                "generation",
                "labels",
                "annotations",
                "finalizers",
                "deletionTimestamp",
                "ownerReferences",
            )
        ):
            return None
    return default_priority(event, old, new)


def owner_keys(
    obj: Obj,
    owner_kind: str,
    owner_group: str,
    fallback: Callable[[Obj], list[ObjectKey]] | None = None,
) -> list[ObjectKey]:
    """Keys of the ``owner_kind`` objects that own ``obj`` (same namespace).

    ownerReferences decide; ``fallback`` (e.g. owner labels) maps objects whose
    ownerReference was removed.
    """
    ns = objects.namespace(obj)
    keys: list[ObjectKey] = []
    for ref in objects.owner_references(obj):
        if ref.get("kind") == owner_kind and objects.api_group(str(ref.get("apiVersion", ""))) == (
            owner_group
        ):
            key = ObjectKey(ns, str(ref.get("name", "")))
            if key.name and key not in keys:
                keys.append(key)
    if keys or fallback is None:
        return keys
    return fallback(obj)


class Controller:
    """Workers draining one queue into one reconciler.

    ``error_priority`` is used for retries after failures and ``requeue_priority`` for
    ``Result.requeue_after``; both are below HIGH so new objects overtake them. Metrics:
    ``queue_wait_hook(seconds, priority)`` per dequeued key, ``queue.stats()`` for depths,
    ``add_reconcile_hook`` for reconcile durations and outcomes. ``fairness``: how the queue
    shares the workers between tenants (``engine/queue.py``); ``None``: one line for all.
    """

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 4,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        error_priority: Priority = Priority.NORMAL,
        requeue_priority: Priority = Priority.LOW,
        queue_wait_hook: Callable[[float, Priority], None] | None = None,
        fairness: Fairness[ObjectKey] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.backoff = backoff if backoff is not None else Backoff()
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            name, clock=clock, wait_hook=queue_wait_hook, fairness=fairness
        )
        self._clock = clock
        self._error_priority = error_priority
        self._requeue_priority = requeue_priority
        self._hooks: list[ReconcileHook] = []
        self._in_flight = 0
        # Finishes (Result.finish) running off the workers; bounded by `workers` slots.
        self._finish_slots = asyncio.Semaphore(workers)
        self._finishing: set[asyncio.Task[None]] = set()

    # -- feeding the queue -----------------------------------------------------------------

    def enqueue(self, key: ObjectKey, priority: Priority = Priority.NORMAL) -> None:
        self.queue.add(key, priority)

    def enqueue_after(
        self, key: ObjectKey, delay: float, priority: Priority = Priority.LOW
    ) -> None:
        self.queue.add_after(key, delay, priority)

    def watch(
        self,
        informer: Informer,
        mapper: Mapper | None = None,
        priority_fn: PriorityFn = default_priority,
    ) -> None:
        """Enqueue keys for every change the informer reports.

        ``mapper`` turns the changed object into keys (default: the object's own key).
        """
        to_keys: Mapper = mapper or _own_key

        def enqueue(event: str, old: Obj | None, new: Obj) -> None:
            priority = priority_fn(event, old, new)
            if priority is None:
                return
            for key in to_keys(new):
                self.queue.add(key, priority)

        informer.add_handlers(
            on_add=lambda obj: enqueue("ADDED", None, obj),
            on_update=lambda old, new: enqueue("MODIFIED", old, new),
            on_delete=lambda obj: enqueue("DELETED", obj, obj),
        )

    def watch_owned(
        self,
        informer: Informer,
        owner_kind: str,
        owner_group: str,
        priority: Priority = Priority.NORMAL,
        *,
        fallback: Callable[[Obj], list[ObjectKey]] | None = None,
        skip: Callable[[str, Obj | None, Obj], bool] | None = None,
    ) -> None:
        """Reconcile the owner when an object it owns (a Secret) changes or disappears,
        except for events `skip` recognises (the controller's own writes, engine/echoes.py)."""

        def priority_fn(event: str, old: Obj | None, new: Obj) -> Priority | None:
            if skip is not None and skip(event, old, new):
                return None
            return priority

        self.watch(
            informer,
            mapper=lambda obj: owner_keys(obj, owner_kind, owner_group, fallback),
            priority_fn=priority_fn,
        )

    def add_reconcile_hook(self, hook: ReconcileHook) -> None:
        self._hooks.append(hook)

    @property
    def in_flight(self) -> int:
        """Reconciles running right now (a reconcile whose ``finish`` runs still counts)."""
        return self._in_flight

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers until ``shutdown()`` (they finish their current key) or cancel.

        Returns once the workers and every ``finish`` they handed off are done."""
        tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*tasks)
            while self._finishing:
                await asyncio.gather(*self._finishing, return_exceptions=True)
        finally:
            pending = [*tasks, *self._finishing]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def shutdown(self) -> None:
        """Take no new keys; workers exit after their current reconcile."""
        self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            self._in_flight += 1
            handed_off = False
            try:
                start = self._clock()
                result = await self._reconcile(key, start)
                if result is not None and result.finish is not None:
                    # The slot is taken before the key leaves this worker: with every slot
                    # busy the worker waits here, so finishes never outnumber the workers.
                    await self._finish_slots.acquire()
                    task = asyncio.create_task(
                        self._finish(key, start, result), name=f"{self.name}-finish"
                    )
                    self._finishing.add(task)
                    task.add_done_callback(self._finishing.discard)
                    handed_off = True
                elif result is not None:
                    self._settle(key, start, result)
            finally:
                if not handed_off:
                    self._in_flight -= 1
                    self.queue.done(key)

    async def _finish(self, key: ObjectKey, start: float, result: Result) -> None:
        try:
            assert result.finish is not None
            try:
                await result.finish()
            except Exception as exc:
                self._failed(key, start, exc)
            else:
                self._settle(key, start, result)
        finally:
            self._finish_slots.release()
            self._in_flight -= 1
            self.queue.done(key)

    async def _reconcile(self, key: ObjectKey, start: float) -> Result | None:
        """The reconcile's result, or None when it raised (the retry is then scheduled)."""
        try:
            result = await self.reconciler.reconcile(key)
        except Exception as exc:
            self._failed(key, start, exc)
            return None
        return result if result is not None else Result()

    def _failed(self, key: ObjectKey, start: float, exc: Exception) -> None:
        delay = self.backoff.failure(key)
        log.error(
            "controller %s: reconcile %s failed (attempt %d), retrying in %.1fs: %s",
            self.name,
            key,
            self.backoff.failures(key),
            delay,
            _describe(exc),
            exc_info=exc,
        )
        self.queue.add_after(key, delay, self._error_priority, replace=True)
        self._observe(key, start, "error")

    def _settle(self, key: ObjectKey, start: float, result: Result) -> None:
        self.backoff.reset(key)
        if result.requeue_after is None:
            # This reconcile saw the current state and needs no timer; an older one is moot.
            self.queue.cancel_delayed(key)
            self._observe(key, start, "success")
        else:
            self.queue.add_after(key, result.requeue_after, self._requeue_priority, replace=True)
            self._observe(key, start, "requeue")

    def _observe(self, key: ObjectKey, start: float, outcome: str) -> None:
        if not self._hooks:
            return
        elapsed = self._clock() - start
        for hook in self._hooks:
            try:
                hook(self.name, key, elapsed, outcome)
            except Exception:
                log.exception("reconcile hook failed")


def _own_key(obj: Obj) -> list[ObjectKey]:
    return [ObjectKey.of(obj)]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
