"""VaultStaticSecret end to end: the real operator process, real API server, real OpenBao."""

from __future__ import annotations

import base64
import json
import os
import signal
import time

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App, wait_for
from .operator_harness import (
    OperatorProcess,
    crd_path,
)

pytestmark = pytest.mark.integration

CANARY = "canary-7b1e-never-log-this-value"


# --- the basics ------------------------------------------------------------------------------


@pytest.mark.both_servers
def test_create_and_follow_vault_updates(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/db", {"username": "app", "password": "pw-1", "port": 5432})
    app.vss("db", refreshAfter="2s")
    data = app.wait_data("db", {"username": "app", "password": "pw-1", "port": "5432"})
    assert json.loads(data["_raw"])["data"]["password"] == "pw-1"
    secret = app.secret("db")
    assert secret is not None
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vaultbridge"
    owner = secret["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "VaultStaticSecret" and owner["name"] == "db" and owner["controller"]
    cond = app.wait_condition("db", "SecretSynced", "True")
    assert cond["reason"] == "Synced"
    status = app.get("vaultstaticsecrets", "db")["status"]  # type: ignore[index]
    assert status["secretMAC"].startswith("hmac-sha256:")
    assert status["vaultVersion"] == 1
    app.wait_event("db", "SecretSynced")

    app.vault.kv_put(f"{app.ns}/db", {"username": "app", "password": "pw-2", "port": 5432})
    app.wait_data("db", {"password": "pw-2"})
    app.wait_event("db", "SecretRotated")


@pytest.mark.both_servers
def test_pinned_version_and_kv_v1(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/pinned", {"v": "one"})
    app.vault.kv_put(f"{app.ns}/pinned", {"v": "two"})
    app.vss("pinned", version=1)
    app.wait_data("pinned", {"v": "one"})
    app.vault.kv_put(f"{app.ns}/legacy", {"token": "t1"}, mount="kv1")
    app.vss("legacy", mount="kv1", type="kv-v1", path=f"{app.ns}/legacy")
    data = app.wait_data("legacy", {"token": "t1"})
    assert json.loads(data["_raw"]) == {"token": "t1"}


def test_multi_source_merge_with_prefixes_and_collision(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/a", {"user": "alice", "shared": "a"})
    app.vault.kv_put(f"{app.ns}/b", {"user": "bob"})
    app.vss(
        "merged",
        sources=[
            {"mount": "secret", "path": f"{app.ns}/a", "type": "kv-v2", "prefix": "a_"},
            {"mount": "secret", "path": f"{app.ns}/b", "type": "kv-v2", "prefix": "b_"},
        ],
    )
    data = app.wait_data("merged", {"a_user": "alice", "a_shared": "a", "b_user": "bob"})
    assert "user" not in data
    app.vss(
        "collide",
        sources=[
            {"mount": "secret", "path": f"{app.ns}/a", "type": "kv-v2"},
            {"mount": "secret", "path": f"{app.ns}/b", "type": "kv-v2"},
        ],
    )
    cond = app.wait_condition("collide", "SecretSynced", "False", "KeyCollision")
    assert "user" in cond["message"]
    app.wait_event("collide", "TransformationError")
    assert app.secret("collide") is None


def test_templates_includes_excludes_and_transformation_ref(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/tpl", {"user": "u1", "pass": "p1", "host": "db.local"})
    app.create(
        "secrettransformations",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "SecretTransformation",
            "metadata": {"name": "dsn"},
            "spec": {
                "templates": {
                    "dsn": {
                        "text": "postgres://{{ secrets.user }}:{{ secrets.pass }}"
                        "@{{ secrets.host }}/app"
                    }
                }
            },
        },
    )
    app.vss(
        "tpl",
        destination={
            "name": "tpl",
            "create": True,
            "transformation": {
                "excludes": ["^pass$"],
                "includes": ["^user$", "^pass$"],
                "excludeRaw": True,
                "templates": {"login": {"text": "{{ secrets.user | upper }}"}},
                "transformationRefs": [{"name": "dsn"}],
            },
        },
    )
    data = app.wait_data(
        "tpl", {"dsn": "postgres://u1:p1@db.local/app", "login": "U1", "user": "u1"}
    )
    assert set(data) == {"dsn", "login", "user"}


def test_template_error_leaves_secret_untouched(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/bad", {"user": "u1"})
    app.vss("bad")
    app.wait_data("bad", {"user": "u1"})
    app.patch_vss(
        "bad",
        {
            "spec": {
                "destination": {
                    "transformation": {"templates": {"broken": {"text": "{{ secrets.user "}}}
                }
            }
        },
    )
    app.wait_condition("bad", "SecretSynced", "False", "TransformationError")
    app.wait_event("bad", "TransformationError")
    assert app.secret_data("bad")["user"] == "u1"  # type: ignore[index]


# --- drift, ownership, rename -----------------------------------------------------------------


def test_drift_repair_after_hand_edit_and_delete(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/drift", {"k": "v"})
    app.vss("drift", refreshAfter="1h")
    app.wait_data("drift", {"k": "v"})
    status, _ = app.admin.request_patch(  # type: ignore[attr-defined]
        f"/api/v1/namespaces/{app.ns}/secrets/drift",
        {"data": {"k": base64.b64encode(b"tampered").decode(), "extra": "eA=="}},
    )
    assert status == 200
    data = app.wait_data("drift", {"k": "v"}, timeout=15)
    wait_for(
        lambda: "extra" not in (app.secret_data("drift") or {"extra": ""}), 15, "extra key gone"
    )
    app.admin.request("DELETE", f"/api/v1/namespaces/{app.ns}/secrets/drift")
    app.wait_data("drift", {"k": "v"}, timeout=15)
    assert data["k"] == "v"


def test_create_false_overwrite_protection_and_rename(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/own", {"k": "v"})
    # Someone else's Secret: not taken over without overwrite.
    app.admin.request(
        "POST",
        f"/api/v1/namespaces/{app.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "theirs"},
            "stringData": {"mine": "keep"},
        },
    )
    app.vss("own", dest="theirs", path=f"{app.ns}/own")
    app.wait_condition("own", "SecretSynced", "False", "DestinationConflict")
    assert app.secret_data("theirs") == {"mine": "keep"}

    # create: false manages only the data keys of an existing Secret.
    app.vss(
        "shared",
        destination={"name": "theirs", "create": False, "transformation": {"excludeRaw": True}},
        path=f"{app.ns}/own",
    )
    data = app.wait_data("theirs", {"k": "v", "mine": "keep"})
    assert "ownerReferences" not in app.secret("theirs")["metadata"]  # type: ignore[index]
    assert data["mine"] == "keep"

    # create: false with a missing Secret is an error, not a creation.
    app.vss("missing", destination={"name": "not-there", "create": False}, path=f"{app.ns}/own")
    app.wait_condition("missing", "SecretSynced", "False", "DestinationNotFound")
    assert app.secret("not-there") is None

    # Rename: the old owned Secret goes away.
    app.vss("renamed", dest="first", path=f"{app.ns}/own")
    app.wait_data("first", {"k": "v"})
    app.patch_vss("renamed", {"spec": {"destination": {"name": "second"}}})
    app.wait_data("second", {"k": "v"})
    wait_for(lambda: app.secret("first") is None, 15, "old destination deleted")


def test_create_only_first_write_keeps_overwrite_rules_and_field_ownership(app: App) -> None:
    """A first sync writes without reading (issue #13: a create-only server-side apply);
    the API server refuses it when the Secret exists, and the careful path decides."""
    app.vault.kv_put(f"{app.ns}/take", {"k": "v"})
    # Someone else's Secret, overwrite: true: taken over, their extra key removed.
    app.admin.request(
        "POST",
        f"/api/v1/namespaces/{app.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "taken"},
            "stringData": {"mine": "old"},
        },
    )
    app.vss(
        "take",
        destination={"name": "taken", "create": True, "overwrite": True},
        path=f"{app.ns}/take",
    )
    app.wait_data("taken", {"k": "v"})
    wait_for(lambda: "mine" not in (app.secret_data("taken") or {"mine": ""}), 15, "key gone")
    assert app.secret("taken")["metadata"]["ownerReferences"][0]["name"] == "take"  # type: ignore[index]

    # A Secret created by the create-only apply is owned field by field by our apply: a
    # label dropped from the spec leaves the Secret with the next write (not so had it been
    # a plain create: fields set by a create are not removed by a later apply).
    app.vss(
        "labelled",
        destination={"name": "labelled", "create": True, "labels": {"team": "a"}},
        path=f"{app.ns}/take",
        refreshAfter="1s",
    )
    app.wait_data("labelled", {"k": "v"})
    managers = {
        (m["manager"], m["operation"])
        for m in app.secret("labelled")["metadata"]["managedFields"]  # type: ignore[index]
    }
    assert managers == {("vaultbridge", "Apply")}
    app.patch_vss("labelled", {"spec": {"destination": {"labels": None}}})
    app.vault.kv_put(f"{app.ns}/take", {"k": "v2"})  # a write (labels alone do not cause one)
    app.wait_data("labelled", {"k": "v2"})
    wait_for(
        lambda: "team" not in ((app.secret("labelled") or {})["metadata"].get("labels") or {}),
        15,
        "label removed",
    )


def test_rollout_restart_on_change_not_on_first_sync(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/roll", {"k": "v1"})
    app.admin.request(
        "POST",
        f"/apis/apps/v1/namespaces/{app.ns}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x.invalid/x"}]},
                },
            },
        },
    )

    def restarted_at() -> str | None:
        _, dep = app.admin.request("GET", f"/apis/apps/v1/namespaces/{app.ns}/deployments/web")
        annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
        return annotations.get("vaultbridge.dev/restartedAt")

    app.vss(
        "roll",
        refreshAfter="2s",
        rolloutRestartTargets=[
            {"kind": "Deployment", "name": "web"},
            {"kind": "Deployment", "name": "gone"},
        ],
    )
    app.wait_data("roll", {"k": "v1"})
    app.wait_condition("roll", "SecretSynced", "True")
    time.sleep(3)
    assert restarted_at() is None, "first sync must not restart workloads"
    app.vault.kv_put(f"{app.ns}/roll", {"k": "v2"})
    app.wait_data("roll", {"k": "v2"})
    wait_for(restarted_at, 15, "restart annotation")
    app.wait_event("roll", "RolloutRestartTriggered")
    event = app.wait_event("roll", "RolloutRestartFailed")
    assert "gone" in event["message"]
    # A missing target does not fail the sync.
    assert app.condition("vaultstaticsecrets", "roll", "SecretSynced")["status"] == "True"  # type: ignore[index]


