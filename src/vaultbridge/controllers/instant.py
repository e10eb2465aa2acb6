"""Instant updates for VaultStaticSecrets: the glue between our kind and `vaultbridge.changes`.

* ``register(index, obj)`` / ``unregister(index, obj)``: one call each. The operator calls them
  from the VaultStaticSecret informer's handlers, so an object's paths are in the index before
  its first reconcile reads Vault (a write after that read is then always matched) and leave
  it with the object. Only objects with ``spec.syncConfig.instantUpdates: true`` register.
* ``set_instant_updates_condition``: the ``InstantUpdates`` condition a reconcile can set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.common import resolve_ref
from vaultbridge.api.kinds import VAULT_AUTHS
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.changes import KVRef, ListenAddress, PathIndex
from vaultbridge.changes.liveness import SendBeat
from vaultbridge.changes.stream import AuditStream, StreamConfig
from vaultbridge.engine.controller import Controller
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority
from vaultbridge.kube import objects
from vaultbridge.observability import metrics
from vaultbridge.settings import Settings

from .context import OperatorContext
from .errors import ReconcileProblem
from .status import set_condition
from .vault_access import VaultAccess

log = logging.getLogger(__name__)

CONDITION = "InstantUpdates"


def kv_refs(obj: dict[str, Any]) -> list[KVRef]:
    """The KV secrets an opted-in object reads; empty when it did not opt in (or is invalid:
    its reconcile reports that)."""
    spec_raw = obj.get("spec") or {}
    sync = spec_raw.get("syncConfig")
    if not isinstance(sync, dict) or sync.get("instantUpdates") is not True:
        return []
    try:
        spec = VaultStaticSecretSpec.model_validate(spec_raw)
    except ValidationError:
        return []
    return [KVRef(s.mount, s.path, 2 if s.type == "kv-v2" else 1) for s in spec.kv_sources()]


def register(index: PathIndex[ObjectKey], obj: dict[str, Any]) -> None:
    """(Re-)register the paths ``obj`` reads; an object that opted out is removed."""
    index.replace(ObjectKey.of(obj), kv_refs(obj))


def unregister(index: PathIndex[ObjectKey], obj: dict[str, Any]) -> None:
    index.remove(ObjectKey.of(obj))


def set_instant_updates_condition(
    status: dict[str, Any],
    spec: VaultStaticSecretSpec,
    *,
    stream_enabled: bool,
    live: bool,
    generation: int | None,
) -> None:
    """``InstantUpdates`` on opted-in objects: True (Live) while the audit stream from the
    object's Vault server is live; False with the reason otherwise. Removed when not opted in.

    ``live``: ``AuditStream.is_live(address)`` for the object's VaultConnection address.
    """
    if not spec.instant_updates:
        conditions = status.get("conditions")
        if conditions and any(c.get("type") == CONDITION for c in conditions):
            status["conditions"] = [c for c in conditions if c.get("type") != CONDITION]
        return
    if not stream_enabled:
        set_condition(
            status,
            CONDITION,
            False,
            "AuditStreamDisabled",
            "the operator runs without --audit-stream-listen: changes are picked up every "
            "refreshAfter",
            generation,
        )
    elif live:
        set_condition(
            status,
            CONDITION,
            True,
            "Live",
            "Vault's audit stream reaches the operator: writes to this secret are followed "
            "within seconds",
            generation,
        )
    else:
        set_condition(
            status,
            CONDITION,
            False,
            "NoHeartbeat",
            "the operator's heartbeat has not come back through Vault's audit stream (is a "
            "socket audit device pointed at the operator? see docs/operations.md); changes are "
            "picked up every refreshAfter until it does",
            generation,
        )


@dataclass
class InstantUpdates:
    """The running audit stream of one operator (``OperatorContext.instant_updates``)."""

    stream: AuditStream[ObjectKey]
    send_beat: SendBeat
    targets: Callable[[], Iterable[str]]

    async def start(self) -> None:
        """Listen and start heartbeats. Raises OSError when the address cannot be bound."""
        await self.stream.start(self.send_beat, self.targets)

    async def stop(self) -> None:
        await self.stream.stop()

    def is_live(self, vault_address: str) -> bool:
        """For ``set_instant_updates_condition``: is the stream from this server live?"""
        return self.stream.is_live(vault_address.rstrip("/"))


def stream_config(settings: Settings) -> StreamConfig:
    """Raises ValueError for a bad --audit-stream-listen."""
    return StreamConfig(
        listen=ListenAddress.parse(settings.audit_stream_listen),
        prefix=settings.audit_stream_prefix,
        heartbeat_interval=settings.audit_stream_heartbeat_interval,
        heartbeat_path=settings.audit_stream_heartbeat_path,
        path_limit=settings.audit_stream_path_limit,
    )


def attach(
    ctx: OperatorContext,
    access: VaultAccess,
    controller: Controller,
    static_secrets: Informer,
    connections: Informer,
) -> InstantUpdates:
    """Wire the audit stream: the VaultStaticSecret informer keeps the index, matched writes
    enqueue HIGH into ``controller``, gap resyncs LOW (like a refresh); heartbeats go to the
    Vault servers the opted-in objects use (none while no object has opted in)."""

    def enqueue(keys: Collection[ObjectKey], *, resync: bool) -> None:
        priority = Priority.LOW if resync else Priority.HIGH
        for key in keys:
            controller.enqueue(key, priority)

    def on_live_change(_target: str, _live: bool) -> None:
        metrics.AUDIT_STREAM_LIVE.set(1 if stream.is_live() else 0)

    stream: AuditStream[ObjectKey] = AuditStream(
        stream_config(ctx.settings),
        enqueue,
        observe=metrics.observe_audit_stream,
        on_live_change=on_live_change,
    )
    index = stream.index
    static_secrets.add_handlers(
        on_add=lambda obj: register(index, obj),
        on_update=lambda _old, new: register(index, new),
        on_delete=lambda obj: unregister(index, obj),
    )
    servers: dict[str, tuple[ObjectKey, dict[str, Any]]] = {}
    operator_ns = ctx.settings.namespace

    def targets() -> list[str]:
        """Vault servers of the VaultConnections the opted-in objects use (through their
        VaultAuth); a stale connection nobody uses must not hold the stream "not live"."""
        servers.clear()
        auths = ctx.informer(VAULT_AUTHS).store
        for key in index.registered():
            obj = static_secrets.store.get(key)
            if obj is None:
                continue
            auth_ref = str((obj.get("spec") or {}).get("vaultAuthRef") or "")
            auth = auths.get(access.auth_key_for(key.namespace, auth_ref))
            if auth is None:
                continue
            conn_ref = str((auth.get("spec") or {}).get("vaultConnectionRef") or "")
            if not conn_ref and (auth.get("spec") or {}).get("vaultAuthGlobalRef"):
                # The connection may come from the VaultAuthGlobal (the merged spec has it).
                try:
                    merged, _global = access.effective_auth(ObjectKey.of(auth), auth)
                except ReconcileProblem:
                    continue  # unusable: its objects do not sync either
                conn_ref = merged.vault_connection_ref
            conn_key = resolve_ref(
                conn_ref, own_namespace=objects.namespace(auth), operator_namespace=operator_ns
            )
            conn_obj_key = ObjectKey(conn_key.namespace, conn_key.name)
            conn = connections.store.get(conn_obj_key)
            address = (conn or {}).get("spec", {}).get("address")
            if conn is not None and isinstance(address, str) and address:
                servers.setdefault(address.rstrip("/"), (conn_obj_key, conn))
        return list(servers)

    async def send_beat(target: str, path: str) -> None:
        key, conn = servers[target]
        try:
            settings = await access.connection_settings(key, conn)
        except ReconcileProblem as exc:
            raise RuntimeError(exc.message) from None
        # No token: Vault answers 403 and audits the request, which is all a heartbeat needs.
        await ctx.vault_transport.request(settings, "GET", path, operation="audit_heartbeat")

    return InstantUpdates(stream, send_beat, targets)
