"""The operator runs as the chart's own ServiceAccount with exactly the chart's RBAC.

No kubelet runs pods here, so the operator process runs on this machine with a kubeconfig
holding a TokenRequest token of the chart's ServiceAccount: every API call it makes is
authorised as that ServiceAccount, never as cluster admin. A full sync scenario proves the
RBAC is sufficient; removing any one rule breaks the capability named beside it, which
proves no rule is dead weight.

These operators handle only objects labelled `vaultbridge.dev/test-operator=<id>`
(`--resource-selector`); the session `operator` fixture ignores such objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from vaultbridge.api.labels import LEADER_LABEL
from vaultbridge.devenv import processes

from .deploy_support import (
    Obj,
    Release,
    Workload,
    apply,
    ca_bundle,
    log_mentions,
    render_chart,
)
from .helpers import wait_for
from .operator_harness import (
    OperatorProcess,
    crd_path,
    dump,
)

pytestmark = pytest.mark.integration


def ready(op: OperatorProcess) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/readyz", timeout=2) as r:
            return int(r.status) == 200
    except OSError:
        return False


# --- the full scenario with the chart's RBAC ---------------------------------------------------


def test_operator_syncs_as_its_own_service_account(release: Release) -> None:
    # With the admission webhook: every write below also passes through it.
    release.install(webhook=release.webhook_values())
    app = Workload(release)
    app.allow(pki=True)
    try:
        op = release.operator(webhook=True)
        op.start()
        config = release.find("ValidatingWebhookConfiguration")
        wait_for(lambda: ca_bundle(release.admin, config), 30, "caBundle patched by the operator")

        # Sync, status, events.
        app.vault.kv_put(f"{app.ns}/db", {"password": "v1"})
        app.deployment("web")
        app.static(
            "db",
            "db-secret",
            refreshAfter="2s",
            rolloutRestartTargets=[{"kind": "Deployment", "name": "web"}],
        )
        app.wait_data("db-secret", {"password": "v1"})
        app.wait_condition("db", "SecretSynced", "True")
        wait_for(lambda: app.events("db"), 30, "an event on the VaultStaticSecret")

        # A Vault change rolls the Deployment.
        app.vault.kv_put(f"{app.ns}/db", {"password": "v2"})
        app.wait_data("db-secret", {"password": "v2"})
        wait_for(lambda: app.restarted_at("web"), 30, "Deployment web restarted")

        # A destination rename deletes the old Secret.
        app.patch_vss("db", {"spec": {"destination": {"name": "db-renamed"}}})
        app.wait_data("db-renamed", {"password": "v2"})
        wait_for(lambda: app.secret("db-secret") is None, 30, "old Secret deleted")

        # A leased kind: finalizer on, certificate issued, finalizer off on delete.
        app.pki("web-cert")
        app.wait_condition("web-cert", "SecretSynced", "True", plural="vaultpkisecrets")
        live = app.get("vaultpkisecrets", "web-cert") or {}
        assert live["metadata"].get("finalizers"), dump(live["metadata"])
        app.admin.request("DELETE", crd_path("vaultpkisecrets", app.ns, "web-cert"))
        wait_for(lambda: app.get("vaultpkisecrets", "web-cert") is None, 30, "VaultPKISecret gone")

        # Leader election used the release namespace's Lease.
        status, lease = app.admin.request(
            "GET",
            f"/apis/coordination.k8s.io/v1/namespaces/{app.ns}/leases/lease-{release.ident}",
        )
        assert status == 200 and lease["spec"]["holderIdentity"], dump(lease)

        assert not log_mentions(op, "forbidden"), op.log_tail()
        assert op.stop() == 0, op.log_tail()
    finally:
        app.drop_pki()


# --- every rule is needed -----------------------------------------------------------------------


@dataclass(frozen=True)
class Capability:
    """A rule of the chart (matched by group, resources and verbs) and how losing it shows."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    check: Callable[[Release, Workload], None]
    role: str = "ClusterRole"
    values: Callable[[Release], Obj] | None = None
    """Chart values the capability needs (the check's operator runs with them)."""

    def matches(self, rule: Obj) -> bool:
        return (
            rule.get("apiGroups") == [self.api_group]
            and tuple(rule.get("resources") or ()) == self.resources
            and tuple(rule.get("verbs") or ()) == self.verbs
        )


def _exits_at_start(forbidden: str) -> Callable[[Release, Workload], None]:
    def check(rel: Release, _app: Workload) -> None:
        op = rel.operator()
        op.start(wait_ready=False)
        assert op.proc is not None
        rc = op.proc.wait(60)
        assert rc == 2, op.log_tail()
        assert log_mentions(op, forbidden), op.log_tail()

    return check


