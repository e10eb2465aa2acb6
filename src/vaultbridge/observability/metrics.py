"""Prometheus metrics, all prefixed `vaultbridge_`.

Kept beside the core: the engine, Vault and Kubernetes layers expose hooks and counters, and
this module turns them into metrics, so none of them imports prometheus_client.
Labels never carry secret values; per-resource series use kind/namespace/name only.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# `*_created` gauges double the series of every counter and histogram and nobody alerts on them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "vaultbridge_reconciles",
    "Reconciles by kind and result (success, requeue, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "vaultbridge_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "vaultbridge_queue_depth", "Keys waiting in the work queue.", ["kind"], registry=REGISTRY
)
QUEUE_WAIT_SECONDS = Histogram(
    "vaultbridge_queue_wait_seconds",
    "Time a key waited in the queue before a worker took it.",
    ["kind"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60),
    registry=REGISTRY,
)
VAULT_REQUESTS = Counter(
    "vaultbridge_vault_requests",
    "Requests to Vault by operation and HTTP status (or error class).",
    ["operation", "status"],
    registry=REGISTRY,
)
VAULT_REQUEST_SECONDS = Histogram(
    "vaultbridge_vault_request_duration_seconds",
    "Latency of requests to Vault.",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
    registry=REGISTRY,
)
VAULT_LOGINS = Counter(
    "vaultbridge_vault_logins",
    "Vault logins by auth method and result.",
    ["method", "result"],
    registry=REGISTRY,
)
VAULT_TOKEN_RENEWALS = Counter(
    "vaultbridge_vault_token_renewals",
    "Vault token renewals by result.",
    ["result"],
    registry=REGISTRY,
)
CLIENT_CACHE = Counter(
    "vaultbridge_client_cache_lookups",
    "Vault client cache lookups (hit or miss).",
    ["result"],
    registry=REGISTRY,
)
KUBE_REQUEST_SECONDS = Histogram(
    "vaultbridge_kube_request_duration_seconds",
    "Latency of requests to the Kubernetes API (watches: until the stream ended).",
    ["verb", "resource"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300),
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    "vaultbridge_kube_requests",
    "Requests to the Kubernetes API by verb, resource and status code.",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
RESOURCE_READY = Gauge(
    "vaultbridge_resource_ready",
    "1 while the resource's last reconcile delivered its Secret, 0 after a failed one.",
    ["kind", "namespace", "name"],
    registry=REGISTRY,
)
# A timestamp rather than "seconds left": it stays true between reconciles, and alerts compute
# the remaining time with `- time()`.
RESOURCE_EXPIRY = Gauge(
    "vaultbridge_resource_expiry_timestamp_seconds",
    "Unix time at which the resource's Vault lease or certificate expires (leased kinds only).",
    ["kind", "namespace", "name"],
    registry=REGISTRY,
)
RESOURCE_LAST_SYNC = Gauge(
    "vaultbridge_resource_last_sync_timestamp_seconds",
    "Unix time of the resource's last successful sync.",
    ["kind", "namespace", "name"],
    registry=REGISTRY,
)
SECRET_WRITES = Counter(
    "vaultbridge_secret_writes",
    "Destination Secret writes by kind and cause (create, vault-change, drift, spec-change).",
    ["kind", "cause"],
    registry=REGISTRY,
)
ROLLOUT_RESTARTS = Counter(
    "vaultbridge_rollout_restarts",
    "Rollout restarts of Deployments/StatefulSets/DaemonSets by target kind and result "
    "(success, skipped, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "vaultbridge_leader",
    "1 while this replica holds the leader Lease (or runs without leader election), else 0.",
    registry=REGISTRY,
)
AUDIT_STREAM_ENTRIES = Counter(
    "vaultbridge_audit_stream_entries",
    "Audit stream entries by what became of them: received, matched (a write to a watched "
    "path), ignored, dropped (reason: prefix, malformed, overload, too_large, limiter_full), "
    "enqueued, deferred (rate-limited), resync (every opted-in object re-read after a gap).",
    ["result", "reason"],
    registry=REGISTRY,
)
AUDIT_STREAM_LIVE = Gauge(
    "vaultbridge_audit_stream_live",
    "1 while the operator's heartbeat comes back through the audit stream from every Vault "
    "server it uses, else 0 (instant updates paused; refreshAfter continues).",
    registry=REGISTRY,
)


def observe_audit_stream(result: str, reason: str) -> None:
    """`AuditChangeSource(observe=...)` target."""
    AUDIT_STREAM_ENTRIES.labels(result, reason).inc()


def forget_resource(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted resource's series so the registry does not grow without bound."""
    for gauge in (RESOURCE_READY, RESOURCE_LAST_SYNC, RESOURCE_EXPIRY):
        with contextlib.suppress(KeyError):
            gauge.remove(kind, namespace, name)


def observe_kube_request(verb: str, resource: str, code: int, seconds: float) -> None:
    """`KubeClient.add_request_hook` target."""
    KUBE_REQUESTS.labels(verb, resource, str(code)).inc()
    KUBE_REQUEST_SECONDS.labels(verb, resource).observe(seconds)


def observe_client_cache_event(name: str) -> None:
    """`ClientCache(on_event=...)` target: token renewals (logins are counted per method)."""
    if name == "renewal":
        VAULT_TOKEN_RENEWALS.labels("success").inc()
    elif name == "renewal_failed":
        VAULT_TOKEN_RENEWALS.labels("error").inc()
