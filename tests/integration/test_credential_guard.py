"""Issue #19 against the real API server and OpenBao: a tenant who may only write vaultbridge
objects cannot make the operator hand a privileged ServiceAccount's token to a server of their
choice, for an audience the API server accepts.

An aiohttp server on 127.0.0.1 stands in for the attacker's "Vault": it records every request
it gets. The operator here is our own process (objects labelled for it only), started with the
admission webhook and with --allowed-token-audiences naming the API server's own audience on
purpose: the guard must refuse that audience whatever the flag says.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from vaultbridge.devenv import processes
from vaultbridge.devenv.certs import cert_paths
from vaultbridge.devenv.environment import SA_ISSUER, DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.guard.webhook_config import webhook_manifest

from .operator_harness import (
    OPERATOR_NAMESPACE,
    TEST_OPERATOR_LABEL,
    OperatorProcess,
    crd_path,
    dump,
    ensure_operator_namespace,
    start_operator,
)
from .test_static_secret import App, wait_for

pytestmark = pytest.mark.integration

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
TOKEN_REQUESTS = "vaultbridge_kube_requests_total"


@dataclass
class Attacker:
    """An HTTP server that answers like a failing Vault and keeps what it was sent."""

    port: int = field(default_factory=processes.free_port)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logins(self) -> list[dict[str, Any]]:
        return [body for _m, path, body in self.requests if "/login" in path]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        self.requests.append((request.method, request.path, body if isinstance(body, dict) else {}))
        return web.json_response({"errors": ["permission denied"]}, status=403)

    def start(self) -> None:
        ready = threading.Event()
        runner_box: list[web.AppRunner] = []

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            runner_box.append(runner)
            ready.set()

        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.run_until_complete(runner_box[0].cleanup())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "attacker server did not start"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@dataclass
class Scene:
    app: App
    op: OperatorProcess
    label: dict[str, str]
    reachable: Attacker
    """An attacker address that is on the allow-list (a misconfiguration, or a compromised
    server): the audience guard alone must keep the token useless."""
    outside: Attacker
    """An attacker address outside the allow-list: must never be contacted."""
    webhook_config: str

    def create(self, plural: str, body: dict[str, Any], namespace: str | None = None) -> None:
        body["metadata"].setdefault("labels", {}).update(self.label)
        self.app.create(plural, body, namespace)

    def connection(self, name: str, address: str, namespace: str | None = None) -> None:
        self.create(
            "vaultconnections",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultConnection",
                "metadata": {"name": name},
                "spec": {"address": address, "timeout": "5s"},
            },
            namespace,
        )

    def auth(self, name: str, connection: str, service_account: str, **kubernetes: Any) -> None:
        self.create(
            "vaultauths",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultAuth",
                "metadata": {"name": name},
                "spec": {
                    "vaultConnectionRef": connection,
                    "method": "kubernetes",
                    "kubernetes": {
                        "role": self.app.vault.role,
                        "serviceAccount": service_account,
                        **kubernetes,
                    },
                },
            },
        )

    def vss(self, name: str, auth: str) -> None:
        self.create(
            "vaultstaticsecrets",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultStaticSecret",
                "metadata": {"name": name},
                "spec": {
                    "vaultAuthRef": auth,
                    "mount": "secret",
                    "type": "kv-v2",
                    "path": f"{self.app.ns}/loot",
                    "destination": {"name": name, "create": True},
                },
            },
        )

    def token_requests(self) -> float:
        return self.op.metric(TOKEN_REQUESTS, verb="create", resource="serviceaccounts/token")


@pytest.fixture
def scene(
    devenv: DevState, kube_admin: KubeAdmin, namespace: str, crds_installed: None
) -> Iterator[Scene]:
    ensure_operator_namespace(kube_admin, devenv)
    reachable, outside = Attacker(), Attacker()
    reachable.start()
    outside.start()
    app = App(devenv, kube_admin, namespace)
    app.vault.allow_role([f"secret/data/{namespace}/*"])
    app.vault.kv_put(f"{namespace}/loot", {"k": "v"})
    label = {TEST_OPERATOR_LABEL: f"guard-{secrets.token_hex(3)}"}
    # A VaultConnection stored before the allow-list existed (no webhook yet): every reconcile
    # must still refuse it.
    scene = Scene(app, None, label, reachable, outside, "")  # type: ignore[arg-type]
    scene.connection("stored-outside", outside.address)

    port = processes.free_port()
    config = f"vb-sec-{namespace}"
    manifest = webhook_manifest(
        config,
        url=f"https://127.0.0.1:{port}/validate",
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    )
    status, resp = kube_admin.request("POST", WEBHOOKS, manifest)
    assert status == 201, dump(resp)
    op = start_operator(
        devenv,
        "--resource-selector", f"{TEST_OPERATOR_LABEL}={label[TEST_OPERATOR_LABEL]}",
        "--allowed-vault-addresses", f"{devenv.vault_addr},{reachable.address}",
        # The API server's own audience on the list by mistake: refused all the same.
        "--allowed-token-audiences", f"vault,{SA_ISSUER}",
        "--webhook-bind-address", f"127.0.0.1:{port}",
        "--webhook-config-name", config,
        "--webhook-ca-secret", f"vb-sec-ca-{namespace}",
        "--webhook-hosts", "127.0.0.1",
    )  # fmt: skip
    scene.op = op
    scene.webhook_config = config
    try:
        yield scene
    finally:
        rc = op.stop()
        reachable.stop()
        outside.stop()
        kube_admin.request("DELETE", f"{WEBHOOKS}/{config}")
        kube_admin.request(
            "DELETE", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/vb-sec-ca-{namespace}"
        )
        assert rc == 0, op.log_tail()
        # No token value in the operator's log, whatever happened.
        for body in reachable.logins():
            assert str(body.get("jwt")) not in op.log_text()


def _api_context(devenv: DevState) -> ssl.SSLContext:
    """Trust the dev CA without presenting the admin's client certificate: the bearer token
    alone must identify the caller."""
    return ssl.create_default_context(cafile=str(cert_paths(Path(devenv.pki_dir)).ca_cert))


def _can_i_everything(devenv: DevState, token: str) -> tuple[int, dict[str, Any]]:
    """`kubectl auth can-i '*' '*' --all-namespaces` as `token`: a SelfSubjectAccessReview."""
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "*", "resource": "*", "group": "*"}},
    }
    req = urllib.request.Request(
        devenv.api_url + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, context=_api_context(devenv), timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def deployer(kube_admin: KubeAdmin, namespace: str) -> Iterator[str]:
    """A CI deployer ServiceAccount bound to cluster-admin, not opted in to Vault logins."""
    status, resp = kube_admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}},
    )
    assert status == 201, dump(resp)
    binding = f"{namespace}-deployer-admin"
    status, resp = kube_admin.request(
        "POST",
        BINDINGS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
        },
    )
    assert status == 201, dump(resp)
    yield "deployer"
    kube_admin.request("DELETE", f"{BINDINGS}/{binding}")


def test_the_tenant_cannot_get_a_token_the_api_server_accepts(
    scene: Scene, deployer: str, devenv: DevState, kube_admin: KubeAdmin
) -> None:
    app = scene.app
    ns = app.ns
    # What the attack would be worth: a token of `deployer` for the API server's audience can
    # do everything (the admin mints one here, the operator must never).
    _, minted = kube_admin.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{deployer}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    status, review = _can_i_everything(devenv, minted["status"]["token"])
    assert status == 201 and review["status"]["allowed"] is True, dump(review)

    scene.connection("evil", scene.reachable.address)

    # 1. `deployer` has not opted in: no TokenRequest at all.
    scene.auth("steal-1", "evil", deployer, audiences=[SA_ISSUER])
    scene.vss("loot-1", "steal-1")
    cond = app.wait_condition(
        "steal-1", "Ready", "False", "ServiceAccountNotAllowed", timeout=60, plural="vaultauths"
    )
    assert "vaultbridge.dev/vault-login" in cond["message"], cond
    app.wait_condition("loot-1", "SecretSynced", "False", "ServiceAccountNotAllowed", timeout=60)
    assert scene.token_requests() == 0
    assert scene.reachable.logins() == []

    # 2. The platform team opts `deployer` in (it has a legitimate Vault use), but the API
    # server's audience is refused before any TokenRequest, although the flag lists it.
    kube_admin.opt_in_vault_login(ns, deployer)
    scene.auth("steal-2", "evil", deployer, audiences=[SA_ISSUER])
    scene.vss("loot-2", "steal-2")
    cond = app.wait_condition(
        "steal-2", "Ready", "False", "AudienceNotAllowed", timeout=60, plural="vaultauths"
    )
    assert SA_ISSUER in cond["message"] and "API server" in cond["message"], cond
    app.wait_condition("loot-2", "SecretSynced", "False", "AudienceNotAllowed", timeout=60)
    event = app.wait_event("steal-2", "AudienceNotAllowed")
    assert event["type"] == "Warning"
    # An empty list would mean the API server's default audience: refused too.
    scene.auth("steal-3", "evil", deployer, audiences=[])
    cond = app.wait_condition(
        "steal-3", "Ready", "False", "AudienceNotAllowed", timeout=60, plural="vaultauths"
    )
    assert "no audience" in cond["message"], cond
    # An audience outside --allowed-token-audiences.
    scene.auth("steal-4", "evil", deployer, audiences=["kubernetes"])
    cond = app.wait_condition(
        "steal-4", "Ready", "False", "AudienceNotAllowed", timeout=60, plural="vaultauths"
    )
    assert "kubernetes not allowed" in cond["message"], cond
    assert scene.token_requests() == 0
    assert scene.reachable.logins() == []

    # 3. The Vault audience: a token is minted and (the address being on the list) sent, but
    # the real API server does not accept it.
    scene.auth("steal-5", "evil", deployer)  # audiences default to [vault]
    app.wait_condition(
        "steal-5", "Ready", "False", "VaultLoginFailed", timeout=60, plural="vaultauths"
    )
    logins = wait_for(scene.reachable.logins, 30, "a login at the attacker's server")
    jwt = str(logins[0]["jwt"])
    status, review = _can_i_everything(devenv, jwt)
    assert status == 401, dump(review)
    assert scene.token_requests() >= 1


def test_a_connection_outside_the_allow_list_is_refused_and_never_contacted(
    scene: Scene, kube_admin: KubeAdmin, devenv: DevState
) -> None:
    app = scene.app
    # Stored before the list existed: the reconciles refuse it, for the connection itself and
    # for every VaultAuth using it (whose ServiceAccount did opt in).
    cond = app.wait_condition(
        "stored-outside",
        "Ready",
        "False",
        "VaultAddressNotAllowed",
        timeout=60,
        plural="vaultconnections",
    )
    assert scene.outside.address in cond["message"], cond
    scene.auth("via-outside", "stored-outside", "default")
    scene.vss("outside-1", "via-outside")
    app.wait_condition(
        "via-outside", "Ready", "False", "VaultAddressNotAllowed", timeout=60, plural="vaultauths"
    )
    app.wait_condition("outside-1", "SecretSynced", "False", "VaultAddressNotAllowed", timeout=60)

    # At admission: the API server asks the operator's webhook, which refuses.
    body: dict[str, Any] = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultConnection",
        "metadata": {"name": "new-outside", "namespace": app.ns, "labels": scene.label},
        "spec": {"address": scene.outside.address},
    }
    status, resp = kube_admin.request("POST", crd_path("vaultconnections", app.ns), body)
    assert status == 403, dump(resp)
    assert "not on the operator's list of allowed Vault addresses" in resp["message"]
    body["metadata"]["name"] = "new-inside"
    body["spec"]["address"] = devenv.vault_addr
    status, resp = kube_admin.request("POST", crd_path("vaultconnections", app.ns), body)
    assert status == 201, dump(resp)

    # A connection of another namespace that does not allow this one: refused as well.
    scene.connection("private", devenv.vault_addr, namespace=OPERATOR_NAMESPACE)
    try:
        scene.auth("via-private", f"{OPERATOR_NAMESPACE}/private", "default")
        cond = app.wait_condition(
            "via-private",
            "Ready",
            "False",
            "ConnectionNamespaceNotAllowed",
            timeout=60,
            plural="vaultauths",
        )
        assert app.ns in cond["message"], cond
        # The same VaultAuth over the allowed connection of its own namespace logs in.
        scene.auth("via-inside", "new-inside", "default")
        app.wait_condition(
            "via-inside", "Ready", "True", "LoginSucceeded", timeout=60, plural="vaultauths"
        )
    finally:
        kube_admin.request("DELETE", crd_path("vaultconnections", OPERATOR_NAMESPACE, "private"))
    assert scene.outside.requests == []


def test_destinations_kubernetes_fills_with_tokens_are_refused_at_admission(
    scene: Scene, kube_admin: KubeAdmin
) -> None:
    app = scene.app
    for extra in (
        {"type": "kubernetes.io/service-account-token"},
        {"annotations": {"kubernetes.io/service-account.name": "default"}},
    ):
        body = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultStaticSecret",
            "metadata": {"name": "sa-token", "namespace": app.ns, "labels": scene.label},
            "spec": {
                "vaultAuthRef": "default",
                "mount": "secret",
                "type": "kv-v2",
                "path": f"{app.ns}/loot",
                "destination": {"name": "sa-token", "create": True, **extra},
            },
        }
        status, resp = kube_admin.request("POST", crd_path("vaultstaticsecrets", app.ns), body)
        assert status == 422, dump(resp)
        assert "not allowed" in resp["message"], resp["message"]
    assert app.secret("sa-token") is None