def _never_ready(forbidden: str) -> Callable[[Release, Workload], None]:
    def check(rel: Release, _app: Workload) -> None:
        op = rel.operator()
        op.start(wait_ready=False)
        wait_for(lambda: log_mentions(op, forbidden), 60, f"log: {forbidden}")
        assert not ready(op), "ready although it cannot do its job"

    return check


def _synced_operator(rel: Release, app: Workload) -> OperatorProcess:
    op = rel.operator()
    op.start()
    return op


def _check_status(rel: Release, app: Workload) -> None:
    op = _synced_operator(rel, app)
    app.vault.kv_put(f"{app.ns}/s", {"k": "v"})
    app.static("s", "s")
    app.wait_data("s", {"k": "v"})
    wait_for(
        lambda: log_mentions(op, 'cannot patch resource "vaultstaticsecrets/status"'),
        60,
        "status patch refused",
    )
    assert not (app.get("vaultstaticsecrets", "s") or {}).get("status")


def _check_finalizers(rel: Release, app: Workload) -> None:
    op = _synced_operator(rel, app)
    app.pki("cert")
    wait_for(
        lambda: log_mentions(op, 'cannot patch resource "vaultpkisecrets"'),
        60,
        "finalizer patch refused",
    )
    assert not (app.get("vaultpkisecrets", "cert") or {})["metadata"].get("finalizers")
    assert app.secret("cert") is None, "certificate issued without its cleanup finalizer"


def _check_delete(rel: Release, app: Workload) -> None:
    op = _synced_operator(rel, app)
    app.vault.kv_put(f"{app.ns}/s", {"k": "v"})
    app.static("s", "first")
    app.wait_data("first", {"k": "v"})
    app.patch_vss("s", {"spec": {"destination": {"name": "second"}}})
    app.wait_data("second", {"k": "v"})
    wait_for(lambda: log_mentions(op, 'cannot delete resource "secrets"'), 60, "delete refused")
    assert app.secret("first") is not None


def _check_login(rel: Release, app: Workload) -> None:
    op = _synced_operator(rel, app)
    app.vault.kv_put(f"{app.ns}/s", {"k": "v"})
    app.static("s", "s")
    wait_for(
        lambda: (
            log_mentions(op, 'cannot create resource "serviceaccounts/token"')
            or "serviceaccounts/token" in json.dumps(app.get("vaultstaticsecrets", "s") or {})
        ),
        60,
        "TokenRequest refused",
    )
    assert app.secret("s") is None


def _check_opt_in(rel: Release, app: Workload) -> None:
    """Without `get serviceaccounts` the opt-in cannot be read: no TokenRequest, no login."""
    op = _synced_operator(rel, app)
    app.vault.kv_put(f"{app.ns}/s", {"k": "v"})
    app.static("s", "s")
    cond = app.wait_condition("s", "SecretSynced", "False", "KubernetesError", timeout=60)
    assert "ServiceAccount" in cond["message"] and "forbidden" in cond["message"], cond
    tokens = op.metric(
        "vaultbridge_kube_requests_total", verb="create", resource="serviceaccounts/token"
    )
    assert tokens == 0
    assert app.secret("s") is None


def _check_audience_review(rel: Release, app: Workload) -> None:
    """Without `create tokenreviews` the audience cannot be verified: nothing is sent."""
    _synced_operator(rel, app)
    app.vault.kv_put(f"{app.ns}/s", {"k": "v"})
    app.static("s", "s")
    cond = app.wait_condition("s", "SecretSynced", "False", "AudienceCheckFailed", timeout=60)
    assert "tokenreviews" in cond["message"], cond
    assert app.secret("s") is None


def _check_events(rel: Release, app: Workload) -> None:
    op = _synced_operator(rel, app)
    app.vault.kv_put(f"{app.ns}/s", {"k": "v"})
    app.static("s", "s")
    app.wait_data("s", {"k": "v"})
    wait_for(lambda: log_mentions(op, 'cannot create resource "events"'), 60, "events refused")
    assert not app.events("s")


def _check_rollout(rel: Release, app: Workload) -> None:
    _synced_operator(rel, app)
    app.deployment("web")
    app.vault.kv_put(f"{app.ns}/s", {"k": "v1"})
    app.static("s", "s", refreshAfter="1s", rolloutRestartTargets=[
        {"kind": "Deployment", "name": "web"}
    ])  # fmt: skip
    app.wait_data("s", {"k": "v1"})
    app.vault.kv_put(f"{app.ns}/s", {"k": "v2"})
    app.wait_data("s", {"k": "v2"})
    event = app.wait_event("s", "RolloutRestartFailed", timeout=60)
    assert "forbidden" in event["message"], event["message"]
    assert app.restarted_at("web") is None


