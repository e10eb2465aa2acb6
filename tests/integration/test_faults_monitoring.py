"""The shipped alerting rules and Grafana dashboard against a real Prometheus and operator.

A Prometheus built from its Go module scrapes an operator this test starts. The dashboard test
runs every panel query and requires series; the alert test seals Vault, waits for
`VaultbridgeVaultSealed`, `VaultbridgeResourceNotReady` and, for a certificate whose rotation
is due during the outage, `VaultbridgeLeaseOrCertificateExpiringSoon` to fire, unseals it and
waits for all three to resolve. The rules are the shipped file with every `for:` and range
window divided by ten (5m → 30 s: `prometheus_harness.scaled_rules`), evaluated every second;
expressions and thresholds are unchanged. Runs in the fault session (`make test-faults`): it
seals its Vault.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.openbao import read_unseal_key
from vaultbridge.devenv.prometheus import ensure_prometheus

from .faults_support import OwnOperator, bao, wait_all_synced
from .helpers import App, deployment, wait_for
from .operator_harness import crd_path
from .pki_support import PKI
from .prometheus_harness import RULES, PrometheusServer, dashboard_queries, scaled_rules

pytestmark = [pytest.mark.integration, pytest.mark.faults]

#: Shipped durations divided by this in the test's copy of the rules (5m → 30 s).
SCALE = 10


@pytest.fixture(scope="module")
def prometheus_dir() -> Path:
    return ensure_prometheus(log=lambda msg: print(msg, file=sys.stderr, flush=True))


def _pki_with_kv_policy(app: App) -> PKI:
    """A PKI mount (role `web`) whose issue path the namespace's Vault role may use, next to
    its KV paths."""
    pki = PKI(app)
    policy = f"""
