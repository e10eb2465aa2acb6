"""The API server goes away and comes back on the same etcd and port.

While it is down, a value changes in Vault and a VaultStaticSecret's spec changes (written
straight into etcd, as a second API server of an HA control plane would have stored it). When
it is back, the operator's watches must resume by themselves and apply both changes, and new
objects and hand deletions must be handled again. Runs only in the fault session.
"""

from __future__ import annotations

import time

import pytest

from vaultbridge.devenv import environment, etcd
from vaultbridge.devenv.environment import DevState

from .faults_support import CANARY, OwnOperator, assert_no_canary, wait_all_synced
from .helpers import App, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_api_server_restart_watches_recover_and_changes_made_meanwhile_apply(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = fault_app
    names = [f"api-{i}" for i in range(6)]
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": f"{name}-v1", "canary": CANARY})
        app.vss(name, refreshAfter="2s")
    app.vault.kv_put(f"{app.ns}/moved", {"value": "moved-here"})
    op = own_operator.start()
    wait_all_synced(app.admin, app.ns, len(names), 90)

    key = etcd.custom_resource_key("vaultbridge.dev", "vaultstaticsecrets", app.ns, "api-1")
    environment.stop_component(devenv, "kube-apiserver")
    try:
        # A Vault change and a spec change, both while the operator cannot watch anything.
        app.vault.kv_put(f"{app.ns}/api-0", {"value": "api-0-v2"})
        stored = etcd.get_json(devenv, key)
        assert stored is not None
        stored["spec"]["path"] = f"{app.ns}/moved"
        stored["metadata"]["generation"] = int(stored["metadata"]["generation"]) + 1
        etcd.put_json(devenv, key, stored)
        time.sleep(5)  # long enough for watches to break and reconnects to fail
        assert op.proc is not None and op.proc.poll() is None, "operator died with the API server"
    finally:
        environment.start_component(devenv, "kube-apiserver")

    app.wait_data("api-0", {"value": "api-0-v2"}, timeout=120)
    app.wait_data("api-1", {"value": "moved-here"}, timeout=120)
    app.wait_condition("api-1", "SecretSynced", "True", timeout=60)
    obj = app.get("vaultstaticsecrets", "api-1")
    assert obj is not None and obj["status"]["lastGeneration"] == obj["metadata"]["generation"]

    # The watches are live again: a new object, a deleted Secret, a new Vault value.
    app.vault.kv_put(f"{app.ns}/after", {"value": "after-v1"})
    app.vss("after")
    app.wait_data("after", {"value": "after-v1"}, timeout=60)
    app.admin.request("DELETE", f"/api/v1/namespaces/{app.ns}/secrets/api-2")
    app.wait_data("api-2", {"value": "api-2-v1"}, timeout=60)
    app.vault.kv_put(f"{app.ns}/api-3", {"value": "api-3-v2"})
    app.wait_data("api-3", {"value": "api-3-v2"}, timeout=60)
    wait_for(lambda: op.proc is not None and op.proc.poll() is None, 1, "operator alive")
    assert_no_canary(app, op.log_text())
