"""Informer, Controller and Manager against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from vaultbridge.api.labels import managed_by_selector, owner_labels
from vaultbridge.engine.backoff import Backoff
from vaultbridge.engine.controller import Controller, Result, ignore_status_only
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.manager import Manager
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import NotFound
from vaultbridge.kube.resources import CONFIG_MAPS, SECRETS, Resource

from .scratch_crd import GROUP, scratch_crd

# kube_only: the API server alone, never Vault (tests/vault_facing.py)
pytestmark = [pytest.mark.integration, pytest.mark.kube_only]

GADGETS = Resource(GROUP, "v1", "gadgets", "Gadget")


@pytest.fixture(scope="module")
async def gadgets(kube: KubeClient) -> AsyncIterator[Resource]:
    async with scratch_crd(kube, GADGETS) as resource:
        yield resource


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


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


class Log:
    def __init__(self, informer: Informer) -> None:
        self.events: list[tuple[str, str]] = []
        informer.add_handlers(
            on_add=lambda o: self.events.append(("add", objects.name(o))),
            on_update=lambda old, new: self.events.append(("update", objects.name(new))),
            on_delete=lambda o: self.events.append(("delete", objects.name(o))),
        )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_informer_lists_watches_and_keeps_store(kube: KubeClient, namespace: str) -> None:
    await kube.create(CONFIG_MAPS, {"metadata": {"name": "pre"}}, namespace)
    await kube.create(CONFIG_MAPS, {"metadata": {"name": "skip", "labels": {"x": "no"}}}, namespace)
    inf = Informer(kube, CONFIG_MAPS, namespace, label_selector="x!=no")
    log = Log(inf)
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.wait_synced(), 10)
        assert inf.store.keys() == [ObjectKey(namespace, "pre")]
        await kube.create(CONFIG_MAPS, {"metadata": {"name": "new"}}, namespace)
        await kube.patch(CONFIG_MAPS, "pre", {"data": {"a": "b"}}, namespace)
        await kube.delete(CONFIG_MAPS, "new", namespace)
        await until(lambda: len(log.events) == 4)
        assert log.events == [("add", "pre"), ("add", "new"), ("update", "pre"), ("delete", "new")]
        stored = inf.store.get(ObjectKey(namespace, "pre"))
        assert stored is not None and stored["data"] == {"a": "b"}
        assert "managedFields" not in stored["metadata"]
        assert inf.store.list(namespace) == [stored]
    finally:
        await stop(task)


async def test_informer_resumes_across_watch_timeouts(kube: KubeClient, namespace: str) -> None:
    inf = Informer(kube, CONFIG_MAPS, namespace, watch_timeout=1.0)
    log = Log(inf)
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.wait_synced(), 10)
        for i in range(6):
            await kube.create(CONFIG_MAPS, {"metadata": {"name": f"cm-{i}"}}, namespace)
            await asyncio.sleep(0.7)  # spread over several 1-2 s watches
        await until(lambda: len(log.events) == 6)
        assert inf.stats.watches >= 3
        assert inf.stats.lists == 1  # every reconnect resumed; nothing was relisted
        assert log.events == [("add", f"cm-{i}") for i in range(6)]
        server = await kube.list(CONFIG_MAPS, namespace)
        assert sorted(objects.name(o) for o in server.items) == sorted(k.name for k in inf.store)
    finally:
        await stop(task)


async def test_expired_version_relists_and_reports_differences(
    kube: KubeClient, namespace: str, gadgets: Resource
) -> None:
    for name in ("keep", "change", "remove"):
        await kube.create(gadgets, {"metadata": {"name": name}, "spec": {"v": 1}}, namespace)
    inf = Informer(kube, gadgets, namespace, backoff=Backoff(base=0.05, cap=0.1))
    log = Log(inf)
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(inf.wait_synced(), 10)
    await until(lambda: len(log.events) == 3)
    await stop(task)

    # While the informer is away, things change...
    await kube.patch(gadgets, "change", {"spec": {"v": 2}}, namespace)
    await kube.delete(gadgets, "remove", namespace)
    await kube.create(gadgets, {"metadata": {"name": "added"}}, namespace)
    # ...and the version it would resume from is older than the server keeps.
    inf._rv = "1"  # a resourceVersion compacted away long ago (410 on a fresh watch cache)

    log.events.clear()
    task = asyncio.create_task(inf.run())
    try:
        await until(lambda: inf.stats.relists_after_expiry == 1 and len(log.events) == 3)
        assert sorted(log.events) == [("add", "added"), ("delete", "remove"), ("update", "change")]
        assert sorted(k.name for k in inf.store) == ["added", "change", "keep"]
        changed = inf.store.get(ObjectKey(namespace, "change"))
        assert changed is not None and changed["spec"] == {"v": 2}
        # Watching resumed from the fresh list: later changes still arrive.
        await kube.delete(gadgets, "keep", namespace)
        await until(lambda: ("delete", "keep") in log.events)
    finally:
        await stop(task)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class GadgetSecrets:
    """A miniature controller: each Gadget owns a Secret holding its spec.value."""

    def __init__(self, kube: KubeClient, gadgets: Informer, kind: str = "Gadget") -> None:
        self.kube = kube
        self.gadgets = gadgets
        self.kind = kind
        self.reconciles: list[ObjectKey] = []

    async def reconcile(self, key: ObjectKey) -> Result:
        self.reconciles.append(key)
        gadget = self.gadgets.store.get(key)
        if gadget is None:
            return Result()  # the garbage collector removes the Secret
        desired = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": key.name,
                "namespace": key.namespace,
                "labels": owner_labels(self.kind, key.name),
                "ownerReferences": [objects.owner_reference(gadget)],
            },
            "data": {"value": b64(str(gadget["spec"]["value"]))},
        }
        live = await self._live(key)
        if live is None or live.get("data") != desired["data"]:
            await self.kube.apply(SECRETS, desired)
            await self.kube.patch_status(
                GADGETS, key.name, {"status": {"synced": gadget["spec"]["value"]}}, key.namespace
            )
        return Result()

    async def _live(self, key: ObjectKey) -> dict[str, Any] | None:
        try:
            return await self.kube.get(SECRETS, key.name, key.namespace)
        except NotFound:
            return None


async def test_manager_runs_a_controller_that_repairs_drift(
    kube: KubeClient, namespace: str, gadgets: Resource
) -> None:
    gadget_informer = Informer(kube, gadgets, namespace)
    secret_informer = Informer(kube, SECRETS, namespace, label_selector=managed_by_selector())
    reconciler = GadgetSecrets(kube, gadget_informer)
    ctrl = Controller("gadgets", reconciler, workers=2)
    ctrl.watch(gadget_informer, priority_fn=ignore_status_only)
    ctrl.watch_owned(secret_informer, "Gadget", "it.vaultbridge.dev")
    mgr = Manager(grace_period=5)
    mgr.add_informer(gadget_informer)
    mgr.add_informer(secret_informer)
    mgr.add_controller(ctrl)
    run = asyncio.create_task(mgr.run())
    key = ObjectKey(namespace, "g1")

    async def secret_value() -> str | None:
        try:
            s = await kube.get(SECRETS, "g1", namespace)
        except NotFound:
            return None
        return base64.b64decode(s["data"]["value"]).decode()

    async def eventually_value(expected: str) -> None:
        deadline = time.monotonic() + 15
        while await secret_value() != expected:
            assert time.monotonic() < deadline, f"secret never became {expected!r}"
            await asyncio.sleep(0.05)

    try:
        await until(lambda: mgr.ready)
        await kube.create(
            gadgets, {"metadata": {"name": "g1"}, "spec": {"value": "one"}}, namespace
        )
        await eventually_value("one")
        secret = await kube.get(SECRETS, "g1", namespace)
        assert objects.controller_owner(secret)["kind"] == "Gadget"  # type: ignore[index]

        # Spec change -> new value.
        await kube.patch(gadgets, "g1", {"spec": {"value": "two"}}, namespace)
        await eventually_value("two")

        # Hand edit of the owned Secret (drift) -> repaired.
        await kube.patch(SECRETS, "g1", {"data": {"value": b64("tampered")}}, namespace)
        await eventually_value("two")

        # Owned Secret deleted -> recreated.
        await kube.delete(SECRETS, "g1", namespace)
        await eventually_value("two")

        # Steady state: no more reconciles, no more writes.
        await asyncio.sleep(1.0)
        settled = len(reconciler.reconciles)
        writes = sum(
            n
            for (verb, _), n in kube.request_counts.items()
            if verb != "get" and verb not in ("list", "watch")
        )
        await asyncio.sleep(1.5)
        assert len(reconciler.reconciles) == settled
        assert (
            sum(
                n
                for (verb, _), n in kube.request_counts.items()
                if verb != "get" and verb not in ("list", "watch")
            )
            == writes
        )
        assert set(reconciler.reconciles) == {key}
    finally:
        mgr.stop()
        await asyncio.wait_for(run, 10)
