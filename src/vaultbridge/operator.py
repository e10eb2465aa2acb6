"""`vaultbridge run`: wire the clients, informers and controllers together and run them."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import dataclasses
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from vaultbridge.api.kinds import (
    KINDS,
    SECRET_TRANSFORMATION,
    VAULT_AUTH,
    VAULT_CONNECTION,
    VAULT_PATH_POLICIES,
    VAULT_STATIC_SECRET,
)
from vaultbridge.api.labels import LEADER_LABEL, managed_by_selector
from vaultbridge.controllers.auth import VaultAuthReconciler
from vaultbridge.controllers.auth_global import VaultAuthGlobalReconciler
from vaultbridge.controllers.connection import VaultConnectionReconciler
from vaultbridge.controllers.context import OperatorContext
from vaultbridge.controllers.dynamic_secret import VaultDynamicSecretReconciler
from vaultbridge.controllers.hmac_key import load_or_create_hmac_key
from vaultbridge.controllers.inject import INJECTED_SELECTOR, pod_metadata_only
from vaultbridge.controllers.inject_admission import PodInjector
from vaultbridge.controllers.instant import attach as attach_audit_stream
from vaultbridge.controllers.instant import stream_config
from vaultbridge.controllers.path_policy import policy_source
from vaultbridge.controllers.pki_secret import VaultPKISecretReconciler
from vaultbridge.controllers.secret_data import digest_owned_secrets
from vaultbridge.controllers.static_secret import VaultStaticSecretReconciler
from vaultbridge.controllers.transformation import SecretTransformationReconciler
from vaultbridge.controllers.vault_access import VaultAccess
from vaultbridge.controllers.watches import SetupReconciler, Sources
from vaultbridge.engine import runner
from vaultbridge.engine.controller import Controller, Reconciler, Result
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.leader import LeaderElector
from vaultbridge.engine.manager import Manager
from vaultbridge.engine.pod_label import OwnPodLabel
from vaultbridge.engine.queue import Fairness, Lane
from vaultbridge.guard.addresses import AddressAllowList
from vaultbridge.guard.matching import DEFAULTS as PATH_POLICY_DEFAULTS
from vaultbridge.guard.serve import RunningWebhook, parse_hosts, start_webhook
from vaultbridge.inject.pod import AgentOptions
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.config import load_config
from vaultbridge.kube.errors import KubeError
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import NAMESPACES, PODS, SECRETS, Resource
from vaultbridge.kube.selectors import LabelMatcher, parse_selector
from vaultbridge.observability import metrics
from vaultbridge.observability.logs import configure_logging, current_resource
from vaultbridge.observability.server import ObservabilityServer
from vaultbridge.persistence.token_store import KubeTokenStore
from vaultbridge.settings import Settings
from vaultbridge.vault.cache import ClientCache
from vaultbridge.vault.connection import Transport
from vaultbridge.vault.fairshare import FairShare, current_tenant, tenant_scope
from vaultbridge.vault.ratelimit import AdaptiveRate, TokenBucket

log = logging.getLogger("vaultbridge")

Obj = dict[str, Any]


class _Instrumented:
    """Sets the log context and records metrics around a reconciler, its ``finish`` included
    (engine Result.finish: the status write that runs off the worker is still part of the
    reconcile, for its log lines and for ``vaultbridge_reconcile_duration_seconds``)."""

    def __init__(self, kind: str, inner: Reconciler) -> None:
        self.kind = kind
        self.inner = inner

    async def reconcile(self, key: ObjectKey) -> Result:
        seconds = metrics.child(metrics.RECONCILE_SECONDS, self.kind)
        start = time.perf_counter()
        with self._scope(key):
            try:
                result = await self.inner.reconcile(key)
            except BaseException:
                seconds.observe(time.perf_counter() - start)
                raise
        finish = result.finish
        if finish is None:
            seconds.observe(time.perf_counter() - start)
            return result

        async def instrumented_finish() -> None:
            with self._scope(key):
                try:
                    await finish()
                finally:
                    seconds.observe(time.perf_counter() - start)

        return dataclasses.replace(result, finish=instrumented_finish)

    @contextlib.contextmanager
    def _scope(self, key: ObjectKey) -> Iterator[None]:
        token = current_resource.set(f"{self.kind}/{key.namespace}/{key.name}")
        try:
            # The namespace is the tenant of the Vault requests this reconcile makes.
            with tenant_scope(key.namespace):
                yield
        finally:
            current_resource.reset(token)


@dataclass
class Operator:
    """``informer_manager`` runs the caches on every replica; ``manager`` runs the controllers
    (only on the leader when leader election is on); ``close`` releases the clients."""

    ctx: OperatorContext
    manager: Manager
    controllers: dict[str, Controller]
    informer_manager: Manager
    close: Callable[[], Awaitable[None]]
    access: VaultAccess | None = None


async def build_operator(settings: Settings, kube: KubeClient) -> Operator:
    hmac_key = await load_or_create_hmac_key(kube, settings.namespace, settings.hmac_key_secret)

    def on_vault_request(operation: str, status: str | int, seconds: float) -> None:
        metrics.observe_vault_request(operation, status, seconds)
        if tenant := current_tenant.get():
            metrics.NAMESPACE_VAULT_REQUESTS.labels(tenant).inc()

    def on_vault_throttled(tenant: str, seconds: float) -> None:
        if tenant:
            metrics.NAMESPACE_VAULT_THROTTLED_SECONDS.labels(tenant).inc(seconds)

    bucket = TokenBucket(settings.vault_qps, settings.vault_burst)
    # Vault's 429s lower the bucket's rate (AIMD) instead of failing objects one by one.
    adapter = AdaptiveRate(bucket)
    transport = Transport(
        rate_limiter=bucket,
        rate_adapter=adapter,
        # Fair queuing: when namespaces want more than the rate, each gets an equal turn.
        fair_share=FairShare(bucket, on_wait=on_vault_throttled) if settings.fair_queuing else None,
        on_request=on_vault_request,
    )
    # Persisted tokens keep the leases they created alive across restarts (token_store.py).
    token_store = (
        KubeTokenStore(kube, settings.namespace, hmac_key) if settings.persist_tokens else None
    )
    clients = ClientCache(
        transport,
        on_event=metrics.observe_client_cache_event,
        on_key_event=metrics.observe_client_key_event,
        store=token_store,
    )
    metrics.watch_vault(lambda: adapter.rate, lambda: clients.live_tokens)
    events = EventRecorder(kube, namespace_default=settings.namespace)
    ctx = OperatorContext(
        settings=settings,
        kube=kube,
        events=events,
        vault_transport=transport,
        clients=clients,
        hmac_key=hmac_key,
        token_store=token_store,
    )
    manager = Manager(grace_period=settings.shutdown_grace_period)
    # Caches live in their own manager so a standby replica keeps them warm while its
    # controllers wait for the Lease.
    informer_manager = Manager(grace_period=settings.shutdown_grace_period)
    # --resource-selector narrows our own kinds only (sharding, test isolation); owned
    # Secrets are matched to their owners, which a narrowed cache simply does not hold.
    selector = settings.resource_selector or None

    def informer(resource: Resource, **kwargs: Any) -> Informer:
        inf = Informer(kube, resource, **kwargs)
        ctx.informers[resource] = informer_manager.add_informer(inf)
        return inf

    namespaces = informer(NAMESPACES)
    namespaces.add_handlers(on_delete=lambda ns: metrics.forget_namespace(objects.name(ns)))
    fairness = _fairness(settings, namespaces)

    access = VaultAccess(ctx)
    own = {k.kind: informer(k.resource, label_selector=selector) for k in KINDS}
    sources = Sources(
        ctx=ctx,
        access=access,
        connections=own[VAULT_CONNECTION.kind],
        auths=own[VAULT_AUTH.kind],
        transformations=own[SECRET_TRANSFORMATION.kind],
        # Only the Secrets we created: a cluster's other Secrets never enter our memory.
        # ... and of those only the key names and a MAC of the values (destination.py).
        owned_secrets=informer(
            SECRETS,
            label_selector=managed_by_selector(),
            transform=digest_owned_secrets(hmac_key),
        ),
        # Path policies (cluster-scoped) and Namespaces (labels, for namespaceSelector): read
        # by every secret reconcile (controllers/path_policy.py) and by the admission webhook.
        path_policies=informer(VAULT_PATH_POLICIES),
        namespaces=namespaces,
        own=own,
        # Inject mode: only pods the webhook mutated, metadata only (controllers/inject.py).
        injected_pods=informer(PODS, label_selector=INJECTED_SELECTOR, transform=pod_metadata_only),
    )
    reconcilers: list[SetupReconciler] = [
        VaultConnectionReconciler(ctx, access),
        VaultAuthGlobalReconciler(ctx),
        VaultAuthReconciler(ctx, access),
        SecretTransformationReconciler(ctx),
        VaultStaticSecretReconciler(ctx, access),
        VaultDynamicSecretReconciler(ctx, access),
        VaultPKISecretReconciler(ctx, access),
    ]
    controllers: dict[str, Controller] = {}

    def add_controller(reconciler: SetupReconciler) -> None:
        kind = reconciler.kind
        wait = metrics.QUEUE_WAIT_SECONDS.labels(kind)
        ctl = Controller(
            kind,
            _Instrumented(kind, reconciler),
            workers=settings.workers,
            queue_wait_hook=lambda seconds, _priority: wait.observe(seconds),
            fairness=fairness,
        )
        ctl.add_reconcile_hook(_reconcile_metrics)
        metrics.QUEUE_DEPTH.labels(kind).set_function(lambda: float(len(ctl.queue)))
        if fairness is not None:
            metrics.register_queue_depths(kind, ctl.queue.depth_by_tenant)
        controllers[kind] = manager.add_controller(ctl)
        # Each reconciler declares what it watches, next to the code that reads it.
        reconciler.setup_with_manager(ctl, sources)

    for reconciler in reconcilers:
        add_controller(reconciler)
    if settings.audit_stream_listen:  # instant updates (controllers/instant.py)
        ctx.instant_updates = attach_audit_stream(
            ctx,
            access,
            controllers[VAULT_STATIC_SECRET.kind],
            own[VAULT_STATIC_SECRET.kind],
            own[VAULT_CONNECTION.kind],
        )

    async def close_clients() -> None:
        await events.close()
        await clients.close()
        await transport.close()

    return Operator(ctx, manager, controllers, informer_manager, close_clients, access)


def critical_matcher(settings: Settings) -> LabelMatcher | None:
    """The --critical-namespace-selector as a function of labels (``ValueError`` if bad)."""
    if not settings.critical_namespace_selector.strip():
        return None
    return parse_selector(settings.critical_namespace_selector)


def _fairness(settings: Settings, namespaces: Informer) -> Fairness[ObjectKey] | None:
    """Tenant = namespace; lane = CRITICAL for namespaces the platform team's selector picks.

    Namespace labels are set by whoever may edit Namespaces (the platform team), not by a
    tenant who can only create our objects in it, so a tenant cannot grant itself the lane.
    """
    if not settings.fair_queuing:
        return None
    matcher = critical_matcher(settings)

    def wait_hook(tenant: str, seconds: float, turns: int) -> None:
        if tenant:
            metrics.NAMESPACE_QUEUE_WAIT_SECONDS.labels(tenant).observe(seconds)
            metrics.NAMESPACE_QUEUE_WAIT_TURNS.labels(tenant).observe(turns)

    lane_of = None
    if matcher is not None:
        critical = matcher

        def lane_of(key: ObjectKey) -> Lane:
            ns = namespaces.store.get(ObjectKey("", key.namespace)) if key.namespace else None
            return (
                Lane.CRITICAL
                if ns is not None and critical(objects.labels(ns))
                else (Lane.ORDINARY)
            )

    return Fairness(
        tenant_of=lambda key: key.namespace,
        lane_of=lane_of,
        critical_share=settings.critical_share,
        wait_hook=wait_hook,
    )


def _reconcile_metrics(kind: str, _key: ObjectKey, _seconds: float, outcome: str) -> None:
    metrics.child(metrics.RECONCILES, kind, outcome).inc()


# asyncio gives every TLS connection a 256 KiB read buffer, allocated and zeroed when the
# connection opens and kept for its life. The operator holds ~15-30 TLS connections to the API
# server (one per watch, plus the request pool): 4-7 MiB of resident memory, the largest
# fixed item in a tracemalloc diff of a synced operator (issue #13). 32 KiB still takes two
# maximum-size TLS records (16 KiB each) per read; larger responses (list pages) just take
# more reads of the same socket. Nothing else changes. (64 KiB until 2026-12-01: with 16
# workers, each able to hand its status write off, more requests are in flight at once and
# more pooled connections stay open; peak RSS of a cold sync of 2,000 went from 80.3-81.2 to
# 78.8-79.0 MiB with 32 KiB, docs/performance.md.)
_TLS_READ_BUFFER = 32 * 1024


def _smaller_tls_read_buffers() -> None:
    setattr(asyncio.sslproto.SSLProtocol, "max_size", _TLS_READ_BUFFER)  # noqa: B010


# CPython's cycle collector runs its young generation every 700 net container allocations and
# moves what survives towards the old one, which a full collection then traverses whole. This
# process builds a large, long-lived world once (modules, pydantic schemas, the first lists of
# every informer) and then mostly allocates short-lived request objects that reference counting
# frees anyway, so most of the collector's work is re-proving the world alive. A cold sync of
# 2,000 objects spent 0.6-1.05 s in the collector with the defaults (~260 young, 24 middle and
# 2 full collections, measured with gc.callbacks) and 0.20 s with the two settings below
# (14 / 1 / 0), ~0.2-0.4 ms of CPU per object (docs/performance.md). The price: cyclic garbage
# may wait for up to 10,000 allocations (kilobytes to a few MiB) before it is freed, and a
# frozen object is freed only by reference counting: one that later ends up in a reference
# cycle stays. The frozen world (modules, schemas, the first lists) is mostly acyclic and
# mostly lives as long as the process anyway.
_GC_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """A larger young generation (the middle and old thresholds stay CPython's)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, middle, old)


def _freeze_start_up() -> None:
    """Everything alive once the caches hold their first lists leaves the collector's
    generations for good (gc.freeze): full collections no longer traverse it."""
    gc.collect()  # the start-up's own garbage first: frozen objects are never collected
    gc.freeze()
    log.debug("moved %d start-up objects out of the cycle collector", gc.get_freeze_count())


async def _main(settings: Settings) -> int:
    if settings.path_policy_default not in PATH_POLICY_DEFAULTS:
        log.error(
            "--path-policy-default must be one of %s, not %r",
            ", ".join(PATH_POLICY_DEFAULTS),
            settings.path_policy_default,
        )
        return 2
    if settings.audit_stream_listen:
        try:
            stream_config(settings)
        except ValueError as exc:
            log.error("--audit-stream-listen: %s", exc)
            return 2
    try:
        AddressAllowList.parse(settings.allowed_vault_addresses)
    except ValueError as exc:
        log.error("--allowed-vault-addresses: %s", exc)
        return 2
    try:
        critical_matcher(settings)
    except ValueError as exc:
        log.error("--critical-namespace-selector: %s", exc)
        return 2
    if settings.critical_share < 1:
        log.error("--critical-share must be at least 1, not %d", settings.critical_share)
        return 2
    if settings.critical_namespace_selector and not settings.fair_queuing:
        log.warning("--critical-namespace-selector has no effect with --fair-queuing=false")
    try:
        config = load_config(settings.kubeconfig, settings.context)
    except KubeError as exc:
        log.error("cannot load Kubernetes configuration: %s", exc)
        return 2
    _smaller_tls_read_buffers()
    _tune_gc()
    kube = await KubeClient.create(config)
    kube.add_request_hook(metrics.observe_kube_request)
    try:
        try:
            op = await build_operator(settings, kube)
        except KubeError as exc:
            log.error(
                "cannot start: %s (does the operator namespace %r exist, and may the operator "
                "read and create Secrets in it?)",
                exc,
                settings.namespace,
            )
            return 2
        elector = _Elector.from_settings(kube, settings) if settings.leader_elect else None

        def ready() -> bool:
            return op.informer_manager.ready and (elector is None or elector.role_known)

        server = ObservabilityServer(
            settings.metrics_bind_address, settings.health_bind_address, ready=ready
        )
        await server.start()
        if op.ctx.instant_updates is not None:
            try:
                await op.ctx.instant_updates.start()
            except OSError as exc:
                log.error("cannot listen on --audit-stream-listen: %s", exc)
                await server.stop()
                return 2
        webhook = (
            await _start_webhook(settings, kube, op) if settings.webhook_bind_address else None
        )
        log.info(
            "vaultbridge running: namespace=%s workers=%d vault-qps=%s leader-elect=%s%s",
            settings.namespace,
            settings.workers,
            settings.vault_qps,
            settings.leader_elect,
            f" resource-selector={settings.resource_selector}"
            if settings.resource_selector
            else "",
        )
        try:
            return await run_until_stopped(op, elector, _leader_pod_label(settings, kube))
        finally:
            if webhook is not None:
                await webhook.stop()
            if op.ctx.instant_updates is not None:
                await op.ctx.instant_updates.stop()
            await server.stop()
    finally:
        await kube.close()
        log.info("vaultbridge stopped")


async def _start_webhook(settings: Settings, kube: KubeClient, op: Operator) -> RunningWebhook:
    """The path-policy admission webhook; it answers from the same caches as the reconciles
    and runs on every replica (admission must not wait for leadership). Inject mode's pod
    mutation is served next to it when --mutating-webhook-config-name is set."""
    injector = None
    if settings.mutating_webhook_config_name and op.access is not None:
        injector = PodInjector(op.ctx, op.access, AgentOptions(image=settings.agent_image))
    return await start_webhook(
        kube,
        policy_source(op.ctx),
        bind_address=settings.webhook_bind_address,
        namespace=settings.namespace,
        ca_secret=settings.webhook_ca_secret,
        hosts=parse_hosts(settings.webhook_hosts, settings.namespace),
        cert_dir=settings.webhook_cert_dir,
        webhook_config=settings.webhook_config_name,
        default=settings.path_policy_default,
        addresses=AddressAllowList.parse(settings.allowed_vault_addresses),
        mutating_config=settings.mutating_webhook_config_name,
        mutate_pods=injector.review if injector is not None else None,
        register_url=settings.webhook_register_url,
    )


class _Elector(LeaderElector):
    """A LeaderElector that also says when this replica knows its role (for /readyz)."""

    role_known = False

    @classmethod
    def from_settings(cls, kube: KubeClient, settings: Settings) -> _Elector:
        return cls(
            kube,
            settings.namespace,
            settings.leader_election_id,
            lease_duration=settings.leader_election_lease_duration,
            renew_deadline=settings.leader_election_renew_deadline,
            retry_period=settings.leader_election_retry_period,
        )

    def _observe(self, lease: dict[str, Any]) -> None:
        super()._observe(lease)
        self.role_known = True


def _leader_pod_label(settings: Settings, kube: KubeClient) -> OwnPodLabel | None:
    """With an audit stream, the leader labels its own Pod (POD_NAME, set by the chart from
    the downward API) so the chart's audit-stream Service reaches the replica that acts on
    the entries; without POD_NAME (out of cluster) there is no Pod to label."""
    pod_name = os.environ.get("POD_NAME")
    if not settings.audit_stream_listen or not pod_name:
        return None
    return OwnPodLabel(kube, settings.namespace, pod_name, LEADER_LABEL)


def _leading(op: Operator, pod_label: OwnPodLabel | None) -> AbstractAsyncContextManager[None]:
    """What this replica does while it leads, around its controllers (engine/runner.py)."""

    @contextlib.asynccontextmanager
    async def leading() -> AsyncIterator[None]:
        _freeze_start_up()
        metrics.LEADER.set(1)
        sweep = asyncio.create_task(_sweep_persisted_tokens(op.ctx), name="token-sweep")
        if pod_label is not None:
            await pod_label.set(True)
        try:
            yield
        finally:
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)
            metrics.LEADER.set(0)
            if pod_label is not None:
                await asyncio.shield(pod_label.set(False))

    return leading()


async def run_until_stopped(
    op: Operator, elector: LeaderElector | None, pod_label: OwnPodLabel | None = None
) -> int:
    """Caches always, controllers while leading, until SIGTERM/SIGINT (engine/runner.py has
    the rules and exit codes); ours: the leader's metric, token sweep and Pod label."""

    async def before_start() -> None:
        if pod_label is not None:
            await pod_label.set(False)  # a restarted container in a former leader's Pod

    return await runner.run_until_stopped(
        op.informer_manager,
        op.manager,
        elector,
        while_leading=lambda: _leading(op, pod_label),
        before_start=before_start,
        close=op.close,
    )


async def _sweep_persisted_tokens(ctx: OperatorContext) -> None:
    """Once per leadership: drop persisted tokens that expired or whose VaultAuth was deleted
    while no operator was running (the VaultAuth controller never sees those)."""
    if ctx.token_store is None:
        return
    try:
        await ctx.token_store.sweep()
    except KubeError as exc:
        log.warning("sweeping persisted Vault tokens failed: %s", exc)


def run_operator(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(_main(settings))
