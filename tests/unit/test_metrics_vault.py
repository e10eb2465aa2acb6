"""The Vault-side metric hooks of issue #20: logins per identity, 429s, rate, live tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaultbridge.observability import metrics


@dataclass(frozen=True)
class Key:
    auth_namespace: str
    auth_name: str
    auth_uid: str = "uid-1"


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_logins_are_counted_per_vault_auth_not_per_key() -> None:
    before = sample("vaultbridge_vault_identity_logins_total", vault_auth="ns/a", result="success")
    metrics.observe_client_key_event("login", Key("ns", "a", "uid-1"))
    metrics.observe_client_key_event("login", Key("ns", "a", "uid-2"))  # a new generation
    metrics.observe_client_key_event("token_alive", Key("ns", "a"))  # not a login
    after = sample("vaultbridge_vault_identity_logins_total", vault_auth="ns/a", result="success")
    assert after - before == 2
    metrics.observe_client_key_event("login_failed", "not-a-client-key")
    assert sample("vaultbridge_vault_identity_logins_total", vault_auth="other", result="error")


def test_429s_are_counted_and_gauges_read_at_scrape_time() -> None:
    before = sample("vaultbridge_vault_throttled_total")
    metrics.observe_vault_request("kv_read", 429, 0.01)
    metrics.observe_vault_request("kv_read", 200, 0.01)
    assert sample("vaultbridge_vault_throttled_total") - before == 1
    state = {"rate": 100.0, "tokens": 3}
    metrics.watch_vault(lambda: state["rate"], lambda: int(state["tokens"]))
    state["rate"], state["tokens"] = 14.5, 2
    assert sample("vaultbridge_vault_request_rate_limit") == 14.5
    assert sample("vaultbridge_vault_live_tokens") == 2


def test_request_series_are_looked_up_once_per_label_set(monkeypatch: Any) -> None:
    """CPU (issue #13): the per-request metrics call prometheus-client's `labels()` once per
    label set, not once per request; what is exported is unchanged."""
    calls: list[tuple[str, ...]] = []
    for metric in (metrics.KUBE_REQUESTS, metrics.KUBE_REQUEST_SECONDS):
        real = metric.labels

        def counting(*values: str, _real: Any = real) -> Any:
            calls.append(values)
            return _real(*values)

        monkeypatch.setattr(metric, "labels", counting)
    labels = {"verb": "apply", "resource": "cpu-test-widgets"}
    for _ in range(100):
        metrics.observe_kube_request("apply", "cpu-test-widgets", 200, 0.01)
    assert calls == [("apply", "cpu-test-widgets", "200"), ("apply", "cpu-test-widgets")]
    assert sample("vaultbridge_kube_requests_total", **labels, code="200") == 100
    assert sample("vaultbridge_kube_request_duration_seconds_count", **labels) == 100
