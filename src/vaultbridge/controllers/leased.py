"""What the kinds that hold something issued by Vault share (VaultDynamicSecret's lease,
VaultPKISecret's certificate): the held-item memory, the reasons to replace it, and retries
that never sleep past the moment the held item expires.

The memory is the freshest source: the informer's copy of our own status can lag behind the
status patch we just sent, and reading the held item from it would issue twice. After a
restart the item comes from the persisted status instead, so a restart or a watch event
never turns into new credentials by itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from vaultbridge.engine.backoff import jittered
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.secrets.redact import SecretData

from . import destination, finalizer, lease_schedule, live_secret
from .context import OperatorContext
from .delivery import Delivered, DeliveryReconciler, Prepared, SpecT
from .errors import ReconcileProblem
from .status import set_condition, set_ready
from .vault_access import VaultAccess

log = logging.getLogger(__name__)


class Held(Protocol):
    """What the operator knows of the item it last delivered."""

    @property
    def uid(self) -> str: ...

    @property
    def generation(self) -> int: ...

    @property
    def mac(self) -> str: ...

    @property
    def destination(self) -> str: ...


HeldT = TypeVar("HeldT", bound=Held)

#: Causes that may only be the owned-Secret cache lagging behind our own write.
UNCONFIRMED_CAUSES = frozenset({"destination-missing", "drift"})


@dataclass(frozen=True)
class Deleting(Generic[SpecT, HeldT]):
    """An object being deleted while it holds a finalizer of ours."""

    key: ObjectKey
    obj: dict[str, Any]
    spec: SpecT
    held: HeldT | None


class LeasedReconciler(DeliveryReconciler[SpecT], Generic[SpecT, HeldT]):
    """A delivery kind that holds an item issued by Vault; subclasses provide
    `held_from_status` and `expires_at`."""

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        super().__init__(ctx, access)
        # What this process issued last: trusted over the cached status (see above).
        self._held: dict[ObjectKey, HeldT] = {}

    def held_from_status(self, obj: dict[str, Any]) -> HeldT | None:
        raise NotImplementedError

    def expires_at(self, held: HeldT) -> float | None:
        """When the held lease / certificate stops working (None: unknown or never)."""
        raise NotImplementedError

    def current(self, key: ObjectKey, obj: dict[str, Any]) -> HeldT | None:
        held = self._held.get(key)
        if held is not None and held.uid == objects.uid(obj):
            return held
        return self.held_from_status(obj)

    def remember(self, key: ObjectKey, held: HeldT) -> None:
        self._held[key] = held

    def forget(self, key: ObjectKey) -> None:
        super().forget(key)
        self._held.pop(key, None)

    def reissue_cause(
        self, p: Prepared[SpecT], held: HeldT | None, live: dict[str, Any] | None
    ) -> str | None:
        """Why the held item cannot be kept as it is (None: it can)."""
        if held is None:
            return "create"
        if held.generation != p.generation or (
            held.destination and held.destination != p.dest.name
        ):
            return "spec-change"
        if live is None:
            return "destination-missing"
        if p.dest.create:
            live_data = destination.decode_data(live)
            if compute_mac(self.ctx.hmac_key, live_data) != held.mac:
                return "drift"
            plan = destination.plan(
                p.obj, p.dest, live, live_data, vault_changed=False, spec_changed=False
            )
            if plan.write:
                return "drift"
        return None

    async def confirmed_cause(
        self, p: Prepared[SpecT], held: HeldT | None
    ) -> tuple[str | None, dict[str, Any] | None]:
        """`reissue_cause` against the cached destination, confirmed against the API server
        before a missing or changed Secret replaces credentials that are probably fine (the
        owned-Secret cache may not have seen our own last write yet). Returns the cause and
        the live Secret it was judged on."""
        live = await self.live_secret(p)
        cause = self.reissue_cause(p, held, live)
        if cause in UNCONFIRMED_CAUSES:
            live = await live_secret.read_fresh(self.ctx, p.key.namespace, p.dest.name)
            destination.check_ownership(p.obj, p.dest, live)
            cause = self.reissue_cause(p, held, live)
        return cause, live

    async def deliver_new(
        self,
        p: Prepared[SpecT],
        live: dict[str, Any] | None,
        data: SecretData,
        *,
        held: HeldT | None,
        new: HeldT,
        cause: str,
        restart: bool,
    ) -> Delivered:
        """Deliver a newly issued item that replaces `held` (None: the first one); the new
        item is remembered as soon as it is in the Secret."""
        return await self.deliver(
            p,
            live,
            data,
            vault_changed=held is not None,
            spec_changed=cause == "spec-change",
            previous=held.destination if held is not None else None,
            restart=restart,
            on_written=lambda: self.remember(p.key, new),
        )

    def announce(
        self, p: Prepared[SpecT], delivered: Delivered, first: bool, created: str, rotated: str
    ) -> None:
        """The event of a delivery: created (first item, or the Secret was missing) or
        rotated."""
        if first or delivered.plan.cause == "create":
            self.emit_written(p, "SecretSynced", created)
        else:
            self.emit_written(p, "SecretRotated", rotated)

    async def finalize(self, key: ObjectKey, obj: dict[str, Any], spec: SpecT) -> Result:
        assert self.finalizer_name is not None
        if not finalizer.has_finalizer(obj, self.finalizer_name):
            return Result()
        if not await self.clean_up(Deleting(key, obj, spec, self.current(key, obj))):
            return Result(requeue_after=self.backoff.failure(key))
        await self._release_finalizer(obj)
        self.forget(key)
        return Result()

    async def clean_up(self, d: Deleting[SpecT, HeldT]) -> bool:
        """The Vault work of a deletion (revoke...); False: retry later, keep the finalizer."""
        return True

    def mark_held(
        self,
        p: Prepared[SpecT],
        held: HeldT,
        message: str,
        restart_failures: list[str] | None,
    ) -> None:
        """The status fields and conditions of every held item; kinds add their own."""
        status, generation = p.status, p.generation
        status["lastGeneration"] = generation
        status["secretMAC"] = held.mac
        set_condition(status, "SecretSynced", True, "Synced", message, generation)
        set_condition(status, "Healthy", True, "Healthy", "Vault requests succeed", generation)
        set_ready(status, restart_failures, message, generation)

    def retry_delay(self, key: ObjectKey, obj: dict[str, Any], problem: ReconcileProblem) -> float:
        delay = super().retry_delay(key, obj, problem)
        held = self.current(key, obj)
        end = self.expires_at(held) if held is not None else None
        if end is not None:
            # However long the backoff has grown, try again before what we hold expires.
            left = end - time.time()
            if left > 0:
                delay = min(delay, max(lease_schedule.MIN_DELAY, jittered(left)))
        return delay
