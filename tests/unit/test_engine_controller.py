"""Controller workers: backoff on errors, requeue_after, hooks, parallelism; priority rules
and owner mapping (pure functions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from vaultbridge.api.labels import OWNER_NAME_LABEL, owner_from_labels, owner_labels
from vaultbridge.engine.backoff import Backoff
from vaultbridge.engine.controller import (
    Controller,
    Result,
    default_priority,
    ignore_status_only,
    owner_keys,
)
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority
from vaultbridge.kube import objects


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

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


class Recorder:
    """A reconciler whose behaviour per call is scripted by the test."""

    def __init__(self, script: Callable[[ObjectKey, int], Awaitable[Result]]) -> None:
        self.script = script
        self.calls: list[ObjectKey] = []
        self.called = asyncio.Event()

    async def reconcile(self, key: ObjectKey) -> Result:
        self.calls.append(key)
        self.called.set()
        return await self.script(key, self.calls.count(key))


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


A = ObjectKey("ns", "a")
B = ObjectKey("ns", "b")


async def test_error_requeues_with_backoff_and_worker_survives() -> None:
    clock = Clock()

    async def script(key: ObjectKey, n: int) -> Result:
        if key == A and n == 1:
            raise RuntimeError("vault sealed")
        return Result()

    rec = Recorder(script)
    ctrl = Controller("t", rec, workers=1, clock=clock)
    task = asyncio.create_task(ctrl.run())
    try:
        ctrl.enqueue(A, Priority.HIGH)
        await until(lambda: A in ctrl.queue and not ctrl.queue.is_processing(A) and bool(rec.calls))
        due = ctrl.queue.delayed_until(A)
        assert due is not None and 4.0 <= due - clock.now <= 6.0
        assert ctrl.backoff.failures(A) == 1
        # The one worker is still alive and takes other keys.
        ctrl.enqueue(B)
        await until(lambda: rec.calls.count(B) == 1)
        # Time passes: the retry runs, succeeds, and the backoff is forgotten.
        clock.now = due
        ctrl.queue.poke()
        await until(lambda: rec.calls.count(A) == 2 and ctrl.in_flight == 0)
        assert ctrl.backoff.failures(A) == 0
        assert ctrl.queue.delayed_until(A) is None
    finally:
        ctrl.shutdown()
        await task


async def test_consecutive_errors_grow_the_delay() -> None:
    clock = Clock()

    async def always_fail(key: ObjectKey, n: int) -> Result:
        raise ValueError("nope")

    rec = Recorder(always_fail)
    ctrl = Controller("t", rec, workers=2, clock=clock, backoff=Backoff(jitter=0.0))
    task = asyncio.create_task(ctrl.run())
    try:
        delays = []
        for attempt in range(1, 5):
            ctrl.enqueue(A)
            await until(lambda a=attempt: len(rec.calls) == a and ctrl.in_flight == 0)  # type: ignore[misc]
            due = ctrl.queue.delayed_until(A)
            assert due is not None
            delays.append(due - clock.now)
        assert delays == pytest.approx([5.0, 7.5, 11.25, 16.875])
    finally:
        ctrl.shutdown()
        await task


async def test_requeue_after_is_honoured_as_given_and_replaces_older_timer() -> None:
    clock = Clock()
    answers = iter([Result(requeue_after=300.0), Result(requeue_after=42.5), Result()])

    async def script(key: ObjectKey, n: int) -> Result:
        return next(answers)

    rec = Recorder(script)
    outcomes: list[str] = []
    ctrl = Controller("t", rec, clock=clock)
    ctrl.add_reconcile_hook(lambda name, key, secs, outcome: outcomes.append(outcome))
    task = asyncio.create_task(ctrl.run())
    try:
        ctrl.enqueue(A, Priority.HIGH)
        await until(lambda: len(outcomes) == 1)
        assert ctrl.queue.delayed_until(A) == clock.now + 300.0
        # A change event wakes it early; the fresh result (later or sooner) is the authority.
        ctrl.enqueue(A, Priority.NORMAL)
        await until(lambda: len(outcomes) == 2)
        assert ctrl.queue.delayed_until(A) == clock.now + 42.5
        ctrl.enqueue(A, Priority.NORMAL)
        await until(lambda: len(outcomes) == 3)
        assert ctrl.queue.delayed_until(A) is None
        assert outcomes == ["requeue", "requeue", "success"]
    finally:
        ctrl.shutdown()
        await task


async def test_hook_sees_errors_and_a_broken_hook_does_not_hurt() -> None:
    async def script(key: ObjectKey, n: int) -> Result:
        if n == 1:
            raise RuntimeError("x")
        return Result()

    seen: list[tuple[str, ObjectKey, str]] = []

    def broken(*_: Any) -> None:
        raise RuntimeError("hook bug")

    ctrl = Controller("ctl", Recorder(script), backoff=Backoff(base=0.01, cap=0.01))
    ctrl.add_reconcile_hook(broken)
    ctrl.add_reconcile_hook(lambda name, key, secs, outcome: seen.append((name, key, outcome)))
    task = asyncio.create_task(ctrl.run())
    try:
        ctrl.enqueue(A)
        await until(lambda: len(seen) == 2)
        assert seen == [("ctl", A, "error"), ("ctl", A, "success")]
    finally:
        ctrl.shutdown()
        await task


async def test_workers_run_different_keys_in_parallel() -> None:
    release = asyncio.Event()

    async def held(key: ObjectKey, n: int) -> Result:
        await release.wait()
        return Result()

    rec = Recorder(held)
    ctrl = Controller("t", rec, workers=3)
    task = asyncio.create_task(ctrl.run())
    try:
        for i in range(6):
            ctrl.enqueue(ObjectKey("ns", f"k{i}"))
        await until(lambda: ctrl.in_flight == 3)
        await asyncio.sleep(0.02)
        assert ctrl.in_flight == 3 and len(ctrl.queue) == 3
        release.set()
        await until(lambda: len(rec.calls) == 6 and ctrl.in_flight == 0)
    finally:
        ctrl.shutdown()
        await task


async def test_shutdown_lets_current_reconcile_finish_and_takes_no_more() -> None:
    release = asyncio.Event()
    finished: list[ObjectKey] = []

    async def held(key: ObjectKey, n: int) -> Result:
        await release.wait()
        finished.append(key)
        return Result()

    rec = Recorder(held)
    ctrl = Controller("t", rec, workers=1)
    task = asyncio.create_task(ctrl.run())
    ctrl.enqueue(A)
    await until(lambda: ctrl.in_flight == 1)
    ctrl.enqueue(B)
    ctrl.shutdown()
    release.set()
    await asyncio.wait_for(task, 1)
    assert finished == [A]


async def test_cancelling_run_cancels_reconciles_without_leaks() -> None:
    cancelled = asyncio.Event()

    async def forever(key: ObjectKey, n: int) -> Result:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Result()

    ctrl = Controller("t", Recorder(forever), workers=2)
    task = asyncio.create_task(ctrl.run())
    ctrl.enqueue(A)
    await until(lambda: ctrl.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert ctrl.in_flight == 0 and not ctrl.queue.is_processing(A)


# -- Result.finish: the reconcile's last step, off the worker --------------------------------


class Finishes:
    """Finish steps that wait until the test releases them; counts how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most = 0
        self.done: list[ObjectKey] = []
        self.fail = False

    def of(self, key: ObjectKey) -> Callable[[], Awaitable[None]]:
        async def finish() -> None:
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                await self.release.wait()
                if self.fail:
                    raise RuntimeError("status patch refused")
                self.done.append(key)
            finally:
                self.running -= 1

        return finish


