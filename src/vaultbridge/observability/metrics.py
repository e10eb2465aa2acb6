"""Prometheus metrics, all prefixed `vaultbridge_`.

Kept beside the core: the engine, Vault and Kubernetes layers expose hooks and counters, and
this module turns them into metrics, so none of them imports prometheus_client.
Labels never carry secret values; per-resource series use kind/namespace/name only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

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
VAULT_IDENTITY_LOGINS = Counter(
    "vaultbridge_vault_identity_logins",
    "Vault logins per identity (the VaultAuth namespace/name) and result (success, error).",
    ["vault_auth", "result"],
    registry=REGISTRY,
)
VAULT_LIVE_TOKENS = Gauge(
    "vaultbridge_vault_live_tokens",
    "Vault tokens the operator holds now (current and retired ones not yet expired).",
    registry=REGISTRY,
)
VAULT_TOKEN_CHECKS = Counter(
    "vaultbridge_vault_token_checks",
    "lookup-self checks after a 403, by verdict: alive (a policy denies) or gone (replaced).",
    ["verdict"],
    registry=REGISTRY,
)
VAULT_TOKEN_REVOCATIONS = Counter(
    "vaultbridge_vault_token_revocations",
    "revoke-self of tokens the operator replaced or stopped using, by result.",
    ["result"],
    registry=REGISTRY,
)
VAULT_THROTTLED = Counter(
    "vaultbridge_vault_throttled",
    "Answers 429 (rate-limit quota) received from Vault; each lowers the request rate.",
    registry=REGISTRY,
)
VAULT_RATE = Gauge(
    "vaultbridge_vault_request_rate_limit",
    "The operator's current Vault request rate limit (requests/s; 0 = unlimited): "
    "--vault-qps, lowered while Vault answers 429.",
    registry=REGISTRY,
)
FINALIZERS_RELEASED_UNREVOKED = Counter(
    "vaultbridge_finalizers_released_without_revocation",
    "Finalizers released although the lease or certificate could not be revoked (it expires "
    "at its TTL), by kind and reason.",
    ["kind", "reason"],
    registry=REGISTRY,
)
DRIFT_REPAIRS = Counter(
    "vaultbridge_drift_repairs",
    "Rewrites of a destination Secret that drifted from what the operator wrote, per object "
    "(one series per object that ever drifted, removed when it is deleted, like "
    "vaultbridge_resource_ready).",
    ["kind", "namespace", "name"],
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


class _ResourceSeries:
    """What `ResourceGauge.labels(...)` returns: `set` writes the one value."""

    __slots__ = ("_key", "_values")

    def __init__(self, values: dict[tuple[str, str, str], float], key: tuple[str, str, str]):
        self._values = values
        self._key = key

    def set(self, value: float) -> None:
        self._values[self._key] = float(value)


class ResourceGauge(Collector):
    """A gauge with one series per resource (labels kind, namespace, name), held as floats.

    prometheus_client's labelled `Gauge` keeps one child object per series (a `Gauge` with its
    own lock and value holder): ~0.7 KiB each, measured with tracemalloc — with two such
    gauges per object, 2.9 MiB at 2,000 objects and 14 MiB at 10,000. Here a series is one
    dict entry (~0.15 KiB). The exposition is the same (same name, help, type, labels,
    values); `labels(...).set(v)` and `remove(...)` behave as on a `Gauge` (removing an
    absent series does nothing). Scrapes run in another thread: `collect` iterates over
    a copy (`dict.copy` is one C call under the GIL).
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._values: dict[tuple[str, str, str], float] = {}
        registry.register(self)

    def labels(self, kind: str, namespace: str, name: str) -> _ResourceSeries:
        return _ResourceSeries(self._values, (kind, namespace, name))

    def remove(self, kind: str, namespace: str, name: str) -> None:
        self._values.pop((kind, namespace, name), None)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            self._name, self._documentation, labels=["kind", "namespace", "name"]
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for labels, value in self._values.copy().items():
            family.add_metric(labels, value)
        yield family


RESOURCE_READY = ResourceGauge(
    "vaultbridge_resource_ready",
    "1 while the resource's last reconcile delivered its Secret, 0 after a failed one.",
    REGISTRY,
)
# A timestamp rather than "seconds left": it stays true between reconciles, and alerts compute
# the remaining time with `- time()`.
RESOURCE_EXPIRY = ResourceGauge(
    "vaultbridge_resource_expiry_timestamp_seconds",
    "Unix time at which the resource's Vault lease or certificate expires (leased kinds only).",
    REGISTRY,
)
RESOURCE_LAST_SYNC = ResourceGauge(
    "vaultbridge_resource_last_sync_timestamp_seconds",
    "Unix time of the resource's last successful sync.",
    REGISTRY,
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


# --- per namespace (tenant): what fair queuing shares, see docs/operations.md -----------------
# One series per namespace that has had work, and no `name` label: a cluster's namespaces, not
# its objects, bound the count. A deleted namespace's series are dropped (forget_namespace).
NAMESPACE_QUEUE_WAIT_SECONDS = Histogram(
    "vaultbridge_namespace_queue_wait_seconds",
    "Time a key of this namespace waited in the work queue before a reconcile started.",
    ["namespace"],
    buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 15, 60),
    registry=REGISTRY,
)
NAMESPACE_QUEUE_WAIT_TURNS = Histogram(
    "vaultbridge_namespace_queue_wait_turns",
    "Keys of any namespace handed to a worker while a key of this namespace waited ready: "
    "what fair queuing bounds (about one per namespace with ready work), whatever the speed.",
    ["namespace"],
    buckets=(0, 1, 2, 4, 8, 16, 64, 256, 1024),
    registry=REGISTRY,
)
NAMESPACE_VAULT_REQUESTS = Counter(
    "vaultbridge_namespace_vault_requests",
    "Requests to Vault made on behalf of this namespace's objects.",
    ["namespace"],
    registry=REGISTRY,
)
NAMESPACE_VAULT_THROTTLED_SECONDS = Counter(
    "vaultbridge_namespace_vault_throttled_seconds",
    "Seconds this namespace's Vault requests waited for their share of --vault-qps.",
    ["namespace"],
    registry=REGISTRY,
)
REFRESH_CLAMPED = Counter(
    "vaultbridge_refresh_clamped",
    "Reconciles whose refreshAfter was raised to --min-refresh-after, by kind and namespace.",
    ["kind", "namespace"],
    registry=REGISTRY,
)


