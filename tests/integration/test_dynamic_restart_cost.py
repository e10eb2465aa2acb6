"""What an operator restart costs in Vault requests with 100 VaultDynamicSecrets.

The goal: a restart issues no credentials, renews no lease outside its renewal window and
logs in nowhere (tokens are persisted). Counted twice: by the new process's own request
metrics (every Vault call goes through one counter, by operation), and independently on the
OpenBao side from state a request would change — the number of leases under the role's
prefix (one per issue), each lease's `last_renewal` and the number of tokens (one per login).
OpenBao 2.x refuses to enable audit devices through the API, so an audit log of the shared
dev server is not available to a test.

The test runs its own operator process on objects labelled for it alone.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin

from .dynamic_support import DB
from .helpers import OwnApp, wait_for
from .operator_harness import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    Postgres,
    crd_path,
    dump,
    ensure_operator_namespace,
)

pytestmark = pytest.mark.integration

PLURAL = "vaultdynamicsecrets"
COUNT = 100
REQUESTS = "vaultbridge_vault_requests_total"
RECONCILES = "vaultbridge_reconciles_total"
LOGINS = "vaultbridge_vault_logins_total"


@pytest.fixture
def own(devenv: DevState, kube_admin: KubeAdmin, namespace: str, crds_installed: None) -> OwnApp:
    ensure_operator_namespace(kube_admin, devenv)
    return OwnApp(devenv, kube_admin, namespace)


def _synced(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def ok(item: dict[str, Any]) -> bool:
        status = item.get("status") or {}
        if status.get("lastGeneration") != item["metadata"].get("generation"):
            return False
        return any(
            c.get("type") == "SecretSynced" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )

    return [i for i in items if ok(i)]


def _requests_by_operation(op: OperatorProcess) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in op.metrics().splitlines():
        if line.startswith(REQUESTS + "{"):
            labels, _, value = line.rpartition(" ")
            operation = labels.split('operation="', 1)[1].split('"', 1)[0]
            counts[operation] = counts.get(operation, 0) + int(float(value))
    return counts


def test_restart_with_100_dynamic_secrets_costs_no_issue_renewal_or_login(
    own: OwnApp, pg: Postgres
) -> None:
    own.setup_own_auth()
    db = DB(own, pg)
    bao = own.vault.bao
    op: OperatorProcess | None = None
    try:
        # A 1 h lease: nothing is due for ~40 min, so any renewal or issue after the restart
        # would be caused by the restart itself.
        db.role("app", default_ttl="1h", max_ttl="24h")
        op = own.operator()
        for i in range(COUNT):
            db.vds(f"creds-{i:03d}")

        def all_synced() -> list[dict[str, Any]] | None:
            _, listed = own.admin.request("GET", crd_path(PLURAL, own.ns))
            items = list(listed.get("items") or [])
            return items if len(_synced(items)) == COUNT else None

        before = wait_for(all_synced, 150, f"{COUNT} VaultDynamicSecrets synced")
        leases = {i["metadata"]["name"]: i["status"]["secretLease"]["id"] for i in before}
        assert len(set(leases.values())) == COUNT, dump(leases)
        prefix = f"{db.mount}/creds/app/"
        lease_keys_before = _lease_keys(bao, prefix)
        assert len(lease_keys_before) == COUNT
        tokens_before = _token_accessors(bao)

        assert op.stop() == 0, op.log_tail()
        op.start()

        # The new process has looked at every object once (plus a margin for anything a
        # little late, such as a second event per object).
        wait_for(
            lambda: op is not None and op.metric(RECONCILES, kind="VaultDynamicSecret") >= COUNT,
            120,
            f"{COUNT} reconciles by the restarted operator",
        )
        time.sleep(3)
        requests = _requests_by_operation(op)
        logins = int(op.metric(LOGINS))
        reconciles = int(op.metric(RECONCILES, kind="VaultDynamicSecret"))
        print(
            f"\nrestart with {COUNT} VaultDynamicSecrets: {reconciles} reconciles, "
            f"Vault requests by operation {requests or '{}'} "
            f"(total {sum(requests.values())}), logins {logins}"
        )

        # Client side: no credential request, no lease renewal, no login.
        assert requests.get("dynamic_read", 0) == 0, requests
        assert requests.get("dynamic_write", 0) == 0, requests
        assert requests.get("renew_lease", 0) == 0, requests
        assert logins == 0, op.log_tail()
        assert not any(k.startswith("login") for k in requests), requests

        # Server side: the same 100 leases, none renewed, no new token.
        assert _lease_keys(bao, prefix) == lease_keys_before
        renewed = [
            lease
            for lease in leases.values()
            if bao.must("PUT", "sys/leases/lookup", {"lease_id": lease})["data"].get("last_renewal")
        ]
        assert renewed == [], renewed
        assert _token_accessors(bao) - tokens_before == set()
        _, listed = own.admin.request("GET", crd_path(PLURAL, own.ns))
        after = {i["metadata"]["name"]: i["status"]["secretLease"]["id"] for i in listed["items"]}
        assert after == leases
    finally:
        for i in range(COUNT):
            own.admin.request("DELETE", crd_path(PLURAL, own.ns, f"creds-{i:03d}"))
        if op is not None:
            op.stop()
        for entry in own.entries():
            own.admin.request(
                "DELETE",
                f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{entry['metadata']['name']}",
            )
        db.close()


def _lease_keys(bao: BaoAdmin, prefix: str) -> set[str]:
    status, resp = bao.call("LIST", f"sys/leases/lookup/{prefix}")
    if status == 404:
        return set()
    assert status == 200, dump(resp)
    return set(resp["data"]["keys"])


def _token_accessors(bao: BaoAdmin) -> set[str]:
    """The tokens OpenBao holds: every login creates one."""
    resp = bao.must("LIST", "auth/token/accessors")
    return set(resp["data"]["keys"])