async def test_finish_frees_the_worker_but_keeps_the_key_in_flight() -> None:
    clock = Clock()
    fin = Finishes()

    async def script(key: ObjectKey, n: int) -> Result:
        if key == A and n == 1:
            return Result(requeue_after=60.0, finish=fin.of(A))
        return Result()

    rec = Recorder(script)
    outcomes: list[tuple[ObjectKey, str]] = []
    ctrl = Controller("t", rec, workers=1, clock=clock)
    ctrl.add_reconcile_hook(lambda name, key, secs, outcome: outcomes.append((key, outcome)))
    task = asyncio.create_task(ctrl.run())
    try:
        ctrl.enqueue(A, Priority.HIGH)
        await until(lambda: fin.running == 1)
        # The one worker is free: B is reconciled while A's finish is still running.
        ctrl.enqueue(B)
        await until(lambda: rec.calls.count(B) == 1 and (B, "success") in outcomes)
        # A is still in flight: a change is remembered, not reconciled; no requeue yet and
        # its outcome is not observed before the finish ends.
        ctrl.enqueue(A, Priority.NORMAL)
        await asyncio.sleep(0.02)
        assert rec.calls.count(A) == 1 and ctrl.queue.is_processing(A)
        assert ctrl.queue.delayed_until(A) is None
        assert ctrl.in_flight == 1 and (A, "requeue") not in outcomes
        fin.release.set()
        # Done: the requeue of the first result was scheduled and its outcome observed, then
        # the remembered change ran (its plain Result cancels the timer).
        await until(lambda: rec.calls.count(A) == 2 and ctrl.in_flight == 0)
        assert fin.done == [A]
        assert outcomes == [(B, "success"), (A, "requeue"), (A, "success")]
    finally:
        ctrl.shutdown()
        await task


