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

import copy
import json
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaultbridge.api.labels import LEADER_LABEL
from vaultbridge.devenv import processes
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.helm import ensure_helm
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App, wait_for
from .operator_harness import (
    REPO,
    TEST_OPERATOR_LABEL,
    OperatorProcess,
    crd_path,
    dump,
)

pytestmark = pytest.mark.integration

CHART = REPO / "deploy" / "chart"
Obj = dict[str, Any]

# Collection paths of the kinds the chart renders (and the test creates).
_KINDS: dict[str, tuple[str, str, bool]] = {
    # kind: (API prefix, plural, namespaced)
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "VaultConnection": ("/apis/vaultbridge.dev/v1beta1", "vaultconnections", True),
    "VaultAuth": ("/apis/vaultbridge.dev/v1beta1", "vaultauths", True),
    "ValidatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        False,
    ),
    "MutatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        False,
    ),
}


# --- helm and objects ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The pinned Helm, built from its Go module on first use and cached."""
    return str(ensure_helm(log=lambda _m: None))


def helm(helm_bin: str, *args: str) -> str:
    done = subprocess.run(
        [helm_bin, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def render_chart(helm_bin: str, release: str, namespace: str, values: Obj) -> list[Obj]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as fh:
        json.dump(values, fh)  # JSON is YAML
        fh.flush()
        out = helm(helm_bin, "template", release, str(CHART), "-n", namespace, "-f", fh.name)
    return [o for o in yaml.safe_load_all(out) if o]


def object_path(obj: Obj, with_name: bool = False) -> str:
    prefix, plural, namespaced = _KINDS[obj["kind"]]
    meta = obj["metadata"]
    path = (
        f"{prefix}/namespaces/{meta['namespace']}/{plural}" if namespaced else f"{prefix}/{plural}"
    )
    return f"{path}/{meta['name']}" if with_name else path


def apply(admin: KubeAdmin, obj: Obj) -> Obj:
    """Create, or replace what is there (as `kubectl apply` would end up)."""
    status, resp = admin.request("POST", object_path(obj), obj)
    if status == 409:
        _, live = admin.request("GET", object_path(obj, True))
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        status, resp = admin.request("PUT", object_path(obj, True), body)
    assert status in (200, 201), f"{obj['kind']} {obj['metadata']['name']}: {dump(resp)}"
    return resp


def token_kubeconfig(
    admin: KubeAdmin, devenv: DevState, namespace: str, service_account: str, path: Path
) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (TokenRequest), not as admin."""
    status, resp = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}},
    )  # fmt: skip
    assert status == 201, dump(resp)
    admin_config = json.loads(Path(devenv.kubeconfig).read_text())
    ca_data = admin_config["clusters"][0]["cluster"]["certificate-authority-data"]
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "dev", "cluster": {"server": devenv.api_url,
                                        "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": user, "user": {"token": resp["status"]["token"]}}],
        "contexts": [{"name": "sa", "context": {"cluster": "dev", "user": user,
                                                "namespace": namespace}}],
        "current-context": "sa",
    }  # fmt: skip
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return str(path)


# --- one release of the chart plus operators running as its ServiceAccount --------------------


@dataclass
class Release:
    """The chart rendered and applied into `namespace`, and helpers to run the operator."""

    helm_bin: str
    devenv: DevState
    admin: KubeAdmin
    namespace: str
    ident: str = field(default_factory=lambda: secrets.token_hex(4))
    webhook_port: int = field(default_factory=processes.free_port)
    objects: list[Obj] = field(default_factory=list)
    operators: list[OperatorProcess] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"vb-{self.ident}"

    @property
    def selector_label(self) -> dict[str, str]:
        return {TEST_OPERATOR_LABEL: self.ident}

    def values(self, **extra: Any) -> Obj:
        return {
            "defaultObjectLabels": self.selector_label,
            "resourceSelector": f"{TEST_OPERATOR_LABEL}={self.ident}",
            "defaultVaultConnection": {
                "enabled": True, "address": self.devenv.vault_addr, "timeout": "5s"
            },
            "defaultAuth": {
                "enabled": True,
                "method": "kubernetes",
                "kubernetes": {"role": f"role-{self.namespace}", "serviceAccount": "default"},
            },
            # A webhook configuration is cluster-wide: only tests that run its server enable it.
            "webhook": {"enabled": False},
            **extra,
        }  # fmt: skip

    def install(self, **values: Any) -> list[Obj]:
        self.objects = render_chart(self.helm_bin, self.name, self.namespace, self.values(**values))
        for obj in self.objects:
            apply(self.admin, obj)
        return self.objects

    def webhook_values(self) -> Obj:
        """The webhook registered by URL (no pods here: the operator serves on 127.0.0.1),
        reviewing only this release's objects in this namespace."""
        return {
            "enabled": True,
            "url": f"https://127.0.0.1:{self.webhook_port}/validate",
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
            "objectSelector": {"matchLabels": dict(self.selector_label)},
        }

    def webhook_args(self) -> list[str]:
        """The chart's webhook flags, bound to loopback instead of the pod's port."""
        (container,) = self.find("Deployment")["spec"]["template"]["spec"]["containers"]
        args = [
            a
            for a in container["args"]
            if a.startswith(("--webhook-", "--path-policy-", "--mutating-webhook-"))
        ]
        assert any(a.startswith("--webhook-config-name=") for a in args), args
        local = {"--webhook-bind-address": f"127.0.0.1:{self.webhook_port}",
                 "--webhook-hosts": "127.0.0.1"}  # fmt: skip
        return [
            f"{flag}={local[flag]}" if flag in local else a
            for a in args
            for flag in [a.partition("=")[0]]
        ]

    def find(self, kind: str) -> Obj:
        return next(o for o in self.objects if o["kind"] == kind)

    def service_account(self) -> str:
        return str(self.find("ServiceAccount")["metadata"]["name"])

    def operator(
        self, *extra: str, leader_elect: bool = True, webhook: bool = False
    ) -> OperatorProcess:
        """An operator process authenticated as the chart's ServiceAccount (not started)."""
        home = Path(self.devenv.home)
        kubeconfig = token_kubeconfig(
            self.admin,
            self.devenv,
            self.namespace,
            self.service_account(),
            home / f"kubeconfig-{self.name}-{len(self.operators)}",
        )
        args = [
            "--namespace", self.namespace,
            "--resource-selector", f"{TEST_OPERATOR_LABEL}={self.ident}",
            "--hmac-key-secret", f"hmac-{self.ident}",
        ]  # fmt: skip
        if leader_elect:
            args += [
                "--leader-elect", "true",
                "--leader-election-id", f"lease-{self.ident}",
                "--leader-election-lease-duration", "8",
                "--leader-election-renew-deadline", "5",
                "--leader-election-retry-period", "1",
            ]  # fmt: skip
        if webhook:
            args += self.webhook_args()
        op = OperatorProcess(
            devenv=self.devenv,
            log_path=home / "logs" / f"operator-{self.name}-{len(self.operators)}.log",
            metrics_port=processes.free_port(),
            health_port=processes.free_port(),
            extra_args=[*args, *extra],
            kubeconfig=kubeconfig,
        )
        self.operators.append(op)
        return op

    def close(self) -> None:
        # The webhook configuration first: it must not outlive the server it points at.
        for obj in self.objects:
            if obj["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                self.admin.request("DELETE", object_path(obj, True))
        for op in self.operators:
            op.stop(timeout=20)
        for obj in self.objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                self.admin.request("DELETE", object_path(obj, True))


@pytest.fixture
def release(
    helm_bin: str, devenv: DevState, kube_admin: KubeAdmin, namespace: str, crds_installed: None
) -> Iterator[Release]:
    rel = Release(helm_bin, devenv, kube_admin, namespace)
    yield rel
    rel.close()


# --- what the scenario creates -----------------------------------------------------------------


class Workload(App):
    """The test namespace's Vault role, objects (labelled for our operator) and checks."""

    def __init__(self, rel: Release) -> None:
        super().__init__(rel.devenv, rel.admin, rel.namespace)
        self.rel = rel
        self.pki_mount = f"pki-{rel.namespace}"

    def allow(self, pki: bool = False) -> None:
        """Vault role for the namespace's `default` ServiceAccount: KV (and PKI) access."""
        self.vault.allow_role([f"secret/data/{self.ns}/*"])
        if not pki:
            return
        bao = self.vault.bao
        bao.must("POST", f"sys/mounts/{self.pki_mount}", {"type": "pki"})
        bao.must(
            "POST",
            f"{self.pki_mount}/root/generate/internal",
            {"common_name": "Root", "key_type": "ec", "key_bits": 256, "ttl": "24h"},
        )
        bao.must(
            "POST",
            f"{self.pki_mount}/roles/web",
            {"allowed_domains": ["example.com"], "allow_subdomains": True,
             "key_type": "ec", "key_bits": 256, "max_ttl": "2h"},
        )  # fmt: skip
        policy = (
            f'path "secret/data/{self.ns}/*" {{ capabilities = ["read"] }}\n'
            f'path "{self.pki_mount}/issue/web" {{ capabilities = ["update"] }}\n'
            f'path "{self.pki_mount}/revoke" {{ capabilities = ["update"] }}\n'
        )
        bao.must("PUT", f"sys/policies/acl/{self.vault.role}", {"policy": policy})

    def drop_pki(self) -> None:
        self.vault.bao.call("DELETE", f"sys/mounts/{self.pki_mount}")

    def labelled(self, kind: str, name: str, spec: Obj) -> Obj:
        return {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": kind,
            "metadata": {"name": name, "labels": dict(self.rel.selector_label)},
            "spec": spec,
        }

    def static(self, name: str, dest: str, **spec: Any) -> Obj:
        body = self.labelled(
            "VaultStaticSecret",
            name,
            {"vaultAuthRef": "default", "mount": "secret", "type": "kv-v2",
             "path": f"{self.ns}/{name}", "destination": {"name": dest, "create": True},
             **spec},
        )  # fmt: skip
        return self.create("vaultstaticsecrets", body)

    def pki(self, name: str) -> Obj:
        body = self.labelled(
            "VaultPKISecret",
            name,
            {"vaultAuthRef": "default", "mount": self.pki_mount, "role": "web",
             "commonName": f"{name}.example.com", "revoke": True,
             "destination": {"name": name, "create": True}},
        )  # fmt: skip
        return self.create("vaultpkisecrets", body)

    def deployment(self, name: str) -> None:
        apply(
            self.admin,
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": name, "namespace": self.ns},
             "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}},
                                   "spec": {"containers": [{"name": "c",
                                                            "image": "x.invalid/x"}]}}}},
        )  # fmt: skip

    def restarted_at(self, name: str) -> str | None:
        _, dep = self.admin.request("GET", f"/apis/apps/v1/namespaces/{self.ns}/deployments/{name}")
        annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
        return annotations.get("vaultbridge.dev/restartedAt")


def ca_bundle(admin: KubeAdmin, config: Obj) -> str:
    """The caBundle the operator put into the chart's webhook configuration ("" if none)."""
    _, live = admin.request("GET", object_path(config, True))
    return str(live["webhooks"][0]["clientConfig"].get("caBundle") or "")


def log_mentions(op: OperatorProcess, *needles: str) -> bool:
    """True if one log record (message and exception text) contains every needle."""
    for line in op.log_text().splitlines():
        try:
            record = json.loads(line)
            text = " ".join(str(v) for v in record.values()) if isinstance(record, dict) else line
        except ValueError:
            text = line
        if all(n in text for n in needles):
            return True
    return False


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
