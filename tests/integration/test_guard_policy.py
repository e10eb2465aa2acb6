"""Path policies on the real API server and OpenBao: enforced in every reconcile (the session
operator) and at admission (our webhook server, run in-process, called by the API server)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from vaultbridge.devenv import processes
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.guard.serve import RunningWebhook, start_webhook
from vaultbridge.guard.source import InformerPolicySource
from vaultbridge.guard.webhook_config import webhook_manifest
from vaultbridge.kube.client import KubeClient

from .helpers import App
from .operator_harness import OPERATOR_NAMESPACE, dump

pytestmark = pytest.mark.integration

POLICIES = "/apis/vaultbridge.dev/v1beta1/vaultpathpolicies"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


@pytest.fixture
def path_policy(kube_admin: KubeAdmin) -> Iterator[Any]:
    """Create / replace cluster-scoped VaultPathPolicies; deletes them after the test."""
    created: list[str] = []

    def put(name: str, spec: dict[str, Any]) -> None:
        body: dict[str, Any] = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultPathPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
        status, existing = kube_admin.request("GET", f"{POLICIES}/{name}")
        if status == 200:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            status, resp = kube_admin.request("PUT", f"{POLICIES}/{name}", body)
            assert status == 200, dump(resp)
        else:
            status, resp = kube_admin.request("POST", POLICIES, body)
            assert status == 201, dump(resp)
            created.append(name)

    yield put
    for name in created:
        kube_admin.request("DELETE", f"{POLICIES}/{name}")


def test_crd_is_cluster_scoped_and_validates(kube_admin: KubeAdmin, crds_installed: None) -> None:
    _, crd = kube_admin.request(
        "GET",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/vaultpathpolicies.vaultbridge.dev",
    )
    assert crd["spec"]["scope"] == "Cluster"
    status, resp = kube_admin.request(
        "POST",
        POLICIES + "?dryRun=All",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultPathPolicy",
            "metadata": {"name": "both-selectors"},
            "spec": {"namespaces": ["a"], "namespaceSelector": {}, "allow": ["x/*"]},
        },
    )
    assert status == 422, dump(resp)
    assert "exactly one of namespaces" in resp["message"]


def test_policy_change_stops_a_running_sync_and_keeps_the_secret(
    app: App, path_policy: Any
) -> None:
    app.vault.kv_put(f"{app.ns}/db", {"password": "v1"})
    app.vss("db", refreshAfter="1s")
    app.wait_data("db", {"password": "v1"})
    name = f"guard-{app.ns}"

    # A policy that does not allow the path: the sync stops, the Secret stays.
    path_policy(name, {"namespaces": [app.ns], "allow": ["secret/data/{namespace}/public/*"]})
    cond = app.wait_condition("db", "SecretSynced", "False", "PathNotAllowed")
    assert f"secret/data/{app.ns}/db" in cond["message"] and name in cond["message"]
    event = app.wait_event("db", "PathNotAllowed")
    assert event["type"] == "Warning"
    app.vault.kv_put(f"{app.ns}/db", {"password": "v2"})
    for _ in range(10):  # several refresh periods: nothing is read or written any more
        data = app.secret_data("db")
        assert data is not None and data["password"] == "v1"
        time.sleep(0.3)
    assert app.condition("vaultstaticsecrets", "db", "Ready")["status"] == "False"  # type: ignore[index]

    # Allowed again, but the path must never be synced: a different reason.
    path_policy(
        name,
        {
            "namespaces": [app.ns],
            "allow": ["secret/data/{namespace}/*"],
            "neverSync": [f"secret/data/{app.ns}/db"],
        },
    )
    cond = app.wait_condition("db", "SecretSynced", "False", "SyncForbidden")
    assert "neverSync" in cond["message"]
    app.wait_event("db", "SyncForbidden")
    assert app.secret_data("db")["password"] == "v1"  # type: ignore[index]

    # Compliant again: syncing resumes with the value written meanwhile.
    path_policy(name, {"namespaces": [app.ns], "allow": ["secret/data/{namespace}/*"]})
    app.wait_data("db", {"password": "v2"})
    app.wait_condition("db", "SecretSynced", "True")


# --- admission ---------------------------------------------------------------------------------


@pytest.fixture
async def webhook(
    devenv: DevState, kube: KubeClient, kube_admin: KubeAdmin, namespace: str
) -> AsyncIterator[tuple[RunningWebhook, str]]:
    """Our webhook server in this process on 127.0.0.1, registered for `namespace` only."""
    port = processes.free_port()
    config = f"vb-guard-{namespace}"
    manifest = webhook_manifest(
        config,
        url=f"https://127.0.0.1:{port}/validate",
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    )
    status, resp = await asyncio.to_thread(kube_admin.request, "POST", WEBHOOKS, manifest)
    assert status == 201, dump(resp)
    source = InformerPolicySource.create(kube)
    tasks = [asyncio.create_task(i.run()) for i in source.informers]
    running: RunningWebhook | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in source.informers)), 30)
        running = await start_webhook(
            kube,
            source,
            bind_address=f"127.0.0.1:{port}",
            namespace=OPERATOR_NAMESPACE,
            ca_secret=f"vb-guard-ca-{namespace}",
            hosts=["127.0.0.1"],
            webhook_config=config,
        )
        yield running, config
    finally:
        if running is not None:
            await running.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(kube_admin.request, "DELETE", f"{WEBHOOKS}/{config}")
        await asyncio.to_thread(
            kube_admin.request,
            "DELETE",
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/vb-guard-ca-{namespace}",
        )


def _vss(name: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": name},
        "spec": {
            "vaultAuthRef": "default",
            "mount": "secret",
            "type": "kv-v2",
            "path": path,
            "destination": {"name": name, "create": True},
        },
    }


async def test_webhook_rejects_a_non_compliant_resource(
    webhook: tuple[RunningWebhook, str],
    kube_admin: KubeAdmin,
    namespace: str,
    path_policy: Any,
    crds_installed: None,
) -> None:
    running, config = webhook
    # The operator made its own CA, kept it in a Secret and put it into the configuration.
    _, stored = await asyncio.to_thread(kube_admin.request, "GET", f"{WEBHOOKS}/{config}")
    bundle = base64.b64decode(stored["webhooks"][0]["clientConfig"]["caBundle"])
    status, ca_secret = await asyncio.to_thread(
        kube_admin.request,
        "GET",
        f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/vb-guard-ca-{namespace}",
    )
    assert status == 200
    assert base64.b64decode(ca_secret["data"]["ca.crt"]) in bundle
    assert stored["webhooks"][0]["failurePolicy"] == "Fail"
    assert stored["webhooks"][0]["timeoutSeconds"] == 5

    # Own readiness, over TLS verified with that CA.
    ctx = ssl.create_default_context(cadata=bundle.decode())

    def readyz() -> int:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{running.port}/readyz", context=ctx, timeout=5
        ) as resp:
            return int(resp.status)

    assert await asyncio.to_thread(readyz) == 200

    name = f"guard-wh-{secrets.token_hex(3)}"
    await asyncio.to_thread(
        path_policy,
        name,
        {
            "namespaces": [namespace],
            "allow": ["secret/data/{namespace}/*"],
            "neverSync": [f"secret/data/{namespace}/signing-keys/*"],
        },
    )
    path = f"/apis/vaultbridge.dev/v1beta1/namespaces/{namespace}/vaultstaticsecrets"

    async def create(obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return await asyncio.to_thread(kube_admin.request, "POST", path, obj)

    # The API server picks the configuration up, and our informer the policy, within moments.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status, resp = await create(_vss("outside", "team-b/db"))
        if status == 403 or asyncio.get_running_loop().time() > deadline:
            break
        if status == 201:
            await asyncio.to_thread(kube_admin.request, "DELETE", f"{path}/outside")
        await asyncio.sleep(0.3)
    assert status == 403, dump(resp)
    message = resp["message"]
    assert "secret/data/team-b/db" in message and name in message
    assert "vaultpaths.vaultbridge.dev" in message  # the API server names the webhook

    status, resp = await create(_vss("signing", f"{namespace}/signing-keys/jwt"))
    assert status == 403 and "neverSync" in resp["message"], dump(resp)

    status, resp = await create(_vss("inside", f"{namespace}/db"))
    assert status == 201, dump(resp)
    # An update that names a forbidden path is refused too.
    status, resp = await asyncio.to_thread(
        kube_admin.request_patch,  # type: ignore[attr-defined]
        f"{path}/inside",
        {"spec": {"path": "elsewhere/db"}},
    )
    assert status == 403, dump(resp)


async def test_serving_ca_is_shared_by_replicas_and_rotated_before_it_expires(
    kube: KubeClient,
    kube_admin: KubeAdmin,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from vaultbridge.guard import certs

    config = f"vb-guard-rot-{namespace}"
    ca_secret = f"vb-guard-rot-{namespace}"
    manifest = webhook_manifest(
        config,
        url="https://127.0.0.1:9/validate",
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    )
    status, resp = await asyncio.to_thread(kube_admin.request, "POST", WEBHOOKS, manifest)
    assert status == 201, dump(resp)

    def manager(directory: str) -> certs.CertManager:
        return certs.CertManager(
            kube,
            namespace=OPERATOR_NAMESPACE,
            ca_secret=ca_secret,
            hosts=["127.0.0.1"],
            cert_dir=str(tmp_path / directory),
            webhook_config=config,
        )

    async def bundle() -> bytes:
        _, stored = await asyncio.to_thread(kube_admin.request, "GET", f"{WEBHOOKS}/{config}")
        return base64.b64decode(stored["webhooks"][0]["clientConfig"]["caBundle"])

    try:
        # A CA that is already inside its renewal window (30 days left < 90).
        monkeypatch.setattr(certs, "CA_VALIDITY", certs.dt.timedelta(days=30))
        first = manager("a")
        await first.ensure()
        monkeypatch.undo()
        assert first.ca is not None and await bundle() == first.ca.bundle_pem
        old_ca = first.ca.cert_pem

        # The next check (this replica or another) rotates it; the old CA stays trusted.
        second = manager("b")
        await second.ensure()
        assert second.ca is not None and second.ca.cert_pem != old_ca
        assert await bundle() == second.ca.cert_pem + old_ca
        assert (tmp_path / "b" / "tls.crt").exists()

        # A further replica finds a healthy CA and uses it as is.
        third = manager("c")
        await third.ensure()
        assert third.ca is not None and third.ca.cert_pem == second.ca.cert_pem
        assert await bundle() == second.ca.bundle_pem
    finally:
        await asyncio.to_thread(kube_admin.request, "DELETE", f"{WEBHOOKS}/{config}")
        await asyncio.to_thread(
            kube_admin.request,
            "DELETE",
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{ca_secret}",
        )