async def test_a_failed_finish_is_retried_like_a_failed_reconcile() -> None:
    clock = Clock()
    fin = Finishes()
    fin.fail = True
    fin.release.set()

    async def script(key: ObjectKey, n: int) -> Result:
        return Result(requeue_after=3600.0, finish=fin.of(key)) if n == 1 else Result()

    rec = Recorder(script)
    outcomes: list[str] = []
    ctrl = Controller("t", rec, workers=1, clock=clock, backoff=Backoff(jitter=0.0))
    ctrl.add_reconcile_hook(lambda name, key, secs, outcome: outcomes.append(outcome))
    task = asyncio.create_task(ctrl.run())
    try:
        ctrl.enqueue(A)
        await until(lambda: outcomes == ["error"] and ctrl.in_flight == 0)
        # The backoff delay, not the result's hour: the status was not written.
        assert ctrl.queue.delayed_until(A) == clock.now + 5.0
        assert ctrl.backoff.failures(A) == 1
        clock.now += 5.0
        ctrl.queue.poke()
        await until(lambda: outcomes == ["error", "success"])
        assert ctrl.backoff.failures(A) == 0
    finally:
        ctrl.shutdown()
        await task


async def test_finishes_never_outnumber_the_workers() -> None:
    fin = Finishes()

    async def script(key: ObjectKey, n: int) -> Result:
        return Result(finish=fin.of(key))

    rec = Recorder(script)
    ctrl = Controller("t", rec, workers=2)
    task = asyncio.create_task(ctrl.run())
    try:
        keys = [ObjectKey("ns", f"k{i}") for i in range(5)]
        for key in keys:
            ctrl.enqueue(key)
        # Two finishes hold both slots; each worker has reconciled one more key and waits
        # for a slot with it; the fifth key waits in the queue.
        await until(lambda: fin.running == 2 and len(rec.calls) == 4)
        await asyncio.sleep(0.02)
        assert fin.running == 2 and len(rec.calls) == 4 and len(ctrl.queue) == 1
        assert ctrl.in_flight == 4
        fin.release.set()
        await until(lambda: len(fin.done) == 5 and ctrl.in_flight == 0)
        assert fin.most == 2 and set(fin.done) == set(keys)
    finally:
        ctrl.shutdown()
        await task


async def _one_finish_running() -> tuple[Finishes, Controller, asyncio.Task[None]]:
    """A one-worker controller whose key A has reconciled and whose finish is running."""
    fin = Finishes()

    async def script(key: ObjectKey, n: int) -> Result:
        return Result(finish=fin.of(key))

    ctrl = Controller("t", Recorder(script), workers=1)
    task = asyncio.create_task(ctrl.run())
    ctrl.enqueue(A)
    await until(lambda: fin.running == 1)
    return fin, ctrl, task


