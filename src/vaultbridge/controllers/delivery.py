"""The one delivery flow of every kind that puts Vault data into a Kubernetes Secret.

    reconcile(key)
      ├─ object gone      → forget it (metrics, backoff, the kind's memory)
      ├─ spec invalid     → fail(InvalidSpec, no retry); while deleting, release the finalizer
      ├─ being deleted    → kind.finalize()
      └─ prepare()        resolve refs → path policy → transformation → finalizer
          ├─ delivery inject → inject.deliver_to_pods(): the pod-file target; nothing fetched,
          │                    no Secret (each pod's agent fetches); status counts the pods
          → kind.sync()   the kind's strategy: is anything due? fetch from Vault, build data
          → secret_target.deliver_to_secret(): the Secret target; plan → drift check →
          │               write → delete after a rename → rollout restarts → write metric
          → succeed()     status → backoff reset → Ready / last-sync metrics, as the
          │               reconcile's `finish`: written off the worker (engine Result.finish)
         any ReconcileProblem on the way → fail(): conditions, event, metric, retry delay
                                           (Vault throttling: only a requeue, see `fail`)

This module owns the order of those steps, the per-object memory every kind shares (backoff,
drift repairs, our own writes) and the watches (`setup_with_manager`); where the data goes is
the target's (secret_target.py for a Secret, inject.py for pod files), whose Secret it is is
ownership.py's. A kind (static_secret.py, dynamic_secret.py, pki_secret.py) is a subclass that
answers only the kind's own questions: what it fetches, when it is next due, what its status
records and what it says in its events. Everything else is written once, here, so every kind
behaves the same on bad specs, deletions, policy refusals, ownership conflicts and failures.
Failures never empty or delete the destination: stale beats gone.

Adding a kind: its `KindInfo` in api/kinds.py, one subclass of `DeliveryReconciler` and one
line in operator.py's `reconcilers` list (docs/architecture.md walks through it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.destination import Destination, SyncedSecretSpec
from vaultbridge.api.kinds import KindInfo
from vaultbridge.api.labels import owner_from_labels
from vaultbridge.engine.backoff import Backoff
from vaultbridge.engine.controller import Controller, Result, ignore_status_only
from vaultbridge.engine.echoes import OwnWrites
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.observability import metrics
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.redact import SecretData

from . import destination, finalizer, inject, ownership, secret_data
from .context import OperatorContext
from .drift_repairs import DriftRepairs
from .errors import ReconcileProblem
from .failure import record_failure
from .path_policy import enforce_path_policy
from .reasons import Reason
from .resolution import ResolvedAuth
from .status import patch_status_if_changed
from .transform import resolve_transformation
from .vault_access import VaultAccess
from .watches import Sources, watch_references

log = logging.getLogger(__name__)

SpecT = TypeVar("SpecT", bound=SyncedSecretSpec)


@dataclass
class Prepared(Generic[SpecT]):
    """Everything the flow established before the kind's strategy runs."""

    key: ObjectKey
    obj: dict[str, Any]
    spec: SpecT
    status: dict[str, Any]
    """The desired status, computed on top of the live one; written by `succeed` / `fail`."""
    generation: int
    resolved: ResolvedAuth
    transformation: pipeline.TransformationSpec
    finish: Callable[[], Awaitable[None]] | None = None
    """The success status write `succeed` left for the engine to run off the worker."""

    @property
    def dest(self) -> Destination:
        return self.spec.destination


