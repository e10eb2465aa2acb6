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
from typing import Any, Generic

from vaultbridge.engine.backoff import jittered
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.observability import metrics
from vaultbridge.secrets.redact import SecretData
from vaultbridge.vault import lease_schedule
from vaultbridge.vault.client import RevokeOutcome

from . import destination, finalizer, live_secret, ownership, secret_data, secret_target
from .cleanup import TIMED_OUT, Deleting, HeldT, NotCleaned, deleting_for
from .context import OperatorContext
from .delivery import DeliveryReconciler, Prepared, SpecT
from .errors import ReconcileProblem
from .reasons import Reason
from .secret_target import Delivered
from .status import set_condition, set_ready
from .vault_access import VaultAccess

log = logging.getLogger(__name__)


#: Causes that may only be the owned-Secret cache lagging behind our own write.
UNCONFIRMED_CAUSES = frozenset({"destination-missing", "drift"})


class LeasedReconciler(DeliveryReconciler[SpecT], Generic[SpecT, HeldT]):
    """A delivery kind that holds an item issued by Vault; subclasses provide
    `held_from_status` and `expires_at`."""

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        super().__init__(ctx, access)
        # What this process issued last: trusted over the cached status (see above).
        self._held: dict[ObjectKey, HeldT] = {}
        # Objects whose drifted Secret the drift guard refused to repair: the message.
        self._conflicts: dict[ObjectKey, str] = {}

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
        self._conflicts.pop(key, None)

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
            if secret_data.data_mac(self.ctx.hmac_key, live) != held.mac:
                return "drift"
            if not destination.metadata_matches(p.obj, p.dest, live):
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
            ownership.check_ownership(p.obj, p.dest, live)
            cause = self.reissue_cause(p, held, live)
        self._conflicts.pop(p.key, None)
        if cause == "drift":
            # A repair here issues new credentials too: the drift guard decides first. When it
            # refuses, the held item is kept as if nothing drifted, so renewals and rotations
            # still happen on time; `mark_held` reports the conflict instead of "synced".
            conflict = await self.drift.conflict(p.key, p.generation, p.dest.name, live)
            if conflict is not None:
                # Repairs resume on the next reconcile after the quiet window (the lease
                # schedule's, or a watch event's); the Warning event comes once, from
                # `mark_held`, when the condition turns to DriftConflict.
                self._conflicts[p.key] = conflict.message
                log.info("drift conflict on %s: %s", p.key, conflict.message)
                return None, live
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
        delivered = await secret_target.deliver_to_secret(
            self,
            p,
            live,
            data,
            vault_changed=held is not None,
            spec_changed=cause == "spec-change",
            previous=held.destination if held is not None else None,
            restart=restart,
            on_written=lambda: self.remember(p.key, new),
        )
        if cause == "drift" and delivered.plan.write:
            self.drift.repaired(p.key)
        return delivered

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
        """Finalizers always end, by one rule for every kind and finalizer:

        - done (revoked / cleared): release;
        - Vault no longer knows the lease or certificate: nothing is left; release quietly;
        - permission denied, or the VaultAuth side is gone: waiting does not help; release at
          once, the item is left to expire at its TTL;
        - transient (Vault unreachable, sealed, throttled; API errors): retry on the backoff
          until --finalizer-timeout after the deletionTimestamp, then release as above.

        Every release without revocation: a `LeaseLeftToExpire` Warning event and
        `vaultbridge_finalizers_released_without_revocation{kind, reason}`.
        """
        assert self.finalizer_name is not None
        if not finalizer.has_finalizer(obj, self.finalizer_name):
            return Result()
        left = await self.clean_up(Deleting(key, obj, spec, self.current(key, obj)))
        if left is not None and left.outcome == RevokeOutcome.LEASE_UNKNOWN:
            log.info("%s of %s already gone in Vault: %s", left.what, key, left.message)
        elif left is not None:
            reason = left.outcome
            if left.outcome == RevokeOutcome.TRANSIENT:
                remaining = self.ctx.settings.finalizer_timeout - deleting_for(obj, time.time())
                if remaining > 0:
                    self.ctx.events.emit(
                        obj,
                        "Warning",
                        left.retry_reason,
                        f"cleaning up {left.what} failed ({left.message}); retrying for "
                        f"{remaining:.0f}s more (--finalizer-timeout)",
                    )
                    return Result(requeue_after=min(self.backoff.failure(key), remaining))
                reason = TIMED_OUT
            self.ctx.events.emit(
                obj,
                "Warning",
                "LeaseLeftToExpire",
                f"{left.what} was not revoked ({left.message}); it is left to expire at its "
                "TTL and the finalizer is released",
            )
            metrics.FINALIZERS_RELEASED_UNREVOKED.labels(self.kind, reason).inc()
            log.warning("released the finalizer of %s without revoking %s", key, left.what)
        await self._release_finalizer(obj)
        self.forget(key)
        return Result()

    async def leave_secret_delivery(self, p: Prepared[SpecT]) -> None:
        """Moving to inject: the held lease / certificate served the Secret only (the pods'
        agents get their own). Cleaned up as a deletion would (`revoke`, `clear`), once; a
        failure leaves it to expire at its TTL, with the same Warning as a finalizer."""
        held = self.current(p.key, p.obj)
        self._held.pop(p.key, None)
        if held is None or not self.wants_finalizer(
            p.spec.model_copy(update={"delivery": "secret"})
        ):
            return
        left = await self.clean_up(Deleting(p.key, p.obj, p.spec, held))
        if left is not None and left.outcome != RevokeOutcome.LEASE_UNKNOWN:
            self.ctx.events.emit(
                p.obj,
                "Warning",
                "LeaseLeftToExpire",
                f"{left.what} was not revoked when the object moved to delivery inject "
                f"({left.message}); it is left to expire at its TTL",
            )
            metrics.FINALIZERS_RELEASED_UNREVOKED.labels(self.kind, left.outcome).inc()

    async def clean_up(self, d: Deleting[SpecT, HeldT]) -> NotCleaned | None:
        """The Vault work of a deletion (revoke...); a `NotCleaned` when it did not happen
        (`finalize` decides whether to retry or release)."""
        return None

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
        set_condition(status, "Healthy", True, "Healthy", "Vault requests succeed", generation)
        conflict = self._conflicts.get(p.key)
        if conflict is not None:
            reason = str(Reason.DRIFT_CONFLICT)
            was: dict[str, Any] = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "SecretSynced"),
                {},
            )
            set_condition(status, "SecretSynced", False, reason, conflict, generation)
            set_condition(status, "Ready", False, reason, conflict, generation)
            if was.get("reason") != reason:
                self.ctx.events.emit(p.obj, "Warning", reason, conflict)
            return
        set_condition(status, "SecretSynced", True, "Synced", message, generation)
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
