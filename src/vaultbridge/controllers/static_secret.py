"""VaultStaticSecret: KV secrets (one path, or several merged) → a Kubernetes Secret.

One linear reconcile with early returns; every failure sets a condition, emits an event and
returns a requeue delay (backoff for things that time can fix, none for things only an edit
can fix: the watches bring the next reconcile). The destination is never deleted or emptied
because Vault is failing: stale beats gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.engine.backoff import Backoff, jittered
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.resources import VAULT_STATIC_SECRETS
from vaultbridge.observability import metrics
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import (
    SealedOrUnavailable,
    VaultUnreachable,
)

from . import destination, rollout
from .context import OperatorContext
from .errors import ReconcileProblem
from .path_policy import enforce_path_policy
from .refresh import effective_refresh
from .status import now_rfc3339, patch_status_if_changed, set_condition, set_ready
from .transform import SourceRead, build_data, resolve_transformation
from .vault_access import ResolvedAuth, VaultAccess
from .vault_call import call_vault, event_reason, is_vault_side

log = logging.getLogger(__name__)

KIND = "VaultStaticSecret"


#: While Vault itself is down (unreachable, frozen, sealed) every resource fails for the same
#: reason; the ordinary backoff (up to 60 s) would leave resources stale for up to a minute
#: after Vault returns. Outage retries back off too, jittered, but only up to ~10 s, so all
#: resources are synced within seconds of its return; the global Vault rate limit bounds the
#: load the retries put on a recovering server.
def outage_backoff() -> Backoff:
    return Backoff(base=2.0, cap=8.0, factor=1.5, jitter=0.25)


class VaultStaticSecretReconciler:
    kind = KIND

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        self.ctx = ctx
        self.access = access
        self.backoff = Backoff()
        self.outage_backoff = outage_backoff()

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(VAULT_STATIC_SECRETS).store.get(key)
        if obj is None:
            metrics.forget_resource(KIND, key.namespace, key.name)
            self.backoff.reset(key)
            self.outage_backoff.reset(key)
            return Result()
        if objects.is_deleting(obj):
            return Result()
        generation = objects.generation(obj)
        status: dict[str, Any] = dict(obj.get("status") or {})
        try:
            spec = VaultStaticSecretSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            return await self._fail(
                obj,
                status,
                ReconcileProblem(
                    "InvalidSpec",
                    f"spec is invalid: {describe_validation_error(exc)}",
                    retry=False,
                ),
                key,
                spec=None,
            )
        try:
            return await self._sync(key, obj, spec, status, generation)
        except ReconcileProblem as problem:
            return await self._fail(obj, status, problem, key, spec=spec)

    async def _sync(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        spec: VaultStaticSecretSpec,
        status: dict[str, Any],
        generation: int,
    ) -> Result:
        resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
        # Path policies, checked on every reconcile: a policy written after this object was
        # admitted stops the sync here (the last Secret stays; see controllers/path_policy.py).
        enforce_path_policy(self.ctx, key.namespace, spec)
        transformation = resolve_transformation(self.ctx, key.namespace, spec.destination)
        # The live Secret is fetched while Vault answers: on a first sync it is not in the
        # owned-Secret cache, and a GET after the read would add a round trip to every create
        # (bench/: cold sync of 2,000 resources, one sequential API call of four). Not while
        # this key is failing: retries during a Vault outage must not cost the API server.
        live_read = None
        if not self.backoff.failures(key) and not self.outage_backoff.failures(key):
            live_read = asyncio.ensure_future(
                destination.read_live(self.ctx, key.namespace, spec.destination.name)
            )
        try:
            reads = await self._read_vault(resolved, key.namespace, spec)
            try:
                data = await build_data(reads, transformation, obj)
            except DataError as exc:
                raise ReconcileProblem(exc.reason, str(exc), retry=False) from exc
        except BaseException:
            if live_read is not None:
                live_read.cancel()
                await asyncio.gather(live_read, return_exceptions=True)
            raise

        dest = spec.destination
        new_mac = compute_mac(self.ctx.hmac_key, data)
        old_mac = status.get("secretMAC")
        vault_changed = old_mac is not None and old_mac != new_mac
        spec_changed = status.get("lastGeneration") != generation

        previous = status.get("destinationName")
        if live_read is not None:
            live = await live_read
        else:
            live = await destination.read_live(self.ctx, key.namespace, dest.name)
        destination.check_ownership(obj, dest, live)
        plan = destination.plan(
            obj, dest, live, data, vault_changed=vault_changed, spec_changed=spec_changed
        )
        if plan.write:
            await destination.write(self.ctx, obj, dest, data, plan.extra_keys)
            metrics.SECRET_WRITES.labels(KIND, plan.cause).inc()
            status["lastSyncTime"] = now_rfc3339()
            log.info("wrote Secret %s/%s (%s)", key.namespace, dest.name, plan.cause)
        renamed = bool(previous) and previous != dest.name
        if renamed and await destination.delete_if_owned(self.ctx, obj, str(previous)):
            log.info("deleted Secret %s/%s after a destination rename", key.namespace, previous)

        # Restart consumers only for a change of the delivered values: not on the first sync,
        # not when repairing a hand edit (the pods already run with the Vault values).
        rotated = vault_changed and bool(old_mac)
        restart_failures: list[str] = []
        if rotated and spec.rollout_restart_targets:
            restart_failures = await rollout.restart_targets(
                self.ctx, obj, spec.rollout_restart_targets
            )

        status["lastGeneration"] = generation
        status["destinationName"] = dest.name
        if spec.hmac_secret_data:
            status["secretMAC"] = new_mac
        else:
            status.pop("secretMAC", None)
        versions = [r.version for r in reads]
        if len(versions) == 1 and versions[0] is not None:
            status["vaultVersion"] = versions[0]
        else:
            status.pop("vaultVersion", None)
        message = f"Secret {dest.name} is in sync with Vault"
        set_condition(status, "SecretSynced", True, "Synced", message, generation)
        set_condition(status, "Healthy", True, "Healthy", "Vault reads succeed", generation)
        set_ready(status, restart_failures, message, generation)
        refresh = spec.refresh_after_seconds
        if refresh is None and spec.hmac_secret_data:
            refresh = self.ctx.settings.default_refresh_after
        refresh = effective_refresh(self.ctx, KIND, obj, status, refresh)
        await patch_status_if_changed(self.ctx.kube, VAULT_STATIC_SECRETS, obj, status)
        if plan.write:
            if plan.cause == "create":
                self.ctx.events.emit(obj, "Normal", "SecretSynced", f"created Secret {dest.name}")
            elif rotated:
                self.ctx.events.emit(
                    obj,
                    "Normal",
                    "SecretRotated",
                    f"Secret {dest.name} updated with new data from Vault",
                )
            else:
                self.ctx.events.emit(
                    obj,
                    "Normal",
                    "SecretSynced",
                    f"Secret {dest.name} rewritten ({plan.cause})",
                )
        self.backoff.reset(key)
        self.outage_backoff.reset(key)
        metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(1)
        metrics.RESOURCE_LAST_SYNC.labels(KIND, key.namespace, key.name).set(time.time())
        return Result(requeue_after=jittered(refresh) if refresh else None)

    async def _read_vault(
        self, resolved: ResolvedAuth, namespace: str, spec: VaultStaticSecretSpec
    ) -> list[SourceRead]:
        async def read_all(client: VaultClient) -> list[SourceRead]:
            reads = []
            for source in spec.kv_sources():
                secret = await client.kv_read(
                    source.mount,
                    source.path,
                    kv_version=2 if source.type == "kv-v2" else 1,
                    version=source.version or None,
                )
                reads.append(SourceRead(source.prefix, secret))
            return reads

        return await call_vault(self.access, resolved, namespace, spec.namespace, read_all)

    async def _fail(
        self,
        obj: dict[str, Any],
        status: dict[str, Any],
        problem: ReconcileProblem,
        key: ObjectKey,
        spec: VaultStaticSecretSpec | None,
    ) -> Result:
        generation = objects.generation(obj)
        set_condition(status, "SecretSynced", False, problem.reason, problem.message, generation)
        if is_vault_side(problem.reason):
            set_condition(status, "Healthy", False, problem.reason, problem.message, generation)
        set_condition(status, "Ready", False, problem.reason, problem.message, generation)
        metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(0)
        changed = await patch_status_if_changed(self.ctx.kube, VAULT_STATIC_SECRETS, obj, status)
        if changed or problem.retry:
            self.ctx.events.emit(obj, "Warning", event_reason(problem.reason), problem.message)
        log.warning("sync failed: %s: %s", problem.reason, problem.message)
        if not problem.retry:
            return Result()
        delay = self.backoff.failure(key)
        if isinstance(problem.__cause__, SealedOrUnavailable | VaultUnreachable):
            delay = min(delay, self.outage_backoff.failure(key))
        return Result(requeue_after=delay)