class DeliveryReconciler(Generic[SpecT]):
    """The flow; subclasses are the per-kind strategies."""

    info: ClassVar[KindInfo[Any, Any]]
    finalizer_name: ClassVar[str | None] = None

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        self.ctx = ctx
        self.access = access
        self.backoff = Backoff()
        self.drift = DriftRepairs(ctx, self.kind)
        self.own_writes = OwnWrites(lambda s: secret_data.data_mac(ctx.hmac_key, s))
        """Secrets this reconciler is writing, so their echo events reconcile nothing."""

    @property
    def kind(self) -> str:
        return self.info.kind

    # -- the kind's part ---------------------------------------------------------------------

    def wants_finalizer(self, spec: SpecT) -> bool:
        """Whether deleting the object has Vault work to do (revoke, clear)."""
        return False

    async def sync(self, p: Prepared[SpecT]) -> Result:
        """Fetch what is due and deliver it (`deliver`, `succeed`), or only confirm."""
        raise NotImplementedError

    async def finalize(self, key: ObjectKey, obj: dict[str, Any], spec: SpecT) -> Result:
        return Result()

    async def leave_secret_delivery(self, p: Prepared[SpecT]) -> None:
        """The object moved to delivery inject (its Secret is deleted next): release what the
        kind held for that Secret (controllers/inject.py calls it once, at the move)."""

    def forget(self, key: ObjectKey) -> None:
        """The object is gone: drop what the kind remembers of it."""
        self.backoff.reset(key)
        self.drift.forget(key)

    def retry_delay(self, key: ObjectKey, obj: dict[str, Any], problem: ReconcileProblem) -> float:
        """How long to wait before retrying a failure that time can fix."""
        return self.backoff.failure(key)

    # -- what it watches --------------------------------------------------------------------

    def setup_with_manager(self, ctl: Controller, sources: Sources) -> None:
        """Its objects, its Secrets, and every object a reconcile reads: a change of any of
        them brings the objects it concerns back, so no reconcile polls for them."""
        own = sources.of(self.kind)
        ctl.watch(own, priority_fn=ignore_status_only)
        self.watch_owned_secrets(ctl, sources)
        watch_references(ctl, sources, self.kind)

    def watch_owned_secrets(self, ctl: Controller, sources: Sources) -> None:
        """A change or deletion of a Secret we wrote brings its owner back (drift repair);
        our own write coming back does not (`own_writes`)."""
        ctl.watch_owned(
            sources.owned_secrets,
            self.kind,
            self.info.group,
            fallback=lambda s: owner_from_labels(s, self.kind),
            skip=self.own_writes.is_echo,
        )

    # -- the flow ----------------------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(self.info.resource).store.get(key)
        if obj is None:
            metrics.forget_resource(self.kind, key.namespace, key.name)
            self.forget(key)
            return Result()
        status: dict[str, Any] = dict(obj.get("status") or {})
        try:
            spec: SpecT = self.info.parse_spec(obj)
        except ValidationError as exc:
            if objects.is_deleting(obj):
                # Nothing can be revoked without a valid spec: do not block the deletion.
                await self._release_finalizer(obj)
                return Result()
            problem = ReconcileProblem(
                Reason.INVALID_SPEC,
                f"spec is invalid: {describe_validation_error(exc)}",
                retry=False,
            )
            return await self.fail(key, obj, status, problem)
        if objects.is_deleting(obj):
            return await self.finalize(key, obj, spec)
        try:
            prepared = await self.prepare(key, obj, spec, status)
            # The delivery target: the one place the flow tells sync from inject.
            if spec.injected:
                result = await inject.deliver_to_pods(self, prepared)
            else:
                result = await self.sync(prepared)
        except ReconcileProblem as problem:
            # A failure after `succeed` (none today) wins: its status replaces the success's.
            return await self.fail(key, obj, status, problem)
        if prepared.finish is not None:
            return dataclasses.replace(result, finish=prepared.finish)
        return result

    async def prepare(
        self, key: ObjectKey, obj: dict[str, Any], spec: SpecT, status: dict[str, Any]
    ) -> Prepared[SpecT]:
        """References, policy and transformation, checked on every reconcile: a VaultAuth,
        policy or transformation changed after this object was admitted stops the sync here
        (the last Secret stays)."""
        resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
        enforce_path_policy(self.ctx, key.namespace, spec)
        transformation = resolve_transformation(self.ctx, key.namespace, spec.destination)
        if self.finalizer_name is not None:
            # Inject: leases and certificates are the agents', per pod; nothing to revoke here.
            if self.wants_finalizer(spec) and not spec.injected:
                await finalizer.ensure_finalizer(
                    self.ctx, self.info.resource, obj, self.finalizer_name
                )
            else:
                await self._release_finalizer(obj)
        return Prepared(key, obj, spec, status, objects.generation(obj), resolved, transformation)

    async def live_secret(self, p: Prepared[SpecT]) -> dict[str, Any] | None:
        """The destination as the owned-Secret cache has it, after the ownership check."""
        live = await destination.read_live(
            self.ctx, p.key.namespace, p.dest.name, values=not p.dest.create
        )
        return await ownership.claim(self.ctx, p.obj, p.dest, live)

    async def build(
        self,
        p: Prepared[SpecT],
        sources: list[pipeline.Source],
    ) -> SecretData:
        """The Secret data of what Vault returned (the pure pipeline, off the loop)."""
        try:
            return await pipeline.build_secret_data_async(
                sources,
                p.transformation,
                labels=objects.labels(p.obj),
                annotations=objects.annotations(p.obj),
            )
        except DataError as exc:
            raise ReconcileProblem(exc.reason, str(exc), retry=False) from exc

    async def succeed(self, p: Prepared[SpecT], *, delivered: bool) -> None:
        """The object is Ready: its status (what the kind computed), then the backoff reset
        and the Ready / last-sync metrics.

        Not written here but as the reconcile's `finish` (engine/controller.py `Result`): the
        Secret is already right, and the status patch is a whole API round trip (a third of
        a first sync's worker time) that no one waits for, so the worker takes the next key
        meanwhile. The engine keeps the key in flight until the patch is written — no second
        reconcile of this object can start from the stale status — and retries it with
        backoff if the patch fails, as it would a failed reconcile."""

        async def write_status() -> None:
            await patch_status_if_changed(self.ctx.kube, self.info.resource, p.obj, p.status)
            self.backoff.reset(p.key)
            metrics.RESOURCE_READY.labels(self.kind, p.key.namespace, p.key.name).set(1)
            if delivered:
                metrics.RESOURCE_LAST_SYNC.labels(self.kind, p.key.namespace, p.key.name).set(
                    time.time()
                )

        p.finish = write_status

    def emit_written(self, p: Prepared[SpecT], reason: str, message: str) -> None:
        self.ctx.events.emit(p.obj, "Normal", reason, message)

    async def fail(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        status: dict[str, Any],
        problem: ReconcileProblem,
    ) -> Result:
        """Conditions, event, metric and the retry (failure.py has the rule; Vault throttling
        only requeues); the kind chooses the delay through `retry_delay`."""
        return await record_failure(
            self.ctx,
            self.info,
            key,
            obj,
            status,
            problem,
            lambda: self.retry_delay(key, obj, problem),
        )

    async def _release_finalizer(self, obj: dict[str, Any]) -> None:
        if self.finalizer_name is not None:
            await finalizer.remove_finalizer(self.ctx, self.info.resource, obj, self.finalizer_name)