path "secret/data/{app.ns}/*" {{ capabilities = ["read"] }}
path "secret/metadata/{app.ns}/*" {{ capabilities = ["read"] }}
path "{pki.mount}/issue/web" {{ capabilities = ["update"] }}
"""
    app.vault.bao.must("PUT", f"sys/policies/acl/{app.vault.role}", {"policy": policy})
    return pki


def test_every_dashboard_query_returns_series(
    fault_app: App, own_operator: OwnOperator, prometheus_dir: Path, tmp_path: Path
) -> None:
    app = fault_app
    # A static secret that rolls a Deployment when its value changes, and a certificate (a
    # leased kind, for the expiry panel): every panel has something to show.
    pki = _pki_with_kv_policy(app)
    deployment(app, "web")
    app.vault.kv_put(f"{app.ns}/db", {"password": "v1"})
    app.vss("db", refreshAfter="2s", rolloutRestartTargets=[{"kind": "Deployment", "name": "web"}])
    pki.vps("tls", commonName="tls.example.com", ttl="1h")
    op = own_operator.start()
    server = PrometheusServer(
        prometheus_dir, tmp_path / "prometheus", [f"127.0.0.1:{op.metrics_port}"], "groups: []\n"
    )
    server.start()
    try:
        app.wait_data("db", {"password": "v1"}, timeout=120)
        app.vault.kv_put(f"{app.ns}/db", {"password": "v2"})
        app.wait_data("db", {"password": "v2"}, timeout=120)
        pki.wait_synced("tls", timeout=120)
        wait_for(
            lambda: op.metric("vaultbridge_rollout_restarts_total", result="success") >= 1,
            120,
            "a rollout restart",
        )
        empty: dict[str, str] = {}

        def all_return_series() -> bool:
            empty.clear()
            for title, expr in dashboard_queries("30s"):
                if not server.query(expr):
                    empty[title] = expr
            return not empty

        wait_for(all_return_series, 180, "every dashboard query returns series")
    finally:
        server.stop()
        # Gone while the operator still runs (it owns the object's finalizer, if any).
        app.admin.request("DELETE", crd_path("vaultpkisecrets", app.ns, "tls"))
        wait_for(lambda: app.get("vaultpkisecrets", "tls") is None, 120, "tls deleted")
    assert not empty, empty
    assert own_operator.stop() == 0, own_operator.op.log_tail()


def test_vault_sealed_alert_fires_then_resolves(
    fault_app: App,
    own_operator: OwnOperator,
    devenv: DevState,
    prometheus_dir: Path,
    tmp_path: Path,
) -> None:
    app = fault_app
    names = [f"mon-{i}" for i in range(6)]
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": name})
        app.vss(name, refreshAfter="2s")
    # And a certificate due for rotation 30 s after issue (2 min TTL, 90 s offset): while Vault
    # is sealed its rotation fails, so it is "close to expiry and not being renewed".
    pki = _pki_with_kv_policy(app)
    op = own_operator.start()
    wait_all_synced(app.admin, app.ns, len(names), 120)
    server = PrometheusServer(
        prometheus_dir,
        tmp_path / "prometheus",
        [f"127.0.0.1:{op.metrics_port}"],
        scaled_rules(RULES.read_text(), SCALE),
    )
    server.start()
    root = bao(devenv)
    unseal_key = devenv.vault_unseal_key or read_unseal_key(devenv.log_file("vault"))
    assert unseal_key, "the dev server printed no unseal key"
    try:
        wait_for(lambda: server.query('up{job="vaultbridge"} == 1'), 120, "Prometheus scrapes it")
        # Healthy: the alerts this test is about are quiet, with the operator scraped.
        wait_for(lambda: server.query("vaultbridge_resource_ready"), 60, "ready series")
        assert not server.active("VaultbridgeVaultSealed")
        assert not server.active("VaultbridgeResourceNotReady", namespace=app.ns)

        pki.vps("tls", commonName="tls.example.com", ttl="2m", expiryOffset="90s")
        pki.wait_synced("tls", timeout=120)
        root.must("PUT", "sys/seal")
        try:
            fired = wait_for(
                lambda: server.firing("VaultbridgeVaultSealed"), 300, "VaultbridgeVaultSealed"
            )
            assert fired[0]["labels"]["severity"] == "critical", fired
            # The matching alert, not its neighbour: a sealed Vault answers (503).
            assert not server.firing("VaultbridgeVaultUnreachable")
            not_ready = wait_for(
                lambda: server.firing("VaultbridgeResourceNotReady", namespace=app.ns),
                300,
                "VaultbridgeResourceNotReady for the namespace's resources",
            )
            assert {a["labels"]["name"] for a in not_ready} <= set(names), not_ready
            assert {a["labels"]["kind"] for a in not_ready} <= {
                "VaultStaticSecret",
                "VaultPKISecret",
            }
            expiring = wait_for(
                lambda: server.firing(
                    "VaultbridgeLeaseOrCertificateExpiringSoon", namespace=app.ns, name="tls"
                ),
                300,
                "VaultbridgeLeaseOrCertificateExpiringSoon for the certificate",
            )
            assert expiring[0]["labels"]["kind"] == "VaultPKISecret", expiring
        finally:
            status, resp = root.call("PUT", "sys/unseal", {"key": unseal_key})
        assert status == 200 and resp.get("sealed") is False, resp

        # Back: both resolve (leave the active list) once Vault answers again.
        wait_for(
            lambda: not server.active("VaultbridgeVaultSealed"),
            300,
            "VaultbridgeVaultSealed resolved",
        )
        wait_for(
            lambda: not server.active("VaultbridgeResourceNotReady", namespace=app.ns),
            300,
            "VaultbridgeResourceNotReady resolved",
        )
        wait_for(
            lambda: (
                not server.active("VaultbridgeLeaseOrCertificateExpiringSoon", namespace=app.ns)
            ),
            300,
            "VaultbridgeLeaseOrCertificateExpiringSoon resolved (the certificate was rotated)",
        )
    finally:
        server.stop()
        app.admin.request("DELETE", crd_path("vaultpkisecrets", app.ns, "tls"))
        wait_for(lambda: app.get("vaultpkisecrets", "tls") is None, 120, "tls deleted")
    assert own_operator.stop() == 0, op.log_tail()
