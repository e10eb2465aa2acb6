"""The Secret delivery target: built data into the destination Secret, and what follows.

Every kind's `sync` (static_secret.py, leased.py for the leased kinds) hands its built data
to `deliver_to_secret`, as `DeliveryReconciler.reconcile` hands an injected object to
inject.py's pod-file target. The order is fixed, and each step states what it guarantees:

1. **Plan** (destination.plan, pure): nothing is written when the live Secret already holds
   the data and metadata it should, so a steady state costs no write.
2. **Drift check**: a write whose cause is `drift` (someone changed our Secret) first asks the
   kind's drift guard (drift_repairs.py), which raises `DriftConflict` instead of starting a
   repair fight with another writer.
3. **Write**: a Secret believed absent (a 404, or destination.presumed_absent) is written
   create-only; when it exists after all (someone else's, or ours not yet in the cache) the
   careful path runs on what the API server has — the ownership checks (and a VSO adoption)
   of ownership.py, then the plan again — so a Secret that is not ours is never overwritten
   by a guess. Our own write is recorded before it is sent (`own_writes`), so the watch event
   it causes reconciles nothing.
4. **on_written**: what the kind must remember once Vault issued something and it reached
   the Secret runs right after the write, before the follow-ups that can fail.
5. **Rename**: the Secret of the previous destination name is deleted only if this object
   owns it (uid precondition).
6. **Rollout**: the targets are restarted only when the caller says so (new values, not a
   first delivery); a failed restart is reported in `Delivered.restart_failures`, never
   raised, because the data is delivered already.

A failure before or during the write leaves the live Secret as it was: stale beats gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.observability import metrics
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.secrets.redact import SecretData

from . import destination, live_secret, ownership, rollout

if TYPE_CHECKING:
    from .delivery import DeliveryReconciler, Prepared

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    plan: destination.Plan
    restart_failures: list[str]
    """One message per rollout target that could not be restarted (`[]`: none failed)."""


async def deliver_to_secret(
    reconciler: DeliveryReconciler[Any],
    p: Prepared[Any],
    live: dict[str, Any] | None,
    data: SecretData,
    *,
    vault_changed: bool,
    spec_changed: bool,
    previous: str | None,
    restart: bool,
    on_written: Callable[[], None] | None = None,
    mac: str | None = None,
) -> Delivered:
    """Steps 1-6 of the module docstring for one reconcile of `p`: write the destination if
    it differs, delete the Secret of a renamed destination (`previous`), restart the rollout
    targets when `restart` (new values, not a first delivery).

    `on_written` runs right after the write, before the follow-ups that can fail: what the
    kind must remember once Vault issued something and it reached the Secret. `mac`: the
    HMAC of `data` with the operator's key, when the kind computed it already (one HMAC of
    the data per sync, not two)."""
    ctx = reconciler.ctx

    def plan_for(live: dict[str, Any] | None) -> destination.Plan:
        return destination.plan(
            p.obj,
            p.dest,
            live,
            data,
            vault_changed=vault_changed,
            spec_changed=spec_changed,
            mac_key=ctx.hmac_key,
        )

    plan = plan_for(live)
    if plan.write and plan.cause == "drift":
        await check_drift(reconciler, p, live)
    if plan.write:
        if p.dest.create:  # only Secrets we own are watched
            reconciler.own_writes.expect(
                ObjectKey(p.key.namespace, p.dest.name),
                mac if mac is not None else compute_mac(ctx.hmac_key, data),
            )
        try:
            # Believed absent (a 404, or `presumed_absent`): create-only, so a Secret
            # that appeared meanwhile, or was never in the cache, is not overwritten.
            await destination.write(
                ctx, p.obj, p.dest, data, plan.extra_keys, create_only=live is None
            )
        except destination.DestinationExists:
            # Someone else's Secret, or our own not yet in the cache: the careful path on
            # what the API server has (ownership checks or a VSO adoption, then the plan
            # again).
            live = await live_secret.read_fresh(ctx, p.key.namespace, p.dest.name)
            live = await ownership.claim(ctx, p.obj, p.dest, live)
            plan = plan_for(live)
            if plan.write and plan.cause == "drift":
                await check_drift(reconciler, p, live)
            if plan.write:
                await destination.write(ctx, p.obj, p.dest, data, plan.extra_keys)
    if plan.write:
        metrics.child(metrics.SECRET_WRITES, reconciler.kind, plan.cause).inc()
        if plan.cause == "drift":
            reconciler.drift.repaired(p.key)
    if on_written is not None:
        on_written()
    if (
        previous
        and previous != p.dest.name
        and await destination.delete_if_owned(ctx, p.obj, previous)
    ):
        log.info("deleted Secret %s/%s after a destination rename", p.key.namespace, previous)
    restart_failures: list[str] = []
    if restart and p.spec.rollout_restart_targets:
        restart_failures = await rollout.restart_targets(ctx, p.obj, p.spec.rollout_restart_targets)
    return Delivered(plan, restart_failures)


async def check_drift(
    reconciler: DeliveryReconciler[Any], p: Prepared[Any], live: dict[str, Any] | None
) -> None:
    """Before repairing a drifted destination: raise `DriftConflict` when another writer
    keeps changing it (drift_repairs.py). Every kind's repair passes here."""
    problem = await reconciler.drift.conflict(p.key, p.generation, p.dest.name, live)
    if problem is not None:
        raise problem
