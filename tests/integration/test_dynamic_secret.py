"""VaultDynamicSecret end to end: the real operator, API server, OpenBao and PostgreSQL.

Credentials come from OpenBao's database secrets engine; every test proves they work by
logging in to PostgreSQL with them, and proves renewals, re-issues and revocations by asking
OpenBao about the lease and PostgreSQL about the login.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .dynamic_support import DB, PLURAL
from .helpers import App, deployment, restarted_at, wait_for
from .operator_harness import PG_SUPERUSER_PASSWORD, OperatorProcess, Postgres, crd_path, dump

pytestmark = pytest.mark.integration


@pytest.fixture
def db(app: App, pg: Postgres) -> Iterator[DB]:
    d = DB(app, pg)
    yield d
    # Objects with the revoke finalizer must go while their VaultAuth still exists.
    _, listed = app.admin.request("GET", crd_path(PLURAL, app.ns))
    for item in listed.get("items", []):
        app.admin.request("DELETE", crd_path(PLURAL, app.ns, item["metadata"]["name"]))
    wait_for(
        lambda: not app.admin.request("GET", crd_path(PLURAL, app.ns))[1].get("items"),
        30,
        "VaultDynamicSecrets deleted",
    )
    d.close()


# --- issue and renew ---------------------------------------------------------------------------


@pytest.mark.both_servers
def test_credentials_work_and_lease_is_renewed_in_place(db: DB) -> None:
    db.role("app", default_ttl="6s", max_ttl="1h")
    created_at = int(time.time())
    db.vds("creds")
    data = db.wait_synced("creds")
    assert db.can_login(data), "the credentials in the Secret must log in to PostgreSQL"
    status = db.status("creds")
    lease = status["secretLease"]
    assert lease["id"].startswith(f"{db.mount}/creds/app/")
    assert lease["renewable"] is True and lease["duration"] == 6
    assert lease["requestID"]
    first_renewal = status["lastRenewalTime"]
    # When it was issued, as an ordering (after the resource existed, before we looked).
    assert created_at <= first_renewal <= time.time(), (created_at, first_renewal)
    assert status["secretMAC"].startswith("hmac-sha256:")
    secret_rv = db.app.secret("creds")["metadata"]["resourceVersion"]  # type: ignore[index]

    # Renewed at ~67% of 6 s, jittered early: well within 10 s, same lease, same Secret.
    def renewed() -> dict[str, Any] | None:
        s = db.status("creds")
        return s if s.get("lastRenewalTime", 0) > first_renewal else None

    renewed_status = wait_for(renewed, 10, "a lease renewal")
    assert renewed_status["secretLease"]["id"] == lease["id"]
    cond = db.app.condition(PLURAL, "creds", "LeaseRenewal")
    assert cond is not None and cond["status"] == "True" and cond["reason"] == "Renewed", cond

    # Past the original 6 s the lease is alive in OpenBao and the login still works.
    time.sleep(max(0.0, first_renewal + 8 - time.time()))
    ttl = db.lease_ttl(lease["id"])
    assert ttl is not None and ttl > 0, "renewal must extend the lease in OpenBao"
    assert db.can_login(data)
    assert db.status("creds")["secretLease"]["id"] == lease["id"]
    assert db.app.secret("creds")["metadata"]["resourceVersion"] == secret_rv  # type: ignore[index]
    assert db.app.secret_data("creds") == data


def test_max_ttl_brings_new_credentials_and_restarts_rollout(db: DB) -> None:
    db.role("short", default_ttl="4s", max_ttl="10s")
    deployment(db.app, "api")
    db.vds("rotating", role="short", rolloutRestartTargets=[{"kind": "Deployment", "name": "api"}])
    first = db.wait_synced("rotating")
    first_lease = db.status("rotating")["secretLease"]["id"]
    assert restarted_at(db.app, "api") is None, "the first issue must not restart workloads"

    def rotated() -> dict[str, str] | None:
        data = db.app.secret_data("rotating") or {}
        return data if data.get("username") not in (None, first["username"]) else None

    second = wait_for(rotated, 60, "new credentials after the max TTL")
    # Renewals carry the lease to its 10 s max TTL; new credentials come before it ends. Told
    # by what the operator decided, not by a stopwatch: the rotation's cause is a renewal that
    # Vault granted (so the lease was alive) but cut short by the max TTL ("lease-exhausted"),
    # not an expired lease ("lease-due", which a late operator would report).
    event = db.app.wait_event("rotating", "SecretRotated")
    assert "(lease-exhausted)" in event["message"], event["message"]
    failed = [e for e in db.app.events("rotating") if e["reason"] == "LeaseRenewalFailed"]
    assert not failed, failed  # the other way to "lease-exhausted": a renewal Vault refused
    assert db.can_login(second)
    new_lease = db.status("rotating")["secretLease"]["id"]
    assert new_lease != first_lease
    wait_for(lambda: restarted_at(db.app, "api"), 10, "rollout restart annotation")
    db.app.wait_event("rotating", "RolloutRestartTriggered")
    # The old credentials were not cut short: they lived until their max TTL.
    cond = db.app.condition(PLURAL, "rotating", "LeaseRenewal")
    assert cond is not None and cond["status"] == "True", cond


# --- deletion ----------------------------------------------------------------------------------


def test_revoke_on_delete_and_no_finalizer_without_revoke(db: DB) -> None:
    db.role("app", default_ttl="1h", max_ttl="2h")
    db.vds("revoked", revoke=True)
    db.vds("kept")
    revoked = db.wait_synced("revoked")
    kept = db.wait_synced("kept")
    obj = db.app.get(PLURAL, "revoked") or {}
    assert "vaultbridge.dev/revoke-lease" in obj["metadata"].get("finalizers", [])
    assert not (db.app.get(PLURAL, "kept") or {})["metadata"].get("finalizers")
    revoked_lease = db.status("revoked")["secretLease"]["id"]
    kept_lease = db.status("kept")["secretLease"]["id"]
    assert db.can_login(revoked) and db.can_login(kept)

    for name in ("revoked", "kept"):
        db.app.admin.request("DELETE", crd_path(PLURAL, db.app.ns, name))
    wait_for(lambda: db.app.get(PLURAL, "revoked") is None, 20, "revoked object gone")
    assert db.lease_ttl(revoked_lease) is None, "the lease must be revoked in OpenBao"
    assert not db.can_login(revoked), "the revoked user must no longer log in"
    db.app.wait_event("revoked", "LeaseRevoked")

    # Without revoke the lease lives on and the Secret is garbage-collected via its owner.
    wait_for(lambda: db.app.secret("kept") is None, 60, "Secret garbage-collected")
    ttl = db.lease_ttl(kept_lease)
    assert ttl is not None and ttl > 3000
    assert db.can_login(kept)


# --- restart -----------------------------------------------------------------------------------


def test_operator_restart_keeps_and_renews_the_lease(
    db: DB, operator: OperatorProcess, devenv: DevState, kube_admin: KubeAdmin
) -> None:
    # A lease that outlives the restart however slow it is (a 15 s lease expired while the
    # operator restarted at load average ~15, and a re-issue was then the right thing to do).
    db.role("app", default_ttl="60s", max_ttl="1h")
    db.vds("steady")
    data = db.wait_synced("steady")
    status = db.status("steady")
    lease_id = status["secretLease"]["id"]
    secret_rv = db.app.secret("steady")["metadata"]["resourceVersion"]  # type: ignore[index]

    assert operator.stop() == 0, operator.log_tail()
    operator.start()
    # The new process must pick the lease up from the status, not issue new credentials...
    time.sleep(2)
    assert db.status("steady")["secretLease"]["id"] == lease_id
    # ...and renew it with its own, new token once it is due (~40 s after issue).
    wait_for(
        lambda: db.status("steady").get("lastRenewalTime", 0) > status["lastRenewalTime"],
        90,
        "renewal by the restarted operator",
    )
    after = db.status("steady")
    assert after["secretLease"]["id"] == lease_id, dump(after)
    assert db.app.secret("steady")["metadata"]["resourceVersion"] == secret_rv  # type: ignore[index]
    cond = db.app.condition(PLURAL, "steady", "LeaseRenewal")
    assert cond is not None and cond["reason"] == "Renewed", cond
    assert db.can_login(data)
    assert "issued credentials" not in _log_since_restart(operator, "steady")


def _log_since_restart(operator: OperatorProcess, name: str) -> str:
    text = operator.log_text()
    marker = text.rfind("vaultbridge running")
    return "\n".join(line for line in text[marker:].splitlines() if name in line)


# --- other lease shapes ------------------------------------------------------------------------


def test_non_renewable_lease_is_reissued_at_the_renewal_point(db: DB) -> None:
    """PKI with generate_lease gives a real, non-renewable lease; POST with params."""
    mount = f"pkilease-{db.app.ns}"
    bao = db.bao
    bao.must("POST", f"sys/mounts/{mount}", {"type": "pki", "config": {"max_lease_ttl": "1h"}})
    try:
        bao.must(
            "POST",
            f"{mount}/root/generate/internal",
            {"common_name": "lease-ca", "key_type": "ec", "key_bits": 256, "ttl": "1h"},
        )
        bao.must(
            "POST",
            f"{mount}/roles/app",
            {"allow_any_name": True, "generate_lease": True, "ttl": "6s", "key_type": "ec"},
        )
        policy = bao.must("GET", f"sys/policies/acl/{db.app.vault.role}")["data"]["policy"]
        policy += f'\npath "{mount}/issue/app" {{ capabilities = ["update"] }}\n'
        bao.must("PUT", f"sys/policies/acl/{db.app.vault.role}", {"policy": policy})
        db.app.create(
            PLURAL,
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultDynamicSecret",
                "metadata": {"name": "cert-lease"},
                "spec": {
                    "vaultAuthRef": "default",
                    "mount": mount,
                    "path": "issue/app",
                    "params": {"common_name": "lease.test"},
                    "destination": {"name": "cert-lease", "create": True},
                },
            },
        )
        db.app.wait_condition("cert-lease", "SecretSynced", "True", plural=PLURAL)
        first = db.app.secret_data("cert-lease") or {}
        assert first.get("serial_number") and "BEGIN CERTIFICATE" in first["certificate"]
        status = db.status("cert-lease")
        assert status["secretLease"]["renewable"] is False
        assert 4 <= status["secretLease"]["duration"] <= 6  # PKI rounds the TTL down
        assert status["secretLease"]["id"].startswith(f"{mount}/issue/app/")
        cond = db.app.condition(PLURAL, "cert-lease", "LeaseRenewal")
        assert cond is not None and cond["reason"] == "NotRenewable", cond

        def reissued() -> dict[str, str] | None:
            data = db.app.secret_data("cert-lease") or {}
            return data if data.get("serial_number") not in (None, first["serial_number"]) else None

        wait_for(reissued, 60, "a new certificate at the renewal point of the 6 s lease")

        # Before the old lease ends, by the times recorded: the operator's issue time of the new
        # lease against the old certificate's expiry as Vault set it (not a stopwatch in here).
        def reissue_recorded() -> dict[str, Any] | None:
            now = db.status("cert-lease")
            return now if now["secretLease"]["id"] != status["secretLease"]["id"] else None

        new_status = wait_for(reissue_recorded, 30, "the new lease in the status")
        assert new_status["lastRenewalTime"] < int(first["expiration"]), (new_status, first)
        assert new_status["lastRenewalTime"] >= status["lastRenewalTime"] + int(
            status["secretLease"]["duration"] * 0.67 * 0.8
        ), "re-issued before the renewal point's window"
    finally:
        db.app.admin.request("DELETE", crd_path(PLURAL, db.app.ns, "cert-lease"))
        wait_for(lambda: db.app.get(PLURAL, "cert-lease") is None, 20, "cert-lease deleted")
        bao.call("DELETE", f"sys/mounts/{mount}")


def test_deleted_destination_gets_new_credentials(db: DB) -> None:
    db.role("app", default_ttl="1h", max_ttl="2h")
    db.vds("recreate")
    first = db.wait_synced("recreate")
    first_lease = db.status("recreate")["secretLease"]["id"]
    db.app.admin.request("DELETE", f"/api/v1/namespaces/{db.app.ns}/secrets/recreate")

    def recreated() -> dict[str, str] | None:
        data = db.app.secret_data("recreate") or {}
        return data if data.get("username") not in (None, first["username"]) else None

    second = wait_for(recreated, 20, "the Secret recreated with new credentials")
    assert db.can_login(second)
    assert db.status("recreate")["secretLease"]["id"] != first_lease


@pytest.mark.both_servers
def test_static_role_credentials_follow_vault_rotation(db: DB) -> None:
    user = f"static_{db.app.ns.replace('-', '_')}"
    code, out = db.pg.login(
        "postgres", PG_SUPERUSER_PASSWORD, f"CREATE ROLE \"{user}\" LOGIN PASSWORD 'initial-pw'"
    )
    assert code == 0, out
    db.bao.must(
        "POST",
        f"{db.mount}/static-roles/rotated",
        {"db_name": "pg", "username": user, "rotation_period": "8s"},
    )
    db.app.create(
        PLURAL,
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultDynamicSecret",
            "metadata": {"name": "static"},
            "spec": {
                "vaultAuthRef": "default",
                "mount": db.mount,
                "path": "static-creds/rotated",
                "allowStaticCreds": True,
                "destination": {"name": "static", "create": True},
            },
        },
    )
    first = db.wait_synced("static")
    assert first["username"] == user
    assert db.can_login(first)
    status = db.status("static")
    assert status["secretLease"]["id"] == ""
    meta = status["staticCredsMetaData"]
    assert meta["rotationPeriod"] == 8 and 0 <= meta["ttl"] <= 8
    assert meta["lastVaultRotation"] > 0

    def rotated() -> dict[str, str] | None:
        data = db.app.secret_data("static") or {}
        return data if data.get("password") not in (None, first["password"]) else None

    second = wait_for(rotated, 25, "the password after Vault's rotation")
    assert db.can_login(second)
    assert not db.can_login(first), "the old password was rotated away in PostgreSQL"
    assert (
        db.status("static")["staticCredsMetaData"]["lastVaultRotation"] > meta["lastVaultRotation"]
    )


def test_no_credential_in_logs_events_or_status(db: DB, operator: OperatorProcess) -> None:
    db.role("app", default_ttl="6s", max_ttl="1h")
    db.vds("quiet")
    data = db.wait_synced("quiet")
    reconciles = operator.metric("vaultbridge_reconciles_total", kind="VaultDynamicSecret")
    # Let two renewals happen (debug logging of the renewal path).
    first = db.status("quiet")["lastRenewalTime"]
    wait_for(lambda: db.status("quiet").get("lastRenewalTime", 0) > first, 10, "a renewal")
    second = db.status("quiet")["lastRenewalTime"]
    wait_for(lambda: db.status("quiet").get("lastRenewalTime", 0) > second, 10, "a renewal")
    # Steady renewals cost a few reconciles each (the timer, our own status patch coming
    # back), not a busy loop. Other tests' objects may still be winding down: generous bound.
    spent = operator.metric("vaultbridge_reconciles_total", kind="VaultDynamicSecret") - reconciles
    assert spent < 10, spent
    text = operator.log_text()
    for value in (data["password"],):
        assert value not in text
        assert value not in json.dumps(db.status("quiet"))
        for event in db.app.events("quiet"):
            assert value not in event["message"]


def test_lease_revoked_behind_our_back_is_replaced(db: DB) -> None:
    db.role("app", default_ttl="6s", max_ttl="1h")
    db.vds("gone")
    first = db.wait_synced("gone")
    lease_id = db.status("gone")["secretLease"]["id"]
    db.bao.must("PUT", "sys/leases/revoke", {"lease_id": lease_id})
    assert not db.can_login(first)

    # The next renewal (~4 s after issue) finds the lease gone and issues new credentials.
    def replaced() -> dict[str, str] | None:
        data = db.app.secret_data("gone") or {}
        return data if data.get("username") not in (None, first["username"]) else None

    second = wait_for(replaced, 15, "new credentials after the lease was revoked")
    assert db.can_login(second)
    event = db.app.wait_event("gone", "LeaseRenewalFailed")
    assert lease_id in event["message"]
    assert db.status("gone")["secretLease"]["id"] != lease_id


def test_response_without_lease_is_refreshed_after_refresh_after(db: DB) -> None:
    """KV v1 answers without a lease id: only refreshAfter brings a re-read."""
    db.app.vault.kv_put(f"{db.app.ns}/plain", {"token": "t-1"}, mount="kv1")
    db.app.create(
        PLURAL,
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultDynamicSecret",
            "metadata": {"name": "plain"},
            "spec": {
                "vaultAuthRef": "default",
                "mount": "kv1",
                "path": f"{db.app.ns}/plain",
                "refreshAfter": "3s",
                "destination": {"name": "plain", "create": True},
            },
        },
    )
    db.app.wait_data("plain", {"token": "t-1"})
    status = db.status("plain")
    assert status["secretLease"]["id"] == ""
    cond = db.app.condition(PLURAL, "plain", "LeaseRenewal")
    assert cond is not None and cond["reason"] == "NoLease", cond
    db.app.vault.kv_put(f"{db.app.ns}/plain", {"token": "t-2"}, mount="kv1")
    db.app.wait_data("plain", {"token": "t-2"}, timeout=60)
    # What brought it is the refreshAfter timer (no lease, no watch on Vault): the operator
    # says so in the event, and its recorded read times are one refresh period apart (the
    # window opens at 80 % of 3 s; whole seconds in the status).
    event = db.app.wait_event("plain", "SecretRotated")
    assert "(refresh)" in event["message"], event["message"]
    assert db.status("plain")["lastRenewalTime"] - status["lastRenewalTime"] >= 2
