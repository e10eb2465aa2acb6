"""`vaultbridge run`: wire the clients, informers and controllers together and run them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vaultbridge.controllers.auth import VaultAuthReconciler
from vaultbridge.controllers.connection import VaultConnectionReconciler
from vaultbridge.controllers.context import OperatorContext
from vaultbridge.controllers.hmac_key import load_or_create_hmac_key
from vaultbridge.controllers.static_secret import VaultStaticSecretReconciler
from vaultbridge.controllers.transformation import SecretTransformationReconciler
from vaultbridge.controllers.vault_access import VaultAccess
from vaultbridge.engine.controller import Controller, Reconciler, ignore_status_only
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.manager import Manager
from vaultbridge.engine.queue import Priority
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.config import load_config
from vaultbridge.kube.errors import KubeError
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import (
    SECRET_TRANSFORMATIONS,
    SECRETS,
    VAULT_AUTHS,
    VAULT_CONNECTIONS,
    VAULT_STATIC_SECRETS,
    Resource,
)
from vaultbridge.observability import metrics
from vaultbridge.observability.logs import configure_logging, current_resource
from vaultbridge.observability.server import ObservabilityServer
from vaultbridge.settings import Settings
from vaultbridge.vault.cache import ClientCache
from vaultbridge.vault.connection import Transport
from vaultbridge.vault.ratelimit import TokenBucket

log = logging.getLogger("vaultbridge")

Obj = dict[str, Any]


class _Instrumented:
    """Sets the log context and records metrics around a reconciler."""

    def __init__(self, kind: str, inner: Reconciler) -> None:
        self.kind = kind
        self.inner = inner

    async def reconcile(self, key: ObjectKey) -> Any:
        token = current_resource.set(f"{self.kind}/{key.namespace}/{key.name}")
        try:
            with metrics.RECONCILE_SECONDS.labels(self.kind).time():
                return await self.inner.reconcile(key)
        finally:
            current_resource.reset(token)


@dataclass
class Operator:
    ctx: OperatorContext
    manager: Manager
    controllers: dict[str, Controller]


def _refs_to(store_objs: Iterable[Obj], match: Callable[[Obj], bool]) -> list[ObjectKey]:
    return [ObjectKey.of(o) for o in store_objs if match(o)]


async def build_operator(settings: Settings, kube: KubeClient) -> Operator:
    hmac_key = await load_or_create_hmac_key(kube, settings.namespace, settings.hmac_key_secret)

    def on_vault_request(operation: str, status: str | int, seconds: float) -> None:
        metrics.VAULT_REQUESTS.labels(operation, str(status)).inc()
        metrics.VAULT_REQUEST_SECONDS.labels(operation).observe(seconds)

    transport = Transport(
        rate_limiter=TokenBucket(settings.vault_qps, settings.vault_burst),
        on_request=on_vault_request,
    )
    clients = ClientCache(transport)
    events = EventRecorder(kube, namespace_default=settings.namespace)
    ctx = OperatorContext(
        settings=settings,
        kube=kube,
        events=events,
        vault_transport=transport,
        clients=clients,
        hmac_key=hmac_key,
    )
    manager = Manager(grace_period=settings.shutdown_grace_period)

    def informer(resource: Resource, **kwargs: Any) -> Informer:
        inf = Informer(kube, resource, **kwargs)
        ctx.informers[resource] = manager.add_informer(inf)
        return inf

    connections = informer(VAULT_CONNECTIONS)
    auths = informer(VAULT_AUTHS)
    static_secrets = informer(VAULT_STATIC_SECRETS)
    transformations = informer(SECRET_TRANSFORMATIONS)
    # Only the Secrets we created: a cluster's other Secrets never enter our memory.
    owned_secrets = informer(SECRETS, label_selector=objects.managed_by_selector())

    access = VaultAccess(ctx)
    controllers: dict[str, Controller] = {}

    def controller(kind: str, reconciler: Reconciler) -> Controller:
        ctl = Controller(kind, _Instrumented(kind, reconciler), workers=settings.workers)
        ctl.add_reconcile_hook(_reconcile_metrics)
        controllers[kind] = manager.add_controller(ctl)
        return ctl

    conn_ctl = controller("VaultConnection", VaultConnectionReconciler(ctx, access))
    conn_ctl.watch(connections, priority_fn=ignore_status_only)

    auth_ctl = controller("VaultAuth", VaultAuthReconciler(ctx, access))
    auth_ctl.watch(auths, priority_fn=ignore_status_only)
    auth_ctl.watch(
        connections,
        mapper=lambda conn: _refs_to(
            auths.store.list(), lambda a: _auth_uses_connection(a, conn, settings.namespace)
        ),
        priority_fn=_spec_changes_only,
    )

    tr_ctl = controller("SecretTransformation", SecretTransformationReconciler(ctx))
    tr_ctl.watch(transformations, priority_fn=ignore_status_only)

    vss_ctl = controller("VaultStaticSecret", VaultStaticSecretReconciler(ctx, access))
    vss_ctl.watch(static_secrets, priority_fn=ignore_status_only)
    vss_ctl.watch_owned(owned_secrets, "VaultStaticSecret")
    vss_ctl.watch(
        auths,
        mapper=lambda auth: _refs_to(
            static_secrets.store.list(),
            lambda s: _uses_auth(s, auth, access),
        ),
        priority_fn=_spec_changes_only,
    )
    vss_ctl.watch(
        transformations,
        mapper=lambda tr: _refs_to(
            static_secrets.store.list(), lambda s: _uses_transformation(s, tr)
        ),
        priority_fn=_spec_changes_only,
    )

    async def close_clients() -> None:
        await events.close()
        await clients.close()
        await transport.close()

    manager.on_shutdown(close_clients)
    return Operator(ctx, manager, controllers)


def _reconcile_metrics(kind: str, _key: ObjectKey, _seconds: float, outcome: str) -> None:
    metrics.RECONCILES.labels(kind, outcome).inc()


def _spec_changes_only(event: str, old: Obj | None, new: Obj) -> Priority | None:
    if (
        event == "MODIFIED"
        and old is not None
        and objects.generation(old) == objects.generation(new)
    ):
        return None
    return Priority.NORMAL


def _auth_uses_connection(auth: Obj, conn: Obj, operator_namespace: str) -> bool:
    ref = str((auth.get("spec") or {}).get("vaultConnectionRef") or "")
    ns = objects.namespace(auth)
    if not ref:
        target = (operator_namespace, "default")
    elif "/" in ref:
        a, _, b = ref.partition("/")
        target = (a, b)
    else:
        target = (ns, ref)
    return target == (objects.namespace(conn), objects.name(conn))


def _uses_auth(secret_obj: Obj, auth: Obj, access: VaultAccess) -> bool:
    ref = str((secret_obj.get("spec") or {}).get("vaultAuthRef") or "")
    key = access.auth_key_for(objects.namespace(secret_obj), ref)
    return key == ObjectKey(objects.namespace(auth), objects.name(auth))


def _uses_transformation(secret_obj: Obj, tr: Obj) -> bool:
    spec = secret_obj.get("spec") or {}
    refs = ((spec.get("destination") or {}).get("transformation") or {}).get(
        "transformationRefs"
    ) or []
    ns = objects.namespace(secret_obj)
    for ref in refs:
        if ref.get("name") == objects.name(tr) and (
            ref.get("namespace") or ns
        ) == objects.namespace(tr):
            return True
    return False


async def _main(settings: Settings) -> int:
    try:
        config = load_config(settings.kubeconfig, settings.context)
    except KubeError as exc:
        log.error("cannot load Kubernetes configuration: %s", exc)
        return 2
    kube = await KubeClient.create(config)
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
        server = ObservabilityServer(
            settings.metrics_bind_address,
            settings.health_bind_address,
            ready=lambda: op.manager.ready,
        )
        await server.start()
        op.manager.install_signal_handlers()
        log.info(
            "vaultbridge running: namespace=%s workers=%d vault-qps=%s",
            settings.namespace,
            settings.workers,
            settings.vault_qps,
        )
        try:
            await op.manager.run()
        finally:
            await server.stop()
    finally:
        await kube.close()
    log.info("vaultbridge stopped")
    return 0


def run_operator(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(_main(settings))
