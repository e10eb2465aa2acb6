"""Issue #20, the sealed half of "every finalizer ends": a VaultDynamicSecret with
`revoke: true` deleted while Vault is sealed keeps its finalizer and retries (a sealed Vault
may come back within the bound, and then the lease is revoked), and is gone once
`--finalizer-timeout` has passed since its deletionTimestamp, with a `LeaseLeftToExpire`
Warning; a namespace holding such an object is deleted the same way.

Runs only in the fault session (`make test-faults`): it seals that session's Vault.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.openbao import read_unseal_key

from .dynamic_support import DB, PLURAL
from .faults_support import OwnOperator, bao
from .helpers import App, wait_for
from .operator_harness import Postgres, crd_path, dump

pytestmark = [pytest.mark.integration, pytest.mark.faults]

#: The operator's --finalizer-timeout here (default 300 s): short, so the test does not wait
#: five minutes, long enough that the retries while sealed are seen first.
FINALIZER_TIMEOUT = 20


@pytest.fixture
def db(fault_app: App, pg: Postgres) -> Iterator[DB]:
    d = DB(fault_app, pg)
    d.role("app", "10m", "1h")
    yield d
    d.close()


def _deleted(app: App, name: str) -> bool:
    return app.get(PLURAL, name) is None


def test_deletion_while_sealed_ends_after_the_finalizer_timeout(
    db: DB, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = db.app
    own_operator.start("--finalizer-timeout", str(FINALIZER_TIMEOUT))
    db.vds("sealed", revoke=True)
    db.vds("in-namespace", revoke=True)
    db.wait_synced("sealed", timeout=60)
    db.wait_synced("in-namespace", timeout=60)
    lease = db.status("sealed")["secretLease"]["id"]
    obj = app.get(PLURAL, "sealed") or {}
    assert "vaultbridge.dev/revoke-lease" in obj["metadata"].get("finalizers", []), dump(obj)

    root = bao(devenv)
    unseal_key = devenv.vault_unseal_key or read_unseal_key(devenv.log_file("vault"))
    assert unseal_key, "the dev server printed no unseal key"
    root.must("PUT", "sys/seal")
    try:
        status, resp = app.admin.request("DELETE", crd_path(PLURAL, app.ns, "sealed"))
        assert status == 200, dump(resp)
        # First it retries: a Warning naming the failure and the time left, object still there
        # (the finalizer is held while the bound has not passed).
        retrying = wait_for(
            lambda: next(
                (e for e in app.events("sealed") if "--finalizer-timeout" in e["message"]),
                None,
            ),
            60,
            "a retry event while Vault is sealed",
        )
        assert retrying["type"] == "Warning", retrying
        assert "retrying for" in retrying["message"], retrying["message"]
        held = app.get(PLURAL, "sealed")
        assert held is not None and held["metadata"].get("deletionTimestamp"), dump(held or {})
        # Then, past the bound, the finalizer is released: the deletion completes.
        wait_for(lambda: _deleted(app, "sealed"), 180, "the object deleted after the bound")
        event = app.wait_event("sealed", "LeaseLeftToExpire", timeout=30)
        assert event["type"] == "Warning"
        assert "not revoked" in event["message"], event["message"]

        # A namespace holding such an object is deleted too, Vault still sealed.
        status, resp = app.admin.request("DELETE", f"/api/v1/namespaces/{app.ns}")
        assert status == 200, dump(resp)
        wait_for(
            lambda: app.admin.request("GET", f"/api/v1/namespaces/{app.ns}")[0] == 404,
            240,
            f"namespace {app.ns} deleted while Vault is sealed",
        )
    finally:
        status, resp = root.call("PUT", "sys/unseal", {"key": unseal_key})
        assert status == 200 and resp.get("sealed") is False, resp
    # Left to expire, not revoked: Vault still knows the lease after the unseal.
    wait_for(lambda: db.lease_ttl(lease) is not None, 60, "the lease still known to Vault")
