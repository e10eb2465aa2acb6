"""Scrape a running operator: every metric docs/operations.md names exists, probes answer, and
the per-resource ready gauge goes back to 0 when a resource stops syncing."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from .deploy_support import Release, Workload
from .helpers import wait_for
from .operator_harness import REPO, OperatorProcess

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "operations.md"

# Exercised by the scenario below, so they must have samples, not just a TYPE line.
WITH_SAMPLES = {
    "vaultbridge_reconciles_total",
    "vaultbridge_reconcile_duration_seconds",
    "vaultbridge_queue_depth",
    "vaultbridge_queue_wait_seconds",
    "vaultbridge_vault_requests_total",
    "vaultbridge_vault_request_duration_seconds",
    "vaultbridge_vault_logins_total",
    "vaultbridge_client_cache_lookups_total",
    "vaultbridge_kube_requests_total",
    "vaultbridge_kube_request_duration_seconds",
    "vaultbridge_resource_ready",
    "vaultbridge_resource_last_sync_timestamp_seconds",
    "vaultbridge_secret_writes_total",
    "vaultbridge_rollout_restarts_total",
    "vaultbridge_leader",
}


def documented_metrics() -> dict[str, str]:
    """name -> type, from the table under `## Metrics`."""
    text = DOC.read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(vaultbridge_[a-z_]+)` \| (\w+) \|", section, re.MULTILINE))


def ready_gauge(op: OperatorProcess, namespace: str, name: str) -> float | None:
    """`vaultbridge_resource_ready` of one VaultStaticSecret (None: no such series)."""
    wanted = f'kind="VaultStaticSecret",name="{name}",namespace="{namespace}"'
    for line in op.metrics().splitlines():
        if line.startswith("vaultbridge_resource_ready{"):
            labels, _, value = line.partition("} ")
            if sorted(labels.split("{", 1)[1].split(",")) == sorted(wanted.split(",")):
                return float(value)
    return None


def get(op: OperatorProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_documented_metrics_and_probes_of_a_running_operator(release: Release) -> None:
    documented = documented_metrics()
    assert len(documented) >= 15, documented
    assert set(WITH_SAMPLES) <= set(documented)

    release.install()
    app = Workload(release)
    app.allow()
    op = release.operator()
    op.start()
    assert get(op, "/healthz") == (200, "ok")
    assert get(op, "/readyz")[0] == 200

    app.deployment("web")
    app.vault.kv_put(f"{app.ns}/db", {"password": "v1"})
    app.static(
        "db", "db", refreshAfter="1s", rolloutRestartTargets=[{"kind": "Deployment", "name": "web"}]
    )
    app.wait_data("db", {"password": "v1"})
    app.vault.kv_put(f"{app.ns}/db", {"password": "v2"})
    app.wait_data("db", {"password": "v2"})
    wait_for(lambda: ready_gauge(op, app.ns, "db") == 1, 30, "ready=1")
    wait_for(
        lambda: op.metric("vaultbridge_rollout_restarts_total", result="success") >= 1,
        30,
        "rollout restart counted",
    )

    scrape = op.metrics()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", scrape, re.MULTILINE))
    samples = {
        m.group(1)
        for m in re.finditer(r"^([a-z_]+?)(?:_bucket|_count|_sum)?[{ ]", scrape, re.MULTILINE)
    }
    for name, kind in documented.items():
        # The TYPE line names a counter with or without `_total`, by client version.
        exported = types.get(name) or types.get(name.removesuffix("_total"))
        assert exported == kind, f"{name}: documented as {kind}, exported as {exported}"
        if name in WITH_SAMPLES:
            assert name in samples, f"{name} has no samples"
    assert op.metric("vaultbridge_leader") == 1
    assert not [t for t in types if t.endswith("_created")], "per-series _created gauges"
    assert op.metric("vaultbridge_vault_logins_total", result="success") >= 1
    assert op.metric("vaultbridge_reconciles_total", kind="VaultStaticSecret") >= 2

    # A resource that stops syncing goes back to 0 (and its Secret stays as it was).
    app.patch_vss("db", {"spec": {"path": f"{app.ns}/missing"}})
    wait_for(lambda: ready_gauge(op, app.ns, "db") == 0, 30, "ready=0")
    assert (app.secret_data("db") or {}).get("password") == "v2"
    assert op.stop() == 0, op.log_tail()