def _check_ca_bundle(rel: Release, _app: Workload) -> None:
    # Without the rule the CA cannot reach the API server, so the webhook could never be
    # trusted: the operator refuses to start rather than serve unverifiable reviews.
    op = rel.operator(webhook=True)
    op.start(wait_ready=False)
    assert op.proc is not None
    rc = op.proc.wait(60)
    assert rc != 0, op.log_tail()
    assert log_mentions(op, 'cannot get resource "validatingwebhookconfigurations"'), op.log_tail()
    assert not ca_bundle(rel.admin, rel.find("ValidatingWebhookConfiguration"))


def _check_inject_ca_bundle(rel: Release, _app: Workload) -> None:
    # The inject webhook's configuration cannot be trusted without its caBundle either.
    op = rel.operator(webhook=True)
    op.start(wait_ready=False)
    assert op.proc is not None
    rc = op.proc.wait(60)
    assert rc != 0, op.log_tail()
    assert log_mentions(op, 'cannot get resource "mutatingwebhookconfigurations"'), op.log_tail()


def _pod(rel: Release, name: str, labels: dict[str, str]) -> str:
    """A Pod object for the operator to label (no kubelet runs it: it stays Pending)."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "operator", "image": "vaultbridge:test"}]},
    }
    status, resp = rel.admin.request("POST", f"/api/v1/namespaces/{rel.namespace}/pods", body)
    assert status == 201, dump(resp)
    return name


def _pod_labels(rel: Release, name: str) -> dict[str, str]:
    _, pod = rel.admin.request("GET", f"/api/v1/namespaces/{rel.namespace}/pods/{name}")
    return dict(pod["metadata"].get("labels") or {})


def _audit_stream_operator(rel: Release, pod: str) -> OperatorProcess:
    op = rel.operator("--audit-stream-listen", f"udp://127.0.0.1:{processes.free_port()}")
    op.env = {"POD_NAME": pod}
    return op


def _check_leader_pod_label(rel: Release, _app: Workload) -> None:
    # Without the rule the leader cannot label itself: it says so and keeps reconciling (only
    # the audit-stream Service's routing suffers).
    pod = _pod(rel, "operator-unlabelled", {})
    op = _audit_stream_operator(rel, pod)
    op.start()
    wait_for(lambda: log_mentions(op, 'cannot patch resource "pods"'), 60, "the refused label")
    assert LEADER_LABEL not in _pod_labels(rel, pod)
    assert op.proc is not None and op.proc.poll() is None, op.log_tail()


CAPABILITIES: dict[str, Capability] = {
    "watch-custom-resources": Capability(
        "vaultbridge.dev",
        (
            "vaultconnections",
            "vaultauths",
            "vaultauthglobals",
            "vaultstaticsecrets",
            "vaultdynamicsecrets",
            "vaultpkisecrets",
            "secrettransformations",
            "vaultpathpolicies",
        ),
        ("get", "list", "watch"),
        _never_ready('cannot list resource "vault'),
    ),
    "namespace-selectors": Capability(
        "", ("namespaces",), ("list", "watch"), _never_ready('cannot list resource "namespaces"')
    ),
    "inject-pod-count": Capability(
        "", ("pods",), ("list", "watch"), _never_ready('cannot list resource "pods"')
    ),
    "report-status": Capability(
        "vaultbridge.dev",
        (
            "vaultconnections/status",
            "vaultauths/status",
            "vaultauthglobals/status",
            "vaultstaticsecrets/status",
            "vaultdynamicsecrets/status",
            "vaultpkisecrets/status",
            "secrettransformations/status",
        ),
        ("patch",),
        _check_status,
    ),
    "cleanup-finalizers": Capability(
        "vaultbridge.dev", ("vaultdynamicsecrets", "vaultpkisecrets"), ("patch",), _check_finalizers
    ),
    "read-secrets": Capability(
        "", ("secrets",), ("get", "list", "watch"), _exits_at_start('cannot get resource "secrets"')
    ),
    "write-secrets": Capability(
        "", ("secrets",), ("create", "patch"), _exits_at_start('cannot create resource "secrets"')
    ),
    "delete-renamed-secrets": Capability("", ("secrets",), ("delete",), _check_delete),
    "vault-kubernetes-login": Capability("", ("serviceaccounts/token",), ("create",), _check_login),
    "vault-login-opt-in": Capability("", ("serviceaccounts",), ("get",), _check_opt_in),
    "audience-guard": Capability(
        "authentication.k8s.io", ("tokenreviews",), ("create",), _check_audience_review
    ),
    "events": Capability("", ("events",), ("create", "patch"), _check_events),
    "rollout-restart": Capability(
        "apps", ("deployments", "statefulsets", "daemonsets"), ("get", "patch"), _check_rollout
    ),
    "leader-election": Capability(
        "coordination.k8s.io",
        ("leases",),
        ("get", "create", "update"),
        _never_ready('cannot get resource "leases"'),
        role="Role",
    ),
    "leader-pod-label": Capability(
        "",
        ("pods",),
        ("patch",),
        _check_leader_pod_label,
        role="Role",
        values=lambda _rel: {"auditStream": {"enabled": True}},
    ),
    "webhook-ca-bundle": Capability(
        "admissionregistration.k8s.io",
        ("validatingwebhookconfigurations",),
        ("get", "patch"),
        _check_ca_bundle,
        values=lambda rel: {"webhook": rel.webhook_values()},
    ),
    "inject-ca-bundle": Capability(
        "admissionregistration.k8s.io",
        ("mutatingwebhookconfigurations",),
        ("get", "patch"),
        _check_inject_ca_bundle,
        values=lambda rel: {"webhook": rel.webhook_values()},
    ),
}


def test_every_rule_of_the_chart_has_a_named_capability(helm_bin: str) -> None:
    # Every optional feature that brings its own rule is switched on.
    objs = render_chart(
        helm_bin, "vaultbridge", "vaultbridge-system", {"auditStream": {"enabled": True}}
    )
    rules = [
        (o["kind"], rule)
        for o in objs
        if o["kind"] in ("ClusterRole", "Role")
        for rule in o["rules"]
    ]
    unmatched = [
        r
        for r in rules
        if not any(c.role == r[0] and c.matches(r[1]) for c in CAPABILITIES.values())
    ]
    assert not unmatched, f"rules without a capability test: {unmatched}"
    assert len(rules) == len(CAPABILITIES)


@pytest.mark.parametrize("capability", sorted(CAPABILITIES))
def test_removing_a_rule_breaks_its_capability(release: Release, capability: str) -> None:
    cap = CAPABILITIES[capability]
    objs = release.install(**(cap.values(release) if cap.values else {}))
    target = next(
        o for o in objs if o["kind"] == cap.role and any(cap.matches(r) for r in o["rules"])
    )
    before = len(target["rules"])
    target["rules"] = [r for r in target["rules"] if not cap.matches(r)]
    assert len(target["rules"]) == before - 1
    apply(release.admin, target)
    app = Workload(release)
    app.allow(pki=capability == "cleanup-finalizers")
    try:
        cap.check(release, app)
    finally:
        if capability == "cleanup-finalizers":
            app.drop_pki()
        # Let deletion of what this test created not wait on a finalizer nobody removes.
        for item in app.admin.request("GET", crd_path("vaultpkisecrets", app.ns))[1].get(
            "items", []
        ):
            app.admin.request_patch(  # type: ignore[attr-defined]
                crd_path("vaultpkisecrets", app.ns, item["metadata"]["name"]),
                {"metadata": {"finalizers": None}},
            )


def test_the_leader_labels_its_own_pod_for_the_audit_stream_service(release: Release) -> None:
    """With auditStream on, the chart's UDP Service selects only the leader's Pod, and the
    leader (as the chart's ServiceAccount, with the chart's RBAC) labels itself while it
    leads and takes the label off when it stops."""
    objs = release.install(auditStream={"enabled": True})
    service = next(
        o for o in objs if o["kind"] == "Service" and o["metadata"]["name"].endswith("-stream")
    )
    assert service["spec"]["selector"][LEADER_LABEL] == "true", dump(service)
    assert [(p["port"], p["protocol"]) for p in service["spec"]["ports"]] == [(8201, "UDP")]
    (container,) = release.find("Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--audit-stream-listen=udp://0.0.0.0:8201" in container["args"], container["args"]

    pod = _pod(release, "operator-0", dict(service["spec"]["selector"], **{LEADER_LABEL: "true"}))
    op = _audit_stream_operator(release, pod)
    # A container restarted in a former leader's Pod starts by removing the label; then it
    # wins the election and sets it again.
    op.start()
    wait_for(lambda: _pod_labels(release, pod).get(LEADER_LABEL) == "true", 60, "the label")
    assert log_mentions(op, "removed label"), op.log_tail()
    assert op.stop() == 0
    assert LEADER_LABEL not in _pod_labels(release, pod), "the label outlived the leadership"
