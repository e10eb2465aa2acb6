"""The controller half of issue #20 against the real servers: a lease the policy may not revoke
never blocks a deletion (nor a namespace's), and a second writer of a managed Secret gets a
`DriftConflict` after a handful of repairs instead of a write loop."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest

from .dynamic_support import DB, PLURAL
from .helpers import App, wait_for
from .operator_harness import OperatorProcess, Postgres, crd_path, dump

pytestmark = pytest.mark.integration


@pytest.fixture
def db_no_revoke(app: App, pg: Postgres) -> Iterator[DB]:
    d = DB(app, pg)
    # Vault's default policy renews and looks up leases but does not revoke them: neither
    # form of sys/leases/revoke is granted here.
    policy = f"""
path "{d.mount}/creds/*" {{ capabilities = ["read", "update"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
"""
    d.bao.must("PUT", f"sys/policies/acl/{app.vault.role}", {"policy": policy})
    d.role("app", "10m", "1h")
    yield d
    d.close()


def test_unrevocable_lease_does_not_block_deletion(db_no_revoke: DB) -> None:
    db, app = db_no_revoke, db_no_revoke.app
    db.vds("denied", revoke=True)
    db.wait_synced("denied")
    lease = db.status("denied")["secretLease"]["id"]
    obj = app.get(PLURAL, "denied") or {}
    assert "vaultbridge.dev/revoke-lease" in obj["metadata"].get("finalizers", []), dump(obj)

    status, resp = app.admin.request("DELETE", crd_path(PLURAL, app.ns, "denied"))
    assert status == 200, dump(resp)
    # Promptly: permission denied is not retried (the bound here is for a loaded machine).
    wait_for(lambda: app.get(PLURAL, "denied") is None, 30, "the object deleted")
    event = app.wait_event("denied", "LeaseLeftToExpire")
    assert event["type"] == "Warning"
    assert lease in event["message"] and "TTL" in event["message"], event["message"]
    assert db.lease_ttl(lease) is not None, "the lease is left to expire, not revoked"

    # A namespace holding such an object is deleted too.
    db.vds("in-namespace", revoke=True)
    db.wait_synced("in-namespace")
    status, resp = app.admin.request("DELETE", f"/api/v1/namespaces/{app.ns}")
    assert status == 200, dump(resp)
    wait_for(
        lambda: app.admin.request("GET", f"/api/v1/namespaces/{app.ns}")[0] == 404,
        120,
        f"namespace {app.ns} deleted",
    )


def test_second_writer_gets_drift_conflict_not_a_write_loop(
    app: App, operator: OperatorProcess
) -> None:
    app.vault.kv_put(f"{app.ns}/fought", {"password": "from-vault"})
    app.vss("fought")
    app.wait_data("fought", {"password": "from-vault"})
    app.wait_condition("fought", "SecretSynced", "True")
    # One object in this namespace: its series is the only one of (kind, namespace).
    labels = {"kind": "VaultStaticSecret", "namespace": app.ns}
    repairs_before = operator.metric("vaultbridge_drift_repairs_total", **labels)

    path = f"/api/v1/namespaces/{app.ns}/secrets/fought?fieldManager=intruder"
    stop = threading.Event()
    patches = 0

    def intruder() -> None:
        # A second writer that keeps changing the Secret, as fast as the API server answers.
        nonlocal patches
        while not stop.is_set():
            value = base64.b64encode(f"intruder-{patches}".encode()).decode()
            status, _ = app.admin.request_patch(  # type: ignore[attr-defined]
                path, {"data": {"password": value}}
            )
            if status == 200:
                patches += 1
            stop.wait(0.1)

    writer = threading.Thread(target=intruder, daemon=True)
    writer.start()
    try:
        cond = app.wait_condition("fought", "SecretSynced", "False", "DriftConflict", timeout=60)
        assert "'intruder'" in cond["message"], cond["message"]
        at_conflict = patches
        # The fight goes on for a while: the operator writes no more.
        wait_for(lambda: patches >= at_conflict + 30, 60, "30 more intruder patches")
        repairs = operator.metric("vaultbridge_drift_repairs_total", **labels) - repairs_before
    finally:
        stop.set()
        writer.join(10)
    assert 1 <= repairs <= 3, f"{repairs} repairs for {patches} intruder patches"
    events = [e for e in app.events("fought") if e["reason"] == "DriftConflict"]
    assert len(events) == 1 and events[0]["type"] == "Warning", dump(events)
    assert sum(int(e.get("count") or 1) for e in events) <= 2, dump(events)
    # Still held while the other writer is fresh; the Secret holds the intruder's value.
    assert (app.secret_data("fought") or {}).get("password", "").startswith("intruder-")

    # The spec changes: the operator repairs again.
    app.patch_vss("fought", {"spec": {"destination": {"labels": {"fixed": "yes"}}}})
    app.wait_data("fought", {"password": "from-vault"}, timeout=60)
    app.wait_condition("fought", "SecretSynced", "True", timeout=60)
