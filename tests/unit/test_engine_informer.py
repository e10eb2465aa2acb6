"""Informer bookkeeping with a scripted list/watch source (the pure-logic edge): store
updates, handler calls, resume points, and the store-vs-relist diff after 410 Gone.

The same behaviour against the real API server is in tests/integration/test_engine_informer.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

import pytest

from vaultbridge.engine.backoff import Backoff
from vaultbridge.engine.controller import Controller, Result
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority
from vaultbridge.kube.client import KubeClient, ListResult, WatchEvent
from vaultbridge.kube.errors import Forbidden, KubeUnreachable, ResourceExpired
from vaultbridge.kube.resources import CONFIG_MAPS


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


def cm(name: str, rv: str, ns: str = "ns", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, **extra},
    }


Step = WatchEvent | Exception


class ScriptedSource:
    """Answers list() and watch() from scripts; an exhausted watch script idles forever."""

    def __init__(self, lists: list[ListResult | Exception], watches: list[list[Step]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watch_from: list[str | None] = []

    async def list(self, res: Any, namespace: Any = None, **_: Any) -> ListResult:
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def watch(
        self, res: Any, namespace: Any = None, *, resource_version: str | None, **_: Any
    ) -> AsyncGenerator[WatchEvent, None]:
        self.watch_from.append(resource_version)
        script = self.watches.pop(0) if self.watches else []
        for step in script:
            await asyncio.sleep(0)
            if isinstance(step, Exception):
                raise step
            yield step
        if not self.watches:
            await asyncio.Event().wait()


class Log:
    def __init__(self, informer: Informer) -> None:
        self.events: list[tuple[str, str, str]] = []
        informer.add_handlers(
            on_add=lambda o: self.events.append(("add", o["metadata"]["name"], rv(o))),
            on_update=lambda old, new: self.events.append(
                ("update", new["metadata"]["name"], f"{rv(old)}->{rv(new)}")
            ),
            on_delete=lambda o: self.events.append(("delete", o["metadata"]["name"], rv(o))),
        )


def rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


def make(source: ScriptedSource) -> Informer:
    return Informer(
        cast(KubeClient, source),
        CONFIG_MAPS,
        "ns",
        backoff=Backoff(base=0.001, cap=0.002, jitter=0.0),
    )


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.002)


async def run_until(informer: Informer, predicate: Callable[[], bool]) -> None:
    task = asyncio.create_task(informer.run())
    try:
        await until(predicate)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_list_then_watch_events_update_store_and_handlers() -> None:
    managed = [{"manager": "kubectl", "operation": "Update"}]
    source = ScriptedSource(
        [ListResult([cm("a", "10", managedFields=managed), cm("b", "11")], "12")],
        [
            [
                WatchEvent("ADDED", cm("c", "13")),
                WatchEvent("MODIFIED", cm("a", "14")),
                WatchEvent("DELETED", cm("b", "15")),
                WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "20"}}),
            ]
        ],
    )
    inf = make(source)
    log = Log(inf)
    await run_until(inf, lambda: inf.resource_version == "20")
    assert log.events == [
        ("add", "a", "10"),
        ("add", "b", "11"),
        ("add", "c", "13"),
        ("update", "a", "10->14"),
        ("delete", "b", "15"),
    ]
    assert inf.has_synced
    assert sorted(k.name for k in inf.store) == ["a", "c"]
    assert inf.store.keys("other") == []
    assert inf.store.get(ObjectKey("ns", "a")) == cm("a", "14")
    assert source.watch_from == ["12"]


async def test_list_strips_managed_fields() -> None:
    managed = [{"manager": "kubectl", "operation": "Update"}]
    source = ScriptedSource([ListResult([cm("a", "1", managedFields=managed)], "2")], [])
    inf = make(source)
    await run_until(inf, lambda: inf.has_synced)
    stored = inf.store.get(ObjectKey("ns", "a"))
    assert stored is not None and "managedFields" not in stored["metadata"]


async def test_broken_stream_resumes_from_last_seen_version() -> None:
    source = ScriptedSource(
        [ListResult([cm("a", "1")], "5")],
        [
            [WatchEvent("MODIFIED", cm("a", "6")), KubeUnreachable("connection reset")],
            [WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "9"}})],  # ends cleanly
            [WatchEvent("ADDED", cm("b", "10"))],
        ],
    )
    inf = make(source)
    log = Log(inf)
    await run_until(inf, lambda: len(source.watch_from) == 3 and inf.resource_version == "10")
    assert source.watch_from == ["5", "6", "9"]
    assert inf.stats.lists == 1  # resumed, never relisted
    assert log.events == [("add", "a", "1"), ("update", "a", "1->6"), ("add", "b", "10")]


async def test_expired_version_relists_and_reports_the_difference() -> None:
    source = ScriptedSource(
        [
            ListResult([cm("same", "1"), cm("changed", "2"), cm("gone", "3")], "3"),
            ListResult([cm("same", "1"), cm("changed", "7"), cm("new", "8")], "9"),
        ],
        [[ResourceExpired(410, "Expired", "too old resource version")], []],
    )
    inf = make(source)
    log = Log(inf)
    await run_until(inf, lambda: inf.stats.lists == 2 and len(source.watch_from) == 2)
    assert log.events[3:] == [
        ("delete", "gone", "3"),
        ("update", "changed", "2->7"),
        ("add", "new", "8"),
    ]
    assert sorted(k.name for k in inf.store.keys("ns")) == ["changed", "new", "same"]
    assert source.watch_from == ["3", "9"]
    assert inf.stats.relists_after_expiry == 1


async def test_list_errors_are_retried_until_synced() -> None:
    source = ScriptedSource(
        [
            KubeUnreachable("connection refused"),
            Forbidden(403, "Forbidden", "configmaps is forbidden"),
            ListResult([cm("a", "1")], "2"),
        ],
        [],
    )
    inf = make(source)
    await run_until(inf, lambda: inf.has_synced)
    assert inf.stats.errors == 2
    assert len(inf.store) == 1


async def test_failing_handler_does_not_stop_the_informer() -> None:
    source = ScriptedSource(
        [ListResult([cm("a", "1")], "1")], [[WatchEvent("ADDED", cm("b", "2"))]]
    )
    inf = make(source)
    seen: list[str] = []

    def bad(_obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf.add_handlers(on_add=bad)
    inf.add_handlers(on_add=lambda o: seen.append(o["metadata"]["name"]))
    await run_until(inf, lambda: seen == ["a", "b"])


async def test_controller_watch_maps_events_to_prioritised_keys() -> None:
    source = ScriptedSource(
        [ListResult([cm("a", "1", generation=1), cm("b", "1", generation=1)], "1")],
        [
            [
                WatchEvent("MODIFIED", cm("a", "2", generation=1)),  # metadata/status: NORMAL
                WatchEvent("MODIFIED", cm("b", "3", generation=2)),  # spec change: HIGH
            ]
        ],
    )
    inf = make(source)

    class Nothing:
        async def reconcile(self, key: ObjectKey) -> Result:
            return Result()

    ctrl = Controller("c", Nothing())
    seen: list[tuple[str, Priority | None]] = []

    def priority(event: str, old: dict[str, Any] | None, new: dict[str, Any]) -> Priority | None:
        from vaultbridge.engine.controller import default_priority

        p = default_priority(event, old, new)
        seen.append((new["metadata"]["name"], p))
        return p

    ctrl.watch(inf, priority_fn=priority)
    await run_until(inf, lambda: len(seen) == 4)
    assert seen == [
        ("a", Priority.HIGH),
        ("b", Priority.HIGH),
        ("a", Priority.NORMAL),
        ("b", Priority.HIGH),
    ]
    assert len(ctrl.queue) == 2
    ctrl.shutdown()


async def test_restarted_informer_resumes_instead_of_relisting() -> None:
    source = ScriptedSource(
        [ListResult([cm("a", "1")], "4")], [[WatchEvent("MODIFIED", cm("a", "5"))]]
    )
    inf = make(source)
    log = Log(inf)
    await run_until(inf, lambda: inf.resource_version == "5")  # then cancelled
    source.watches.append([WatchEvent("ADDED", cm("b", "6"))])
    await run_until(inf, lambda: inf.resource_version == "6")
    assert inf.stats.lists == 1
    assert source.watch_from == ["4", "5"]
    assert log.events == [("add", "a", "1"), ("update", "a", "1->5"), ("add", "b", "6")]
