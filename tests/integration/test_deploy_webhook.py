"""The path-policy admission webhook as the chart registers it.

Rendering: the Service, the ValidatingWebhookConfiguration and the operator's flags agree with
each other and with the code (`guard.webhook_config.webhook_manifest`). End to end: the chart's
objects applied, the operator running as the chart's ServiceAccount serves the webhook on
loopback (URL mode: no kubelet, so no pods behind a Service), and the API server itself calls
it and refuses a non-compliant secret resource naming the policy.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from vaultbridge.api.common import GROUP, VERSION
from vaultbridge.guard.webhook_config import (
    FAILURE_POLICY,
    INJECT_FAILURE_POLICY,
    TIMEOUT_SECONDS,
    WEBHOOK_NAME,
    mutating_manifest,
    webhook_manifest,
)
from vaultbridge.settings import Settings

from .deploy_support import CHART, Obj, Release, Workload, ca_bundle, log_mentions, render_chart
from .helpers import wait_for
from .operator_harness import crd_path, dump

pytestmark = pytest.mark.integration

NAMESPACE = "vaultbridge-system"
POLICIES = f"/apis/{GROUP}/{VERSION}/vaultpathpolicies"


def _one(objs: list[Obj], kind: str, suffix: str = "") -> Obj:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


def _args(objs: list[Obj]) -> dict[str, str]:
    (container,) = _one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(a.partition("=")[::2] for a in container["args"] if a.startswith("--"))


def test_chart_registers_the_webhook_the_operator_serves(helm_bin: str) -> None:
    objs = render_chart(helm_bin, "vaultbridge", NAMESPACE, {})
    args = _args(objs)
    deploy = _one(objs, "Deployment")
    pod = deploy["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["webhook"] == 9443
    assert args["--webhook-bind-address"] == ":9443"
    assert args["--path-policy-default"] == "allow-all"

    # The Service reaches every operator pod on the webhook port.
    service = _one(objs, "Service", "-webhook")
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert set(service["spec"]["selector"].items()) <= set(pod["metadata"]["labels"].items())
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "webhook"

    # The serving certificate names the Service, so the API server's TLS check passes.
    svc = service["metadata"]["name"]
    assert args["--webhook-hosts"].split(",") == [
        f"{svc}.{NAMESPACE}.svc",
        f"{svc}.{NAMESPACE}.svc.cluster.local",
    ]

    # The configuration is the one the operator patches, and exactly what the code recommends
    # (minus caBundle, which only the operator sets).
    config = _one(objs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["name"] == args["--webhook-config-name"]
    expected = webhook_manifest(
        args["--webhook-config-name"], service=(NAMESPACE, svc, port["port"])
    )
    assert config["webhooks"] == expected["webhooks"]
    webhook, connections = config["webhooks"]
    assert connections["rules"][0]["resources"] == ["vaultconnections"]
    assert webhook["name"] == WEBHOOK_NAME
    assert "caBundle" not in webhook["clientConfig"]
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"][0]["operations"] == ["CREATE", "UPDATE"]

    # RBAC: that one configuration only; the CA Secret is in the release namespace.
    (rule,) = [
        r
        for r in _one(objs, "ClusterRole")["rules"]
        if r["resources"] == ["validatingwebhookconfigurations"]
    ]
    assert rule["resourceNames"] == [args["--webhook-config-name"]]
    assert rule["verbs"] == ["get", "patch"]
    assert args["--webhook-ca-secret"] == "vaultbridge-webhook-ca"


def test_chart_registers_the_inject_webhook_the_operator_serves(
    helm_bin: str,
) -> None:
    """Inject mode: the chart's MutatingWebhookConfiguration is exactly the code's (Fail, pods
    labelled vaultbridge.dev/inject only, never kube-system nor the operator's namespace), the
    operator keeps its caBundle (RBAC on that one name) and injects its own image."""
    objs = render_chart(helm_bin, "vaultbridge", NAMESPACE, {})
    args = _args(objs)
    config = _one(objs, "MutatingWebhookConfiguration")
    assert config["metadata"]["name"] == args["--mutating-webhook-config-name"]
    svc = _one(objs, "Service", "-webhook")["metadata"]["name"]
    expected = mutating_manifest(
        config["metadata"]["name"], service=(NAMESPACE, svc, 443), operator_namespace=NAMESPACE
    )
    assert config["webhooks"] == expected["webhooks"]
    assert config["webhooks"][0]["failurePolicy"] == INJECT_FAILURE_POLICY == "Fail"
    (rule,) = [
        r
        for r in _one(objs, "ClusterRole")["rules"]
        if r["resources"] == ["mutatingwebhookconfigurations"]
    ]
    assert rule["resourceNames"] == [config["metadata"]["name"]]
    (container,) = _one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert args["--agent-image"] == container["image"]

    off = render_chart(helm_bin, "r", "ns", {"inject": {"enabled": False}})
    assert "MutatingWebhookConfiguration" not in {o["kind"] for o in off}
    assert _args(off)["--mutating-webhook-config-name"] == ""


def test_webhook_defaults_are_the_operators() -> None:
    """The chart's defaults are the code's: fail closed, the same timeout and policy default."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["webhook"]["failurePolicy"] == FAILURE_POLICY
    assert values["webhook"]["timeoutSeconds"] == TIMEOUT_SECONDS
    assert values["pathPolicy"]["default"] == Settings().path_policy_default
    assert values["webhook"]["enabled"] is True


def test_webhook_values_render(helm_bin: str) -> None:
    objs = render_chart(
        helm_bin,
        "r",
        "ns",
        {
            "webhook": {
                "url": "https://10.0.0.1:9443/validate",
                "failurePolicy": "Ignore",
                "timeoutSeconds": 12,
                "port": 10250,
                "namespaceSelector": {"matchLabels": {"team": "a"}},
            },
            "pathPolicy": {"default": "deny"},
        },
    )
    args = _args(objs)
    assert args["--path-policy-default"] == "deny"
    assert args["--webhook-bind-address"] == ":10250"
    webhook, connections = _one(objs, "ValidatingWebhookConfiguration")["webhooks"]
    assert connections["namespaceSelector"] == webhook["namespaceSelector"]
    assert webhook["clientConfig"] == {"url": "https://10.0.0.1:9443/validate"}
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 12
    assert webhook["namespaceSelector"] == {"matchLabels": {"team": "a"}}
    # URL mode: nothing to select pods for.
    assert not [
        o
        for o in objs
        if o["kind"] == "Service" and o["metadata"]["name"] == "r-vaultbridge-webhook"
    ]

    off = render_chart(helm_bin, "r", "ns", {"webhook": {"enabled": False}})
    assert "ValidatingWebhookConfiguration" not in {o["kind"] for o in off}
    assert not [a for a in _args(off) if a.startswith("--webhook-")]
    assert "webhook" not in {
        p["name"]
        for p in _one(off, "Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert not [
        r
        for r in _one(off, "ClusterRole")["rules"]
        if r["resources"] == ["validatingwebhookconfigurations"]
    ]


@pytest.fixture
def path_policy(release: Release) -> Iterator[Any]:
    created: list[str] = []

    def create(spec: Obj) -> str:
        name = f"vb-{release.ident}-{secrets.token_hex(2)}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VaultPathPolicy",
            "metadata": {"name": name, "labels": dict(release.selector_label)},
            "spec": spec,
        }
        status, resp = release.admin.request("POST", POLICIES, body)
        assert status == 201, dump(resp)
        created.append(name)
        return name

    yield create
    for name in created:
        release.admin.request("DELETE", f"{POLICIES}/{name}")


def test_api_server_calls_the_chart_registered_webhook(
    release: Release,
    path_policy: Any,
) -> None:
    release.install(webhook=release.webhook_values())
    app = Workload(release)
    app.allow()
    op = release.operator(webhook=True)
    op.start()

    # The operator made its CA (a Secret in its namespace) and patched it into the chart's
    # configuration, as its own ServiceAccount.
    config = release.find("ValidatingWebhookConfiguration")
    wait_for(lambda: ca_bundle(release.admin, config), 30, "caBundle patched by the operator")
    ca_secret = app.secret(_args(release.objects)["--webhook-ca-secret"])
    assert ca_secret is not None
    assert base64.b64decode(ca_secret["data"]["ca.crt"]) in base64.b64decode(
        ca_bundle(release.admin, config)
    )

    policy = path_policy({"namespaces": [app.ns], "allow": ["secret/data/{namespace}/*"]})

    # The operator's policy cache picks the new policy up within moments: retry until refused.
    path = crd_path("vaultstaticsecrets", app.ns)
    body = app.labelled(
        "VaultStaticSecret",
        "outside",
        {"vaultAuthRef": "default", "mount": "secret", "type": "kv-v2", "path": "team-b/db",
         "destination": {"name": "outside", "create": True}},
    )  # fmt: skip
    refused: dict[str, Any] = {}

    def refused_by_webhook() -> bool:
        status, resp = release.admin.request("POST", path, body)
        if status == 201:
            release.admin.request("DELETE", f"{path}/outside")
            return False
        refused.update(resp)
        return status == 403

    wait_for(refused_by_webhook, 30, "the non-compliant resource refused at admission")
    message = refused["message"]
    assert WEBHOOK_NAME in message, message  # the API server names the webhook that refused
    assert policy in message and "secret/data/team-b/db" in message, message

    # A compliant one is admitted and synced.
    app.vault.kv_put(f"{app.ns}/db", {"password": "v1"})
    app.static("db", "db-secret")
    app.wait_data("db-secret", {"password": "v1"})
    assert log_mentions(op, "admission denied", "team-b/db"), op.log_tail()
    assert not log_mentions(op, "forbidden"), op.log_tail()
    assert op.stop() == 0, op.log_tail()
