"""KubeClient against the real kube-apiserver of the dev environment."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient, WatchEvent
from vaultbridge.kube.config import KubeConfig, StaticToken
from vaultbridge.kube.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ResourceExpired,
    Unauthorized,
)
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import (
    CONFIG_MAPS,
    EVENTS,
    SECRETS,
    Resource,
)

from .scratch_crd import GROUP, scratch_crd

# kube_only: the API server alone, never Vault (tests/vault_facing.py)
pytestmark = [pytest.mark.integration, pytest.mark.kube_only]

WIDGETS = Resource(GROUP, "v1", "widgets", "Widget")


@pytest.fixture(scope="module")
async def widgets(kube: KubeClient) -> AsyncIterator[Resource]:
    """A throw-away CRD: its watch cache starts now, so old versions really are gone."""
    async with scratch_crd(kube, WIDGETS) as resource:
        yield resource


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_version(kube: KubeClient) -> None:
    info = await kube.version()
    assert info["gitVersion"].startswith("v1.")


async def test_secret_crud(kube: KubeClient, namespace: str) -> None:
    before = kube.request_counts.copy()
    created = await kube.create(
        SECRETS,
        {"metadata": {"name": "db"}, "type": "Opaque", "data": {"password": b64("pw1")}},
        namespace,
    )
    assert created["metadata"]["uid"] and created["kind"] == "Secret"
    got = await kube.get(SECRETS, "db", namespace)
    assert got["data"] == {"password": b64("pw1")}

    patched = await kube.patch(SECRETS, "db", {"metadata": {"labels": {"tier": "db"}}}, namespace)
    assert patched["metadata"]["labels"] == {"tier": "db"}
    patched = await kube.patch(
        SECRETS,
        "db",
        [{"op": "replace", "path": "/data/password", "value": b64("pw2")}],
        namespace,
        patch_type="json",
    )
    assert patched["data"]["password"] == b64("pw2")

    patched["data"]["user"] = b64("admin")
    replaced = await kube.replace(SECRETS, patched)
    assert replaced["data"] == {"password": b64("pw2"), "user": b64("admin")}

    await kube.delete(SECRETS, "db", namespace, preconditions_uid=created["metadata"]["uid"])
    with pytest.raises(NotFound):
        await kube.get(SECRETS, "db", namespace)

    counts = kube.request_counts - before
    assert counts[("create", "secrets")] == 1
    assert counts[("get", "secrets")] == 2
    assert counts[("patch", "secrets")] == 2
    assert counts[("update", "secrets")] == 1
    assert counts[("delete", "secrets")] == 1


async def test_typed_errors(kube: KubeClient, namespace: str) -> None:
    with pytest.raises(NotFound) as missing:
        await kube.get(SECRETS, "absent", namespace)
    assert missing.value.reason == "NotFound" and missing.value.details["name"] == "absent"

    secret = {"metadata": {"name": "s"}, "data": {"k": b64("v")}}
    first = await kube.create(SECRETS, secret, namespace)
    with pytest.raises(Conflict) as exists:
        await kube.create(SECRETS, secret, namespace)
    assert exists.value.reason == "AlreadyExists"

    await kube.patch(SECRETS, "s", {"metadata": {"labels": {"x": "1"}}}, namespace)
    with pytest.raises(Conflict):  # optimistic concurrency: stale resourceVersion
        await kube.replace(SECRETS, first)
    with pytest.raises(Conflict):
        await kube.delete(SECRETS, "s", namespace, preconditions_uid="not-the-uid")

    with pytest.raises(Invalid) as invalid:
        await kube.create(SECRETS, {"metadata": {"name": "Bad_Name"}}, namespace)
    assert invalid.value.status == 422 and invalid.value.reason == "Invalid"

    # An invalid Secret: the message names the problem, never the value we sent.
    value = b64("correct horse battery staple")
    with pytest.raises(Invalid) as bad_key:
        await kube.create(
            SECRETS, {"metadata": {"name": "bad-key"}, "data": {"bad key!": value}}, namespace
        )
    assert "bad key!" in str(bad_key.value)
    assert value not in str(bad_key.value) and "horse" not in str(bad_key.value)

    with pytest.raises(NotFound):  # resource type that does not exist
        await kube.list(Resource("nope.example.com", "v1", "things", "Thing"), namespace)


def ca_only_context(kubeconfig: str) -> ssl.SSLContext:
    """Trust the dev CA without presenting the admin client certificate."""
    with open(kubeconfig) as fh:
        cluster = yaml.safe_load(fh)["clusters"][0]["cluster"]
    return ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )


async def test_service_account_token_identity(
    kube: KubeClient, namespace: str, devenv: Any
) -> None:
    token = await kube.create_token(namespace, "default", ["vault"], 600)
    _header, payload, _signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == ["vault"]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    assert claims["exp"] - claims["iat"] == 600

    tls = ca_only_context(devenv.kubeconfig)
    # A token minted for Vault's audience is useless against the API server itself...
    for_vault = KubeConfig(kube.config.server, ssl_context=tls, token=StaticToken(token))
    async with await KubeClient.create(for_vault) as as_vault:
        with pytest.raises(Unauthorized):
            await as_vault.version()
    # ...one with the API server's default audience identifies the service account,
    # which RBAC allows nothing.
    api_token = await kube.create_token(namespace, "default", None, 600)
    as_api = KubeConfig(kube.config.server, ssl_context=tls, token=StaticToken(api_token))
    async with await KubeClient.create(as_api) as as_sa:
        assert (await as_sa.version())["gitVersion"]
        with pytest.raises(Forbidden) as denied:
            await as_sa.list(SECRETS, namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:default" in denied.value.message
    bogus = KubeConfig(kube.config.server, ssl_context=tls, token=StaticToken("not-a-token"))
    async with await KubeClient.create(bogus) as anon:
        with pytest.raises(Unauthorized):
            await anon.list(SECRETS, namespace)


async def test_server_side_apply_is_idempotent(kube: KubeClient, namespace: str) -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dest", "namespace": namespace, "labels": {"a": "1"}},
        "data": {"token": b64("t1")},
    }
    first = await kube.apply(SECRETS, desired)
    second = await kube.apply(SECRETS, desired)
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {(m["manager"], m["operation"]) for m in first["metadata"]["managedFields"]}
    assert ("vaultbridge", "Apply") in managers

    changed = {**desired, "data": {"token": b64("t2")}}
    third = await kube.apply(SECRETS, changed, namespace=namespace, name="dest")
    assert third["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert third["data"] == {"token": b64("t2")}

    # Another manager that does not force cannot take our field.
    with pytest.raises(Conflict):
        await kube.apply(SECRETS, desired, field_manager="someone-else", force=False)


async def test_list_follows_continue_pages(kube: KubeClient, namespace: str) -> None:
    for i in range(5):
        await kube.create(
            CONFIG_MAPS, {"metadata": {"name": f"cm-{i}", "labels": {"set": "paging"}}}, namespace
        )
    await kube.create(CONFIG_MAPS, {"metadata": {"name": "other"}}, namespace)
    before = kube.request_counts[("list", "configmaps")]
    result = await kube.list(CONFIG_MAPS, namespace, label_selector="set=paging", limit=2)
    assert kube.request_counts[("list", "configmaps")] - before == 3
    assert sorted(objects.name(i) for i in result.items) == [f"cm-{i}" for i in range(5)]
    assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in result.items)
    assert int(result.resource_version) > 0
    unpaged = await kube.list(CONFIG_MAPS, namespace, field_selector="metadata.name=other")
    assert [objects.name(i) for i in unpaged.items] == ["other"]


async def collect(
    kube: KubeClient, res: Resource, namespace: str, rv: str, timeout: int, into: list[WatchEvent]
) -> None:
    async for event in kube.watch(res, namespace, resource_version=rv, timeout_seconds=timeout):
        into.append(event)


async def test_watch_events_and_bookmark(kube: KubeClient, namespace: str) -> None:
    start = await kube.list(CONFIG_MAPS, namespace)
    events: list[WatchEvent] = []
    watcher = asyncio.create_task(
        collect(kube, CONFIG_MAPS, namespace, start.resource_version, 4, events)
    )
    await kube.create(CONFIG_MAPS, {"metadata": {"name": "w"}, "data": {"k": "1"}}, namespace)
    await kube.patch(CONFIG_MAPS, "w", {"data": {"k": "2"}}, namespace)
    await kube.delete(CONFIG_MAPS, "w", namespace)
    # A change elsewhere moves the configmaps watch cache past our last event, so the
    # bookmark the server sends before the watch times out carries a newer version.
    await kube.create(CONFIG_MAPS, {"metadata": {"generateName": "bm-"}}, "default")
    await asyncio.wait_for(watcher, 15)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1].object["data"] == {"k": "2"}
    bookmarks = [e for e in events if e.type == "BOOKMARK"]
    assert bookmarks, f"no bookmark in {kinds}"
    assert int(objects.resource_version(bookmarks[-1].object)) > int(
        objects.resource_version(events[2].object)
    )
    for cm in (await kube.list(CONFIG_MAPS, "default")).items:
        if objects.name(cm).startswith("bm-"):
            await kube.delete(CONFIG_MAPS, objects.name(cm), "default")


async def test_watch_resumes_after_client_drops_connection(
    kube: KubeClient, namespace: str
) -> None:
    start = await kube.list(CONFIG_MAPS, namespace)
    stream = kube.watch(CONFIG_MAPS, namespace, resource_version=start.resource_version)
    async with contextlib.aclosing(stream):
        await kube.create(CONFIG_MAPS, {"metadata": {"name": "one"}}, namespace)
        first = await anext(stream)
    assert (first.type, objects.name(first.object)) == ("ADDED", "one")
    last_seen = objects.resource_version(first.object)

    # While nobody watches:
    await kube.create(CONFIG_MAPS, {"metadata": {"name": "two"}}, namespace)
    await kube.patch(CONFIG_MAPS, "one", {"data": {"x": "y"}}, namespace)

    resumed: list[tuple[str, str]] = []
    stream = kube.watch(CONFIG_MAPS, namespace, resource_version=last_seen, timeout_seconds=30)
    async with contextlib.aclosing(stream):
        async for event in stream:
            resumed.append((event.type, objects.name(event.object)))
            if len(resumed) == 2:
                break
    assert resumed == [("ADDED", "two"), ("MODIFIED", "one")]


async def test_watch_from_expired_version_raises_resource_expired(
    kube: KubeClient, namespace: str, widgets: Resource
) -> None:
    with pytest.raises(ResourceExpired) as gone:
        async for _ in kube.watch(widgets, namespace, resource_version="1", timeout_seconds=5):
            pass
    assert gone.value.status == 410


async def test_status_subresource(kube: KubeClient, namespace: str, widgets: Resource) -> None:
    w = await kube.create(widgets, {"metadata": {"name": "w"}, "spec": {"size": 1}}, namespace)
    assert w["metadata"]["generation"] == 1
    patched = await kube.patch_status(widgets, "w", {"status": {"ready": True}}, namespace)
    assert patched["status"] == {"ready": True}
    assert patched["metadata"]["generation"] == 1  # status writes do not bump generation
    # The status endpoint ignores spec changes.
    patched["spec"] = {"size": 99}
    patched["status"] = {"ready": False}
    replaced = await kube.replace_status(widgets, patched)
    assert replaced["status"] == {"ready": False} and replaced["spec"] == {"size": 1}
    with pytest.raises(Conflict):
        await kube.replace_status(widgets, patched)  # stale resourceVersion now


async def test_large_secret_travels_through_watch(kube: KubeClient, namespace: str) -> None:
    start = await kube.list(SECRETS, namespace)
    blob = base64.b64encode(bytes(range(256)) * 3000).decode()  # ~1 MiB encoded
    stream = kube.watch(SECRETS, namespace, resource_version=start.resource_version)
    async with contextlib.aclosing(stream):
        await kube.create(SECRETS, {"metadata": {"name": "big"}, "data": {"blob": blob}}, namespace)
        event = await asyncio.wait_for(anext(stream), 10)
    assert event.type == "ADDED" and event.object["data"]["blob"] == blob


async def events_about(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    result = await kube.list(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return result.items


async def test_events_are_aggregated_and_rate_limited(kube: KubeClient, namespace: str) -> None:
    target = await kube.create(CONFIG_MAPS, {"metadata": {"name": "target"}}, namespace)
    recorder = EventRecorder(kube, burst=4)  # API writes per object, patches included
    for _ in range(3):
        recorder.emit(target, "Warning", "VaultUnreachable", "connection refused")
        await recorder.flush()
    recorder.emit(target, "Normal", "SecretSynced", "secret synced")
    await recorder.flush()
    found = await events_about(kube, namespace, "target")
    by_reason = {e["reason"]: e for e in found}
    assert len(found) == 2
    warn = by_reason["VaultUnreachable"]
    assert warn["count"] == 3 and warn["type"] == "Warning"
    assert warn["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "target",
        "namespace": namespace,
        "uid": target["metadata"]["uid"],
    }
    assert warn["source"] == {"component": "vaultbridge"}
    assert by_reason["SecretSynced"]["count"] == 1

    # The bucket (4 writes) is spent: further events about this object are suppressed.
    recorder.emit(target, "Normal", "Other", "x")
    await recorder.flush()
    assert recorder.suppressed == 1
    assert len(await events_about(kube, namespace, "target")) == 2

    # Bursts of the same event while a write is in flight collapse into one count.
    burst = EventRecorder(kube)
    for _ in range(20):
        burst.emit(target, "Warning", "Flapping", "again")
    await burst.flush()
    flapping = [
        e for e in await events_about(kube, namespace, "target") if e["reason"] == "Flapping"
    ]
    assert len(flapping) == 1 and flapping[0]["count"] == 20
    await burst.close()
    await recorder.close()
    burst.emit(target, "Warning", "AfterClose", "ignored")  # never raises
    assert burst.suppressed == 0


async def test_emit_never_raises(kube: KubeClient, namespace: str) -> None:
    recorder = EventRecorder(kube)
    recorder.emit({"kind": "Secret"}, "Normal", "NoName", "object without a name")
    recorder.emit(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "x", "namespace": "does-not-exist-ns"},
        },
        "Normal",
        "R",
        "m",
    )
    await recorder.flush()  # the failed write was logged, not raised
    await recorder.close()
