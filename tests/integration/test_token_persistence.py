"""Vault tokens survive operator restarts: persisted, MAC-checked, optionally Transit-encrypted.

Each test runs its own operator processes (restarted with stop/start) on objects labelled
for it alone, so the session `operator` never reconciles them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.persistence.token_store import (
    AUTH_ANNOTATION,
    COMPONENT_LABEL,
    COMPONENT_VALUE,
)

from .dynamic_support import DB
from .helpers import App, OwnApp, wait_for
from .operator_harness import (
    OPERATOR_NAMESPACE,
    TEST_OPERATOR_LABEL,
    OperatorProcess,
    Postgres,
    crd_path,
    dump,
    ensure_operator_namespace,
    start_operator,
)

pytestmark = pytest.mark.integration

LOGINS = "vaultbridge_vault_logins_total"


def record_of(secret: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(secret["data"]["record"])))


def token_accessor(app: App, token: str) -> str:
    resp = app.vault.bao.must("POST", "auth/token/lookup", {"token": token})
    return str(resp["data"]["accessor"])


@pytest.fixture
def own(devenv: DevState, kube_admin: KubeAdmin, namespace: str, crds_installed: None) -> OwnApp:
    ensure_operator_namespace(kube_admin, devenv)
    return OwnApp(devenv, kube_admin, namespace)


@pytest.fixture
def running(own: OwnApp) -> Iterator[list[OperatorProcess]]:
    """The test's operator processes; every one still running is stopped at the end."""
    procs: list[OperatorProcess] = []
    yield procs
    for op in procs:
        op.stop()
    # No operator of this test is left to purge its entries when the namespace goes.
    for entry in own.entries():
        own.admin.request(
            "DELETE", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{entry['metadata']['name']}"
        )


def restart(op: OperatorProcess) -> None:
    assert op.stop() == 0, op.log_tail()
    op.start()


# --- lease continuity ------------------------------------------------------------------------


def test_restart_adopts_the_persisted_token_and_keeps_the_lease(
    own: OwnApp, running: list[OperatorProcess], pg: Postgres
) -> None:
    own.setup_own_auth()
    db = DB(own, pg)
    try:
        # The lease must outlive the restart, however slow the machine is (a restart took 28 s
        # under two CPU hogs and outlived a 15 s lease, which the new process then rightly
        # re-issued): 5 minutes, renewed every 30 s (renewalPercent 10), so a renewal by the
        # restarted process is still seen soon without the lease's life depending on speed.
        db.role("app", default_ttl="300s", max_ttl="1h")
        own.vault.kv_put(f"{own.ns}/cfg", {"v": "1"}, mount="kv1")
        op = own.operator()
        running.append(op)
        db.vds("creds", renewalPercent=10)
        own.vss("cfg", mount="kv1", type="kv-v1", path=f"{own.ns}/cfg", refreshAfter="2s")
        data = db.wait_synced("creds")
        own.wait_data("cfg", {"v": "1"})
        lease_id = db.status("creds")["secretLease"]["id"]
        entry = own.wait_entry()
        record = record_of(entry)
        assert entry["type"] == "Opaque"
        assert record["identity"]["consumerNamespace"] == own.ns
        assert token_accessor(own, record["token"]) == record["accessor"]
        assert op.metric(LOGINS) == 1

        restart(op)
        before = db.status("creds").get("lastRenewalTime", 0)
        # The renewal after the restart runs with the adopted token; the lease is the same.
        wait_for(
            lambda: db.status("creds").get("lastRenewalTime", 0) > before,
            180,
            "a lease renewal by the restarted operator",
        )
        assert db.status("creds")["secretLease"]["id"] == lease_id, dump(db.status("creds"))
        ttl = db.lease_ttl(lease_id)
        assert ttl is not None and ttl > 0
        assert db.can_login(data)
        own.vault.kv_put(f"{own.ns}/cfg", {"v": "2"}, mount="kv1")
        own.wait_data("cfg", {"v": "2"})
        # No login at all in the new process: every identity reused its persisted token.
        assert op.metric(LOGINS) == 0, op.log_tail()
        assert record_of(own.wait_entry())["accessor"] == record["accessor"]
        log = op.log_text()
        assert "adopted the persisted Vault token" in log
        assert record["token"] not in log
    finally:
        # The revoke finalizer needs a running operator.
        if not running:
            running.append(own.operator())
        elif running[0].proc is None:
            running[0].start()
        own.admin.request("DELETE", crd_path("vaultdynamicsecrets", own.ns, "creds"))
        wait_for(
            lambda: own.get("vaultdynamicsecrets", "creds") is None, 30, "VaultDynamicSecret gone"
        )
        db.close()


