"""VaultStaticSecret: KV secrets (one path, or several merged) → a Kubernetes Secret.

The kind's part of the delivery flow (controllers/delivery.py): read every KV source on each
reconcile, compare what it would write with what the Secret holds (HMAC of the data), and
requeue after `refreshAfter`. Restart the rollout targets only when Vault's values changed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vaultbridge.api.kinds import VAULT_STATIC_SECRET
from vaultbridge.api.labels import owner_from_labels
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.engine.backoff import Backoff, jittered
from vaultbridge.engine.controller import Controller, Result, owner_keys
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.fetch import SourceRead, read_kv_sources
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.vault.errors import SealedOrUnavailable, VaultUnreachable

from . import destination, ownership, secret_target
from .context import OperatorContext
from .delivery import DeliveryReconciler, Prepared
from .errors import ReconcileProblem
from .instant import set_instant_updates_condition
from .refresh import effective_refresh
from .status import now_rfc3339, set_condition, set_ready
from .transform import build_data
from .vault_access import VaultAccess
from .vault_call import call_vault
from .watches import Sources, changes_and_deletes

log = logging.getLogger(__name__)

KIND = VAULT_STATIC_SECRET.kind


#: While Vault itself is down (unreachable, frozen, sealed) every resource fails for the same
#: reason; the ordinary backoff (up to 60 s) would leave resources stale for up to a minute
#: after Vault returns. Outage retries back off too, jittered, but only up to ~10 s, so all
#: resources are synced within seconds of its return; the global Vault rate limit bounds the
#: load the retries put on a recovering server.
def outage_backoff() -> Backoff:
    return Backoff(base=2.0, cap=8.0, factor=1.5, jitter=0.25)


class VaultStaticSecretReconciler(DeliveryReconciler[VaultStaticSecretSpec]):
    info = VAULT_STATIC_SECRET

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        super().__init__(ctx, access)
        self.outage_backoff = outage_backoff()

    def watch_owned_secrets(self, ctl: Controller, sources: Sources) -> None:
        # Its own create comes back as ADDED while (or just after) it reconciles; another
        # reconcile would only read Vault again (bench/: 75 % of cold-sync reads were
        # these). Neither does its own update (`own_writes`): that cost one more Vault read per
        # change. Drift (MODIFIED) and deletion (DELETED) still bring the owner back.
        ctl.watch(
            sources.owned_secrets,
            mapper=lambda s: owner_keys(
                s, KIND, self.info.group, lambda o: owner_from_labels(o, KIND)
            ),
            priority_fn=lambda event, old, new: (
                None
                if self.own_writes.is_echo(event, old, new)
                else changes_and_deletes(event, old, new)
            ),
        )

    def forget(self, key: ObjectKey) -> None:
        super().forget(key)
        self.outage_backoff.reset(key)

    def retry_delay(self, key: ObjectKey, obj: dict[str, Any], problem: ReconcileProblem) -> float:
        delay = super().retry_delay(key, obj, problem)
        if isinstance(problem.__cause__, SealedOrUnavailable | VaultUnreachable):
            delay = min(delay, self.outage_backoff.failure(key))
        return delay

    async def sync(self, p: Prepared[VaultStaticSecretSpec]) -> Result:
        key, spec, status = p.key, p.spec, p.status
        # A first sync reads nothing from the API server: the owned-Secret cache has listed
        # and does not hold the destination, so the write is create-only and falls back to a
        # read and the ownership checks if the Secret exists after all (delivery.deliver).
        # Otherwise the live Secret (from the cache, or a GET for a Secret we do not own) is
        # fetched while Vault answers, not after; and not while this key is failing: retries
        # during a Vault outage must not cost the API server.
        absent = destination.presumed_absent(self.ctx, key.namespace, p.dest)
        live_read = None
        if not absent and not self.backoff.failures(key) and not self.outage_backoff.failures(key):
            live_read = asyncio.ensure_future(
                destination.read_live(
                    self.ctx, key.namespace, p.dest.name, values=not p.dest.create
                )
            )
        try:
            reads = await self._read_vault(p)
            try:
                data = await build_data(reads, p.transformation, p.obj)
            except DataError as exc:
                raise ReconcileProblem(exc.reason, str(exc), retry=False) from exc
        except BaseException:
            if live_read is not None:
                live_read.cancel()
                await asyncio.gather(live_read, return_exceptions=True)
            raise
        if absent:
            live = None
        elif live_read is not None:
            live = await ownership.claim(self.ctx, p.obj, p.dest, await live_read)
        else:
            live = await self.live_secret(p)

        new_mac = compute_mac(self.ctx.hmac_key, data)
        old_mac = status.get("secretMAC")
        vault_changed = old_mac is not None and old_mac != new_mac
        # Restart consumers only for a change of the delivered values: not on the first sync,
        # not when repairing a hand edit (the pods already run with the Vault values).
        rotated = vault_changed and bool(old_mac)
        delivered = await secret_target.deliver_to_secret(
            self,
            p,
            live,
            data,
            vault_changed=vault_changed,
            spec_changed=status.get("lastGeneration") != p.generation,
            previous=status.get("destinationName"),
            restart=rotated,
            mac=new_mac,
        )
        plan = delivered.plan
        if plan.write:
            status["lastSyncTime"] = now_rfc3339()
            log.info("wrote Secret %s/%s (%s)", key.namespace, p.dest.name, plan.cause)
        self._mark_synced(p, new_mac, [r.version for r in reads], delivered.restart_failures)
        refresh = spec.refresh_after_seconds
        if refresh is None and spec.hmac_secret_data:
            refresh = self.ctx.settings.default_refresh_after
        # Before the status write: a clamped request is reported on the object, and whether
        # its instant updates are live (controllers/instant.py).
        refresh = effective_refresh(self.ctx, KIND, p.obj, status, refresh)
        stream = self.ctx.instant_updates
        set_instant_updates_condition(
            status,
            spec,
            stream_enabled=stream is not None,
            live=stream is not None and stream.is_live(p.resolved.settings.address),
            generation=p.generation,
        )
        await self.succeed(p, delivered=True)
        self.outage_backoff.reset(key)
        if plan.write:
            if plan.cause == "create":
                # Sampled under bulk (a cold sync); the SecretSynced condition and the
                # Secret's creationTimestamp say when and why it was created.
                self.ctx.events.emit_routine(
                    p.obj, "Normal", "SecretSynced", f"created Secret {p.dest.name}"
                )
            elif rotated:
                self.emit_written(
                    p, "SecretRotated", f"Secret {p.dest.name} updated with new data from Vault"
                )
            else:
                self.emit_written(
                    p, "SecretSynced", f"Secret {p.dest.name} rewritten ({plan.cause})"
                )
        return Result(requeue_after=jittered(refresh) if refresh else None)

    def _mark_synced(
        self,
        p: Prepared[VaultStaticSecretSpec],
        mac: str,
        versions: list[int | None],
        restart_failures: list[str],
    ) -> None:
        status, generation = p.status, p.generation
        status["lastGeneration"] = generation
        status["destinationName"] = p.dest.name
        if p.spec.hmac_secret_data:
            status["secretMAC"] = mac
        else:
            status.pop("secretMAC", None)
        if len(versions) == 1 and versions[0] is not None:
            status["vaultVersion"] = versions[0]
        else:
            status.pop("vaultVersion", None)
        message = f"Secret {p.dest.name} is in sync with Vault"
        set_condition(status, "SecretSynced", True, "Synced", message, generation)
        set_condition(status, "Healthy", True, "Healthy", "Vault reads succeed", generation)
        set_ready(status, restart_failures, message, generation)

    async def _read_vault(self, p: Prepared[VaultStaticSecretSpec]) -> list[SourceRead]:
        return await call_vault(
            self.access,
            p.resolved,
            p.key.namespace,
            p.spec.namespace,
            lambda client: read_kv_sources(client, p.spec),
        )
