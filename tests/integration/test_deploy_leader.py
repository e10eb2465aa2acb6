"""Leader election: two operator processes, one Lease, a SIGKILLed leader.

Both processes run as the chart's ServiceAccount with the chart's RBAC (see
test_deploy_rbac.py) and handle only this test's labelled objects.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime

import pytest

from .deploy_support import Release, Workload
from .helpers import wait_for
from .operator_harness import OperatorProcess, dump

pytestmark = pytest.mark.integration

LEASE_DURATION = 8.0  # Release.operator(): --leader-election-lease-duration 8, retry 1


def _micro(text: str) -> float:
    """Unix seconds of a Lease's metav1.MicroTime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _leader(op: OperatorProcess) -> bool:
    return op.metric("vaultbridge_leader") == 1.0


def test_standby_takes_over_after_sigkill_without_double_writes(release: Release) -> None:
    release.install()
    app = Workload(release)
    app.allow()
    first = release.operator()
    first.start()
    wait_for(lambda: _leader(first), 30, "first operator leads")
    second = release.operator()
    second.start()  # ready as a standby: caches synced, role known

    app.vault.kv_put(f"{app.ns}/db", {"password": "v1"})
    app.static("db", "db", refreshAfter="1s")
    app.wait_data("db", {"password": "v1"})
    app.wait_condition("db", "SecretSynced", "True")
    time.sleep(3)  # a few refreshes: the standby must stay idle through them
    assert not _leader(second)
    assert second.metric("vaultbridge_reconciles_total") == 0, second.metrics()
    assert second.metric("vaultbridge_secret_writes_total") == 0
    writes_by_first = first.metric("vaultbridge_secret_writes_total")
    assert writes_by_first == 1, first.metrics()  # created once, then refreshes write nothing
    secret_rv = (app.secret("db") or {})["metadata"]["resourceVersion"]

    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{app.ns}/leases/lease-{release.ident}"
    _, dead = app.admin.request("GET", lease_path)  # the dead leader's last renewal, final now
    wait_for(lambda: _leader(second), 180, "standby takes over")
    # The standby took the Lease only after the record had gone unrenewed for a full lease
    # duration (on its own clock, so compare the times the operators recorded in the Lease:
    # the dead leader's last renewTime and the new holder's acquireTime). Load only makes the
    # gap longer.
    _, taken = app.admin.request("GET", lease_path)
    assert taken["spec"]["holderIdentity"] != dead["spec"]["holderIdentity"], dump(taken)
    gap = _micro(taken["spec"]["acquireTime"]) - _micro(dead["spec"]["renewTime"])
    assert gap >= LEASE_DURATION - 1.0, (gap, dump(dead), dump(taken))

    # The new leader converges without rewriting the unchanged Secret...
    wait_for(lambda: second.metric("vaultbridge_reconciles_total") > 0, 30, "reconciles")
    assert (app.secret("db") or {})["metadata"]["resourceVersion"] == secret_rv
    assert second.metric("vaultbridge_secret_writes_total") == 0
    # ...and follows the next Vault change, writing it exactly once.
    app.vault.kv_put(f"{app.ns}/db", {"password": "v2"})
    app.wait_data("db", {"password": "v2"})
    time.sleep(2)
    assert second.metric("vaultbridge_secret_writes_total") == 1, second.metrics()

    _, lease = app.admin.request("GET", lease_path)
    assert int(lease["spec"].get("leaseTransitions") or 0) >= 1, dump(lease)
    assert second.stop() == 0, second.log_tail()
    # A graceful stop hands the Lease back at once.
    _, lease = app.admin.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{app.ns}/leases/lease-{release.ident}"
    )
    assert not lease["spec"].get("holderIdentity"), dump(lease)
