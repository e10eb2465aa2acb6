"""Prometheus metrics, all prefixed `vaultbridge_`.

Kept beside the core: the engine, Vault and Kubernetes layers expose hooks and counters, and
this module turns them into metrics, so none of them imports prometheus_client.
Labels never carry secret values; per-resource series use kind/namespace/name only.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
KUBE_REQUESTS = Counter(
    "vaultbridge_kube_requests",
    "Requests to the Kubernetes API by verb, resource and status code.",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
RESOURCE_SYNCED = Gauge(
    "vaultbridge_resource_synced",
    "1 when the resource's last reconcile delivered its Secret, else 0.",
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


def forget_resource(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted resource's series so the registry does not grow without bound."""
    for gauge in (RESOURCE_SYNCED, RESOURCE_LAST_SYNC):
        with contextlib.suppress(KeyError):
            gauge.remove(kind, namespace, name)