async def test_shutdown_waits_for_running_finishes() -> None:
    fin, ctrl, task = await _one_finish_running()
    ctrl.shutdown()
    await asyncio.sleep(0.02)
    assert not task.done()
    fin.release.set()
    await asyncio.wait_for(task, 1)
    assert fin.done == [A] and ctrl.in_flight == 0 and not ctrl.queue.is_processing(A)


async def test_cancelling_run_cancels_finishes_without_leaks() -> None:
    fin, ctrl, task = await _one_finish_running()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fin.running == 0 and fin.done == []
    assert ctrl.in_flight == 0 and not ctrl.queue.is_processing(A)


def obj(
    generation: int = 1, labels: dict[str, str] | None = None, status: str = "", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "generation": generation,
            "labels": labels or {},
            **meta,
        },
        "status": {"x": status},
    }


def test_default_priority() -> None:
    assert default_priority("ADDED", None, obj()) is Priority.HIGH
    assert default_priority("MODIFIED", obj(1), obj(2)) is Priority.HIGH
    assert default_priority("MODIFIED", obj(1), obj(1, status="new")) is Priority.NORMAL
    assert default_priority("MODIFIED", obj(1), obj(1, labels={"a": "b"})) is Priority.NORMAL
    assert default_priority("DELETED", obj(), obj()) is Priority.NORMAL


def test_ignore_status_only_skips_our_own_status_writes() -> None:
    assert ignore_status_only("MODIFIED", obj(1), obj(1, status="synced")) is None
    assert ignore_status_only("MODIFIED", obj(1), obj(1, labels={"a": "b"})) is Priority.NORMAL
    assert (
        ignore_status_only("MODIFIED", obj(1), obj(1, deletionTimestamp="2024-01-01T00:00:00Z"))
        is Priority.NORMAL
    )
    assert ignore_status_only("MODIFIED", obj(1), obj(2)) is Priority.HIGH
    assert ignore_status_only("ADDED", None, obj()) is Priority.HIGH
    # Objects without generation (e.g. Secrets) are never filtered.
    assert ignore_status_only("MODIFIED", obj(0), obj(0, status="x")) is Priority.NORMAL


def secret(
    owner_refs: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "dest",
            "namespace": "app",
            "labels": labels or {},
            "ownerReferences": owner_refs or [],
        },
    }


def test_owner_keys_from_owner_references() -> None:
    owner = obj()
    owner["metadata"]["uid"] = "u1"
    ref = objects.owner_reference(owner)
    assert ref == {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "name": "a",
        "uid": "u1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u2"}
    wrong_group = {**ref, "apiVersion": "example.com/v1", "name": "imposter"}
    s = secret([other, wrong_group, ref])
    assert owner_keys(s, "VaultStaticSecret", "vaultbridge.dev") == [ObjectKey("app", "a")]
    assert owner_keys(s, "VaultDynamicSecret", "vaultbridge.dev") == []
    assert owner_keys(s, "Deployment", "apps") == [ObjectKey("app", "d")]


def test_owner_keys_fall_back_to_labels() -> None:
    labels = owner_labels("VaultPKISecret", "cert")
    assert labels == {
        "app.kubernetes.io/managed-by": "vaultbridge",
        "vaultbridge.dev/owner-kind": "VaultPKISecret",
        "vaultbridge.dev/owner-name": "cert",
    }

    def by_labels(kind: str) -> Callable[[dict[str, Any]], list[ObjectKey]]:
        return lambda o: owner_from_labels(o, kind)

    pki, static = by_labels("VaultPKISecret"), by_labels("VaultStaticSecret")
    group = "vaultbridge.dev"
    assert owner_keys(secret(labels=labels), "VaultPKISecret", group, pki) == [
        ObjectKey("app", "cert")
    ]
    assert owner_keys(secret(labels=labels), "VaultPKISecret", group) == []
    assert owner_keys(secret(labels=labels), "VaultStaticSecret", group, static) == []
    foreign = {**labels, "app.kubernetes.io/managed-by": "helm"}
    assert owner_keys(secret(labels=foreign), "VaultPKISecret", group, pki) == []
    # A name too long for a label value is left out: only the ownerReference can carry it.
    long_name = "n" * 64
    assert OWNER_NAME_LABEL not in owner_labels("VaultPKISecret", long_name)