# --- tampering, purge --------------------------------------------------------------------------


def test_tampered_entry_is_rejected_and_replaced_and_stale_entries_are_purged(
    own: OwnApp, running: list[OperatorProcess]
) -> None:
    own.setup_own_auth()
    own.vault.kv_put(f"{own.ns}/app", {"password": "pw-1"})
    op = own.operator()
    running.append(op)
    own.vss("app", refreshAfter="2s")
    own.wait_data("app", {"password": "pw-1"})
    entry = own.wait_entry()
    old = record_of(entry)
    op.stop()

    # Flip one byte of the record (the accessor's first character) and write it back.
    raw = bytearray(base64.b64decode(entry["data"]["record"]))
    at = raw.index(b'"accessor":"') + len(b'"accessor":"')
    raw[at] ^= 0x01
    entry["data"]["record"] = base64.b64encode(bytes(raw)).decode()
    status, resp = own.admin.request(
        "PUT", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{entry['metadata']['name']}", entry
    )
    assert status == 200, dump(resp)
    # An entry whose VaultAuth was deleted while no operator ran: swept at start.
    orphan = f"vaultbridge-token-orphan-{own.ident}"
    status, resp = own.admin.request(
        "POST",
        f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": orphan,
                "labels": {COMPONENT_LABEL: COMPONENT_VALUE},
                "annotations": {AUTH_ANNOTATION: f"{own.ns}/deleted-meanwhile"},
            },
            "data": entry["data"],
        },
    )
    assert status == 201, dump(resp)

    op.start()
    wait_for(
        lambda: (
            own.admin.request("GET", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{orphan}")[0]
            == 404
        ),
        30,
        "the orphaned entry swept",
    )
    own.vault.kv_put(f"{own.ns}/app", {"password": "pw-2"})
    own.wait_data("app", {"password": "pw-2"})
    assert op.metric(LOGINS) == 1, op.log_tail()

    def rewritten() -> dict[str, Any] | None:
        found = own.entries()
        return found[0] if found and record_of(found[0])["accessor"] != old["accessor"] else None

    new = record_of(wait_for(rewritten, 30, "the entry rewritten after the new login"))
    assert token_accessor(own, new["token"]) == new["accessor"]
    log = op.log_text()
    assert "rejected: MAC mismatch" in log
    assert old["token"] not in log and new["token"] not in log

    # A new generation of the VaultAuth makes the old entry stale: it is deleted.
    status, resp = own.admin.request_patch(  # type: ignore[attr-defined]
        crd_path("vaultauths", own.ns, "default"), {"spec": {"allowedNamespaces": [own.ns]}}
    )
    assert status == 200, dump(resp)
    generation = str(resp["metadata"]["generation"])

    def regenerated() -> bool:
        found = own.entries()
        return len(found) == 1 and record_of(found[0])["identity"]["vaultAuthGeneration"] == (
            generation
        )

    wait_for(regenerated, 30, "only the new generation's entry left")
    # The VaultAuth is deleted: its entries go too.
    own.admin.request("DELETE", crd_path("vaultauths", own.ns, "default"))
    wait_for(lambda: not own.entries(), 30, "entries of the deleted VaultAuth purged")


# --- Transit -----------------------------------------------------------------------------------


@pytest.mark.both_servers
def test_transit_encrypted_entry_survives_a_restart(
    own: OwnApp, running: list[OperatorProcess]
) -> None:
    mount = f"transit-{own.ns}"
    bao = own.vault.bao
    bao.must("POST", f"sys/mounts/{mount}", {"type": "transit"})
    try:
        bao.must("POST", f"{mount}/keys/tokens", {})
        own.setup_own_auth(storageEncryption={"mount": mount, "keyName": "tokens"})
        # The role's own token encrypts and decrypts its entry.
        policy = bao.must("GET", f"sys/policies/acl/{own.vault.role}")["data"]["policy"]
        policy += (
            f'\npath "{mount}/encrypt/tokens" {{ capabilities = ["update"] }}'
            f'\npath "{mount}/decrypt/tokens" {{ capabilities = ["update"] }}\n'
        )
        bao.must("PUT", f"sys/policies/acl/{own.vault.role}", {"policy": policy})
        own.vault.kv_put(f"{own.ns}/app", {"password": "pw-1"})
        op = own.operator()
        running.append(op)
        own.vss("app", refreshAfter="2s")
        own.wait_data("app", {"password": "pw-1"})
        entry = own.wait_entry()
        record = record_of(entry)
        assert "token" not in record
        assert record["ciphertext"].startswith("vault:v1:")
        assert record["transit"] == {"mount": mount, "keyName": "tokens"}
        plain = bao.must("POST", f"{mount}/decrypt/tokens", {"ciphertext": record["ciphertext"]})
        token = base64.b64decode(plain["data"]["plaintext"]).decode()
        assert token_accessor(own, token) == record["accessor"]
        assert token not in json.dumps(entry)
        assert base64.b64encode(token.encode()).decode() not in json.dumps(entry)

        restart(op)
        own.vault.kv_put(f"{own.ns}/app", {"password": "pw-2"})
        own.wait_data("app", {"password": "pw-2"})
        # One login, only to decrypt; the stored token is the one in use (entry unchanged).
        assert op.metric(LOGINS) == 1, op.log_tail()
        assert "adopted the persisted Vault token" in op.log_text()
        assert (
            own.wait_entry()["metadata"]["resourceVersion"] == entry["metadata"]["resourceVersion"]
        )
        # Proof that the adopted token serves the reads: revoke it, and the operator has to
        # log in again (and stores the new token, encrypted).
        bao.must("POST", "auth/token/revoke-accessor", {"accessor": record["accessor"]})
        own.vault.kv_put(f"{own.ns}/app", {"password": "pw-3"})
        own.wait_data("app", {"password": "pw-3"})
        assert op.metric(LOGINS) == 2, op.log_tail()
        fresh = record_of(
            wait_for(
                lambda: next(
                    (e for e in own.entries() if record_of(e)["accessor"] != record["accessor"]),
                    None,
                ),
                30,
                "the new token persisted",
            )
        )
        assert "token" not in fresh and fresh["ciphertext"].startswith("vault:v1:")
        assert token not in op.log_text()
    finally:
        for op in running:
            op.stop()
        bao.call("DELETE", f"sys/mounts/{mount}")


def test_persistence_can_be_turned_off(own: OwnApp, running: list[OperatorProcess]) -> None:
    own.setup_own_auth()
    own.vault.kv_put(f"{own.ns}/app", {"password": "pw-1"})
    op = start_operator(
        own.devenv,
        "--resource-selector",
        f"{TEST_OPERATOR_LABEL}={own.ident}",
        "--persist-tokens",
        "false",
    )
    running.append(op)
    own.vss("app")
    own.wait_data("app", {"password": "pw-1"})
    assert own.entries() == []
    op.stop()
    own.vault.kv_put(f"{own.ns}/app", {"password": "pw-2"})
    op.start()
    # The new process syncs everything once at start, with a new login.
    own.wait_data("app", {"password": "pw-2"})
    assert op.metric(LOGINS) == 1
    assert own.entries() == []
