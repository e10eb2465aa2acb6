"""What the kinds that hold something issued by Vault share (VaultDynamicSecret's lease,
VaultPKISecret's certificate): one entry point, the held-item bookkeeping, and failure
handling that never lets a retry sleep past the moment the held item expires.

Subclasses provide `_sync`, `_finalize`, `held_from_status` and `expires_at`; everything a
reconcile does before and after those is here, so both kinds behave the same way on bad
specs, deletions and errors.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.engine.backoff import Backoff, jittered
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.resources import Resource
from vaultbridge.observability import metrics

from . import finalizer, lease_schedule
from .context import OperatorContext
from .errors import ReconcileProblem
from .status import patch_status_if_changed, set_condition
from .vault_access import VaultAccess
from .vault_call import event_reason, is_vault_side

log = logging.getLogger(__name__)


class Held(Protocol):
    @property
    def uid(self) -> str: ...


SpecT = TypeVar("SpecT", bound=BaseModel)
HeldT = TypeVar("HeldT", bound=Held)


class LeasedReconciler(Generic[SpecT, HeldT]):
    kind: ClassVar[str]
    resource: ClassVar[Resource]
    finalizer_name: ClassVar[str]
    spec_model: ClassVar[type[BaseModel]]

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        self.ctx = ctx
        self.access = access
        self.backoff = Backoff()
        # What this process issued last: trusted over the cached status, which can lag behind
        # our own status write and would otherwise make us issue twice.
        self._held: dict[ObjectKey, HeldT] = {}

    # -- for subclasses ----------------------------------------------------------------------

    async def _sync(
        self, key: ObjectKey, obj: dict[str, Any], spec: SpecT, status: dict[str, Any]
    ) -> Result:
        raise NotImplementedError

    async def _finalize(self, key: ObjectKey, obj: dict[str, Any], spec: SpecT) -> Result:
        raise NotImplementedError

    def held_from_status(self, obj: dict[str, Any]) -> HeldT | None:
        raise NotImplementedError

    def expires_at(self, held: HeldT) -> float | None:
        """When the held lease / certificate stops working (None: unknown or never)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(self.resource).store.get(key)
        if obj is None:
            metrics.forget_resource(self.kind, key.namespace, key.name)
            self.backoff.reset(key)
            self._held.pop(key, None)
            return Result()
        status: dict[str, Any] = dict(obj.get("status") or {})
        try:
            spec: SpecT = self.spec_model.model_validate(obj.get("spec") or {})  # type: ignore[assignment]
        except ValidationError as exc:
            if objects.is_deleting(obj):
                # Nothing can be revoked without a valid spec: do not block the deletion.
                await finalizer.remove_finalizer(self.ctx, self.resource, obj, self.finalizer_name)
                return Result()
            problem = ReconcileProblem(
                "InvalidSpec", f"spec is invalid: {describe_validation_error(exc)}", retry=False
            )
            return await self._fail(obj, status, problem, key)
        if objects.is_deleting(obj):
            return await self._finalize(key, obj, spec)
        try:
            return await self._sync(key, obj, spec, status)
        except ReconcileProblem as problem:
            return await self._fail(obj, status, problem, key)

    def _current(self, key: ObjectKey, obj: dict[str, Any]) -> HeldT | None:
        held = self._held.get(key)
        if held is not None and held.uid == objects.uid(obj):
            return held
        return self.held_from_status(obj)

    async def _fail(
        self,
        obj: dict[str, Any],
        status: dict[str, Any],
        problem: ReconcileProblem,
        key: ObjectKey,
    ) -> Result:
        generation = objects.generation(obj)
        set_condition(status, "SecretSynced", False, problem.reason, problem.message, generation)
        if is_vault_side(problem.reason):
            set_condition(status, "Healthy", False, problem.reason, problem.message, generation)
        set_condition(status, "Ready", False, problem.reason, problem.message, generation)
        metrics.RESOURCE_READY.labels(self.kind, key.namespace, key.name).set(0)
        changed = await patch_status_if_changed(self.ctx.kube, self.resource, obj, status)
        if changed or problem.retry:
            self.ctx.events.emit(obj, "Warning", event_reason(problem.reason), problem.message)
        if not problem.retry:
            log.warning("sync failed: %s: %s", problem.reason, problem.message)
            return Result()
        delay = self.backoff.failure(key)
        held = self._current(key, obj)
        end = self.expires_at(held) if held is not None else None
        if end is not None:
            # However long the backoff has grown, try again before what we hold expires.
            left = end - time.time()
            if left > 0:
                delay = min(delay, max(lease_schedule.MIN_DELAY, jittered(left)))
        log.warning(  # the decided delay in the record, as in static_secret.py
            "sync failed: %s: %s", problem.reason, problem.message, extra={"retry_in": delay}
        )
        return Result(requeue_after=delay)
