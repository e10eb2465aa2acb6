"""The operator itself is the fault: SIGKILLed in the middle of a cold sync, or churned.

- SIGKILL during the cold sync of 500 resources, with most of the work undone, then a
  restart: everything converges, every resource owns exactly one Secret, no Secret is
  orphaned or duplicated.
- Churn: 200 resources created and deleted over and over for a minute: the operator's memory
  comes back to its warmed-up baseline, per-resource metric series and queued keys are
  dropped with their objects, and the garbage collector leaves no orphan Secret.
Runs only in the fault session.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from vaultbridge.devenv.kubeapi import KubeAdmin

from .faults_support import (
    OwnOperator,
    assert_one_owned_secret_each,
    list_vss,
    managed_secrets,
    rss_kib,
    wait_all_synced,
)
from .helpers import App, wait_for
from .operator_harness import crd_path

pytestmark = [pytest.mark.integration, pytest.mark.faults]

COLD_SYNC = 500
CHURN = 200
CHURN_SECONDS = 60.0
PATHS = 20


def _body(app: App, name: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": name, "namespace": app.ns},
        "spec": {
            "vaultAuthRef": "default",
            "mount": "secret",
            "type": "kv-v2",
            "path": path,
            "destination": {"name": name, "create": True},
        },
    }


def _create_all(app: App, names: list[str]) -> None:
    def create(i_name: tuple[int, str]) -> None:
        i, name = i_name
        body = _body(app, name, f"{app.ns}/p{i % PATHS}")
        status, resp = app.admin.request("POST", crd_path("vaultstaticsecrets", app.ns), body)
        assert status == 201, resp

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, enumerate(names)))


def _delete_all(admin: KubeAdmin, ns: str, names: list[str]) -> None:
    def delete(name: str) -> None:
        status, resp = admin.request("DELETE", crd_path("vaultstaticsecrets", ns, name))
        assert status in (200, 202, 404), resp

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(delete, names))


def _put_paths(app: App) -> None:
    for i in range(PATHS):
        app.vault.kv_put(f"{app.ns}/p{i}", {"value": f"p{i}"})


def test_sigkill_during_cold_sync_then_restart_converges_without_duplicates(
    fault_app: App, own_operator: OwnOperator
) -> None:
    app = fault_app
    _put_paths(app)
    names = [f"cold-{i:03d}" for i in range(COLD_SYNC)]
    _create_all(app, names)
    own_operator.start()
    # Let it get some of the way, then pull the plug without any chance to clean up.
    wait_for(
        lambda: len(managed_secrets(app.admin, app.ns)) >= COLD_SYNC // 10,
        180,
        "the cold sync to be under way",
    )
    own_operator.stop_with(signal.SIGKILL)
    at_kill = len(managed_secrets(app.admin, app.ns))
    assert at_kill < COLD_SYNC, "the cold sync finished before the kill: raise COLD_SYNC"

    own_operator.start()
    wait_all_synced(app.admin, app.ns, COLD_SYNC, 300)
    assert_one_owned_secret_each(app.admin, app.ns)
    secrets = {s["metadata"]["name"]: s for s in managed_secrets(app.admin, app.ns)}
    assert sorted(secrets) == names
    for i, name in enumerate(names):
        assert app.secret_data(name)["value"] == f"p{i % PATHS}"  # type: ignore[index]
    print(f"cold sync: {at_kill}/{COLD_SYNC} Secrets written when SIGKILLed; converged after")


def test_churn_leaks_no_memory_metrics_or_secrets(
    fault_app: App, own_operator: OwnOperator
) -> None:
    app = fault_app
    _put_paths(app)
    op = own_operator.start()
    pid = own_operator.pid()

    def settle() -> None:
        wait_for(lambda: not list_vss(app.admin, app.ns), 120, "all resources gone")
        wait_for(lambda: not managed_secrets(app.admin, app.ns), 180, "no orphan Secret left")
        wait_for(
            lambda: op.metric("vaultbridge_queue_depth", kind="VaultStaticSecret") == 0,
            60,
            "an empty work queue",
        )
        time.sleep(2)

    def cycle(n: int) -> None:
        names = [f"churn-{n}-{i:03d}" for i in range(CHURN)]
        _create_all(app, names)
        _delete_all(app.admin, app.ns, names)

    # Warm-up: the first cycle fills caches, connection pools and allocator arenas.
    cycle(0)
    settle()
    baseline = rss_kib(pid)
    started = time.monotonic()
    cycles = 0
    while time.monotonic() - started < CHURN_SECONDS:
        cycles += 1
        cycle(cycles)
    settle()
    after = rss_kib(pid)
    print(f"churn: {cycles} cycles of {CHURN}; RSS {baseline} KiB → {after} KiB")
    assert cycles >= 2
    assert after - baseline < 16 * 1024, f"RSS grew from {baseline} to {after} KiB"
    # Every per-resource series went with its object.
    leftover = [
        line
        for line in op.metrics().splitlines()
        if f'namespace="{app.ns}"' in line and line.startswith("vaultbridge_resource_")
    ]
    assert leftover == [], leftover[:5]
    assert op.proc is not None and op.proc.poll() is None