# --- access control and Vault failures --------------------------------------------------------


def test_allowed_namespaces_refusal_reads_nothing(
    app: App, devenv: DevState, kube_admin: KubeAdmin
) -> None:
    other = f"{app.ns}-x"
    kube_admin.ensure(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    try:
        app.vault.kv_put(f"{app.ns}/private", {"k": "v"})
        app.create(
            "vaultstaticsecrets",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultStaticSecret",
                "metadata": {"name": "steal"},
                "spec": {
                    "vaultAuthRef": f"{app.ns}/default",
                    "mount": "secret",
                    "type": "kv-v2",
                    "path": f"{app.ns}/private",
                    "destination": {"name": "stolen", "create": True},
                },
            },
            namespace=other,
        )
        other_app = App(devenv, kube_admin, other)
        cond = other_app.wait_condition("steal", "SecretSynced", "False", "NamespaceNotAllowed")
        assert "allowedNamespaces" in cond["message"]
        assert other_app.secret("stolen") is None
    finally:
        kube_admin.request("DELETE", f"/api/v1/namespaces/{other}")


def test_permission_denied_keeps_existing_secret(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/ok", {"k": "v"})
    app.vss("denied", path=f"{app.ns}/ok", refreshAfter="2s")
    app.wait_data("denied", {"k": "v"})
    # Point it at a path the role may not read.
    app.patch_vss("denied", {"spec": {"path": "forbidden/elsewhere"}})
    cond = app.wait_condition("denied", "SecretSynced", "False", "VaultPermissionDenied")
    assert "permission denied" in cond["message"]
    app.wait_event("denied", "VaultClientError")
    assert app.wait_condition("denied", "Healthy", "False")
    assert app.secret_data("denied")["k"] == "v"  # type: ignore[index]


def test_cr_deleted_secret_garbage_collected(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/gc", {"k": "v"})
    app.vss("gc")
    app.wait_data("gc", {"k": "v"})
    app.admin.request("DELETE", crd_path("vaultstaticsecrets", app.ns, "gc"))
    wait_for(lambda: app.secret("gc") is None, 60, "Secret garbage-collected")


def test_many_resources_share_one_login(app: App, operator: OperatorProcess) -> None:
    app.vault.kv_put(f"{app.ns}/shared", {"k": "v"})
    before = operator.metric(
        "vaultbridge_vault_logins_total", method="kubernetes", result="success"
    )
    for i in range(20):
        app.vss(f"many-{i}", path=f"{app.ns}/shared")
    for i in range(20):
        app.wait_data(f"many-{i}", {"k": "v"})
    after = operator.metric("vaultbridge_vault_logins_total", method="kubernetes", result="success")
    # The app fixture's VaultAuth validation already logged in for this namespace's
    # service account, so the twenty resources may add at most that one login.
    assert after - before <= 1, (before, after)


def test_vault_unavailable_keeps_secret_and_recovers(
    app: App, devenv: DevState, operator: OperatorProcess
) -> None:
    app.vault.kv_put(f"{app.ns}/outage", {"k": "v1"})
    app.vss("outage", refreshAfter="1s")
    app.wait_data("outage", {"k": "v1"})
    pid = devenv.pids["vault"]
    os.kill(pid, signal.SIGSTOP)
    try:
        app.wait_condition("outage", "Healthy", "False", timeout=30)
        assert app.secret_data("outage")["k"] == "v1"  # type: ignore[index]
    finally:
        os.kill(pid, signal.SIGCONT)
    app.vault.kv_put(f"{app.ns}/outage", {"k": "v2"})
    app.wait_data("outage", {"k": "v2"}, timeout=90)
    app.wait_condition("outage", "Healthy", "True", timeout=30)


def test_no_secret_value_in_debug_logs(app: App, operator: OperatorProcess) -> None:
    app.vault.kv_put(f"{app.ns}/canary", {"password": CANARY})
    app.vss(
        "canary",
        destination={
            "name": "canary",
            "create": True,
            "transformation": {
                "templates": {"broken": {"text": "{{ secrets.password | nosuchfilter }}"}}
            },
        },
    )
    app.wait_condition("canary", "SecretSynced", "False", "TransformationError")
    app.patch_vss(
        "canary",
        {
            "spec": {
                "destination": {
                    "transformation": {
                        "templates": {"broken": None, "ok": {"text": "{{ secrets.password }}"}}
                    }
                }
            }
        },
    )
    app.wait_data("canary", {"ok": CANARY})
    text = operator.log_text()
    assert "debug" in text  # the operator really logs at debug level
    assert CANARY not in text
    assert base64.b64encode(CANARY.encode()).decode() not in text
    for event in app.events("canary"):
        assert CANARY not in event["message"]
    status = app.get("vaultstaticsecrets", "canary")["status"]  # type: ignore[index]
    assert CANARY not in json.dumps(status)


def test_steady_state_writes_nothing(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/steady", {"k": "v"})
    app.vss("steady", refreshAfter="1s")
    app.wait_data("steady", {"k": "v"})
    app.wait_condition("steady", "Ready", "True")
    time.sleep(2)  # let the first sync's status write and event settle
    secret_rv = app.secret("steady")["metadata"]["resourceVersion"]  # type: ignore[index]
    vss_rv = app.get("vaultstaticsecrets", "steady")["metadata"]["resourceVersion"]  # type: ignore[index]
    events = len(app.events("steady"))
    # Several refreshes (each re-reads Vault) with nothing changed anywhere.
    time.sleep(5)
    assert app.secret("steady")["metadata"]["resourceVersion"] == secret_rv  # type: ignore[index]
    assert app.get("vaultstaticsecrets", "steady")["metadata"]["resourceVersion"] == vss_rv  # type: ignore[index]
    assert len(app.events("steady")) == events
    # ... while a change still goes through.
    app.vault.kv_put(f"{app.ns}/steady", {"k": "v2"})
    app.wait_data("steady", {"k": "v2"}, timeout=15)