class _QueueDepths(Collector):
    """`vaultbridge_namespace_queue_depth{kind,namespace}`, read from the queues on scrape
    (only namespaces with ready keys appear, so an idle cluster exports nothing)."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], dict[str, int]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "vaultbridge_namespace_queue_depth",
            "Keys of this namespace ready in the work queue of this kind.",
            labels=["kind", "namespace"],
        )
        for kind, depths in list(self.sources.items()):
            for namespace, depth in sorted(depths().items()):
                family.add_metric([kind, namespace], float(depth))
        yield family


_QUEUE_DEPTHS = _QueueDepths()
REGISTRY.register(_QUEUE_DEPTHS)


def register_queue_depths(kind: str, depths: Callable[[], dict[str, int]]) -> None:
    """Export `depths()` (namespace -> ready keys) of the `kind` queue on every scrape."""
    _QUEUE_DEPTHS.sources[kind] = depths


def forget_namespace(namespace: str) -> None:
    """Drop a deleted namespace's per-namespace series."""
    for metric in (
        NAMESPACE_QUEUE_WAIT_SECONDS,
        NAMESPACE_QUEUE_WAIT_TURNS,
        NAMESPACE_VAULT_REQUESTS,
        NAMESPACE_VAULT_THROTTLED_SECONDS,
    ):
        with contextlib.suppress(KeyError):
            metric.remove(namespace)
    for kind in list(_QUEUE_DEPTHS.sources):
        with contextlib.suppress(KeyError):
            REFRESH_CLAMPED.remove(kind, namespace)


def forget_resource(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted resource's series so the registry does not grow without bound."""
    for series in (RESOURCE_READY, RESOURCE_LAST_SYNC, RESOURCE_EXPIRY, DRIFT_REPAIRS):
        with contextlib.suppress(KeyError):
            series.remove(kind, namespace, name)


M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def child(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, looked up once per label set.

    prometheus-client's ``labels()`` validates and locks on every call (~5 µs; a synced
    object passed through ~10 of them: its requests, its reconcile, its write). Only for
    metrics whose series are never removed (requests, reconciles, writes: a bounded set of
    label values, a few dozen series in all); the per-resource and per-namespace series,
    which ``forget_*`` removes, keep calling ``labels()``.
    """
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


def observe_kube_request(verb: str, resource: str, code: int, seconds: float) -> None:
    """`KubeClient.add_request_hook` target."""
    child(KUBE_REQUESTS, verb, resource, str(code)).inc()
    child(KUBE_REQUEST_SECONDS, verb, resource).observe(seconds)


def observe_client_cache_event(name: str) -> None:
    """`ClientCache(on_event=...)` target: token renewals, checks and revocations (logins are
    counted per method by the controllers and per identity by `observe_client_key_event`)."""
    if name == "renewal":
        VAULT_TOKEN_RENEWALS.labels("success").inc()
    elif name == "renewal_failed":
        VAULT_TOKEN_RENEWALS.labels("error").inc()
    elif name == "token_alive":
        VAULT_TOKEN_CHECKS.labels("alive").inc()
    elif name == "token_gone":
        VAULT_TOKEN_CHECKS.labels("gone").inc()
    elif name == "token_revoked":
        VAULT_TOKEN_REVOCATIONS.labels("success").inc()
    elif name == "token_revoke_failed":
        VAULT_TOKEN_REVOCATIONS.labels("error").inc()


def identity_label(key: Hashable) -> str:
    """A low-cardinality label for a client-cache key: its VaultAuth's namespace/name (the key's
    uid and generation would make a new series per spec change)."""
    namespace = getattr(key, "auth_namespace", None)
    name = getattr(key, "auth_name", None)
    return f"{namespace}/{name}" if namespace and name else "other"


def observe_client_key_event(name: str, key: Hashable) -> None:
    """`ClientCache(on_key_event=...)` target: logins per identity."""
    if name == "login":
        VAULT_IDENTITY_LOGINS.labels(identity_label(key), "success").inc()
    elif name == "login_failed":
        VAULT_IDENTITY_LOGINS.labels(identity_label(key), "error").inc()


def observe_vault_request(operation: str, status: str | int, seconds: float) -> None:
    """`Transport(on_request=...)` target."""
    child(VAULT_REQUESTS, operation, str(status)).inc()
    child(VAULT_REQUEST_SECONDS, operation).observe(seconds)
    if status == 429:
        VAULT_THROTTLED.inc()


def watch_vault(rate: Callable[[], float], live_tokens: Callable[[], int]) -> None:
    """Gauges read at scrape time: the adaptive request rate and the tokens held."""
    VAULT_RATE.set_function(rate)
    VAULT_LIVE_TOKENS.set_function(lambda: float(live_tokens()))
