"""VaultDynamicSecret: leased credentials kept valid in a Kubernetes Secret.

The kind's part of the delivery flow (controllers/delivery.py, leased.py), with one more
question before any Vault call:
is the lease we hold still good? The answer comes from what this process remembers of the
lease it last issued or renewed, or — after a restart — from the persisted status
(`secretLease`, `lastRenewalTime`, `secretMAC`). If the lease is not yet due, the destination
still holds exactly what we wrote and the spec did not change, the reconcile only requeues:
an operator restart or a watch event never turns into a new set of credentials.

When a lease is due it is renewed; when it cannot be renewed (not renewable, gone, max TTL
reached) new credentials are issued, written and the rollout targets restarted. The old
credentials are left to expire on their own: pods still use them until the rollout finishes.
Failures never empty or delete the destination.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.kinds import VAULT_DYNAMIC_SECRET
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.fetch import request_credentials
from vaultbridge.kube import objects
from vaultbridge.observability import metrics
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.vault.errors import InvalidRequest, NotFound, PermissionDenied
from vaultbridge.vault.lease_schedule import Action
from vaultbridge.vault.models import VaultResponse

from .cleanup import Deleting, NotCleaned, not_cleaned
from .delivery import Prepared
from .errors import ReconcileProblem
from .held_lease import (
    HeldLease,
    Renewal,
    after_renewal,
    decide,
    held_from_status,
    issue_note,
    record_lease,
    requeue,
    static_meta,
    static_ttl,
)
from .leased import LeasedReconciler
from .reasons import Reason
from .status import set_condition
from .vault_call import call_vault

log = logging.getLogger(__name__)

KIND = VAULT_DYNAMIC_SECRET.kind
REVOKE_FINALIZER = "vaultbridge.dev/revoke-lease"


class VaultDynamicSecretReconciler(LeasedReconciler[VaultDynamicSecretSpec, HeldLease]):
    info = VAULT_DYNAMIC_SECRET
    finalizer_name = REVOKE_FINALIZER

    def wants_finalizer(self, spec: VaultDynamicSecretSpec) -> bool:
        return spec.revoke

    def held_from_status(self, obj: dict[str, Any]) -> HeldLease | None:
        return held_from_status(obj)

    def expires_at(self, held: HeldLease) -> float | None:
        if held.lease_id and held.duration > 0:
            return held.times.expires_at
        return None

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, p: Prepared[VaultDynamicSecretSpec]) -> Result:
        held = self.current(p.key, p.obj)
        now = time.time()
        cause, live = await self.confirmed_cause(p, held)
        renewal_note: Renewal | None = None
        if cause is None:
            assert held is not None
            decision = decide(p.spec, held, now)
            if decision.action is Action.WAIT:
                return await self._keep(p, held, None, now)
            if decision.action is Action.RENEW:
                try:
                    renewed, renewal_note = await self._renew(p, held, now)
                except ReconcileProblem as problem:
                    # Vault unreachable or similar: the lease is still valid until it expires;
                    # the failure path retries before then.
                    set_condition(
                        p.status,
                        "LeaseRenewal",
                        False,
                        problem.reason,
                        problem.message,
                        p.generation,
                    )
                    raise
                if renewed is not None:
                    self.remember(p.key, renewed)
                    return await self._keep(p, renewed, renewal_note, time.time())
                cause = "lease-exhausted"
            else:
                cause = "lease-due" if held.lease_id else "refresh"
        return await self._issue(p, held, live, cause, renewal_note)

    async def _keep(
        self,
        p: Prepared[VaultDynamicSecretSpec],
        held: HeldLease,
        renewal: Renewal | None,
        now: float,
    ) -> Result:
        """The credentials stay: confirm them in the status and wait for the next due time."""
        self._mark_synced(p, held, renewal)
        await self.succeed(p, delivered=False)
        _export_expiry(p.key, held)
        return Result(requeue_after=requeue(p.spec, held, now))

    # -- renewal -------------------------------------------------------------------------

    async def _renew(
        self, p: Prepared[VaultDynamicSecretSpec], held: HeldLease, now: float
    ) -> tuple[HeldLease | None, Renewal]:
        """Renew the lease. Returns the renewed lease, or None when new credentials are needed,
        plus the LeaseRenewal condition (ok, reason, message) to record."""
        asked = held.asked or held.duration
        try:
            info = await call_vault(
                self.access,
                p.resolved,
                p.key.namespace,
                p.spec.namespace,
                lambda c: c.renew_lease(held.lease_id, increment=asked),
            )
        except ReconcileProblem as problem:
            cause = problem.__cause__
            if isinstance(cause, InvalidRequest | NotFound | PermissionDenied):
                # The lease is gone (revoked, expired, tidied), or this token may not renew it
                # (e.g. a lease issued to the token of a previous operator process): new
                # credentials are the only way to keep the Secret valid.
                self.ctx.events.emit(
                    p.obj,
                    "Warning",
                    "LeaseRenewalFailed",
                    f"renewing lease {held.lease_id} failed, issuing new credentials: {cause}",
                )
                log.warning("renewing lease %s failed: %s", held.lease_id, cause)
                return None, (False, problem.reason, f"renewal failed: {cause}")
            raise
        return after_renewal(p.spec, held, info, asked, now)

    # -- issue ---------------------------------------------------------------------------

    async def _issue(
        self,
        p: Prepared[VaultDynamicSecretSpec],
        held: HeldLease | None,
        live: dict[str, Any] | None,
        cause: str,
        renewal_note: Renewal | None,
    ) -> Result:
        key, spec, dest = p.key, p.spec, p.dest
        resp = await self._request_credentials(p)
        now = int(time.time())
        if resp.data is None:
            raise ReconcileProblem(
                Reason.VAULT_EMPTY_RESPONSE, f"Vault returned no data for {spec.request_path()}"
            )
        data = await self.build(p, [pipeline.Source(data=resp.data, raw=resp.data)])
        mac = compute_mac(self.ctx.hmac_key, data)
        ttl = static_ttl(spec, resp)
        new = HeldLease(
            uid=objects.uid(p.obj),
            generation=p.generation,
            lease_id=resp.lease_id,
            duration=resp.lease_duration,
            renewable=resp.renewable,
            request_id=resp.request_id,
            last_renewal=now,
            asked=resp.lease_duration,
            mac=mac,
            destination=dest.name,
            static_ttl=ttl,
        )
        # New credentials replace ones that consumers may be using: restart them. Not on the
        # first issue, and not when the values are unchanged (static-role re-read before
        # Vault rotated).
        delivered = await self.deliver_new(
            p,
            live,
            data,
            held=held,
            new=new,
            cause=cause,
            restart=held is not None and held.mac != mac,
        )
        renewal = renewal_note if renewal_note is not None else issue_note(new)
        self._mark_synced(p, new, renewal, delivered.restart_failures)
        if ttl is not None:
            p.status["staticCredsMetaData"] = static_meta(resp)
        else:
            p.status.pop("staticCredsMetaData", None)
        await self.succeed(p, delivered=True)
        if delivered.plan.write:
            self.announce(
                p,
                delivered,
                held is None,
                f"created Secret {dest.name}",
                f"Secret {dest.name} updated with new credentials ({cause})",
            )
        log.info(
            "issued credentials for %s/%s into Secret %s (%s, lease %s, %ss)",
            key.namespace,
            key.name,
            dest.name,
            cause,
            resp.lease_id or "none",
            resp.lease_duration,
        )
        _export_expiry(key, new)
        return Result(requeue_after=requeue(spec, new, time.time()))

    async def _request_credentials(self, p: Prepared[VaultDynamicSecretSpec]) -> VaultResponse:
        spec = p.spec
        resp = await call_vault(
            self.access,
            p.resolved,
            p.key.namespace,
            spec.namespace,
            lambda client: request_credentials(client, spec),
        )
        if resp is None:
            raise ReconcileProblem(
                Reason.VAULT_EMPTY_RESPONSE,
                f"Vault answered {spec.effective_http_method()} {spec.request_path()} "
                "without a body",
            )
        return resp

    # -- status --------------------------------------------------------------------------

    def _mark_synced(
        self,
        p: Prepared[VaultDynamicSecretSpec],
        held: HeldLease,
        renewal: Renewal | None,
        restart_failures: list[str] | None = None,
    ) -> None:
        record_lease(p.status, held, renewal, p.generation)
        message = f"Secret {p.dest.name} holds valid credentials from Vault"
        self.mark_held(p, held, message, restart_failures)

    async def clean_up(self, d: Deleting[VaultDynamicSecretSpec, HeldLease]) -> NotCleaned | None:
        key, obj, spec, held = d.key, d.obj, d.spec, d.held
        if held is None or not held.lease_id:
            return None
        try:
            resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
            await call_vault(
                self.access,
                resolved,
                key.namespace,
                spec.namespace,
                lambda c: c.revoke_lease(held.lease_id),
            )
        except ReconcileProblem as problem:
            return not_cleaned(problem, f"lease {held.lease_id}", "LeaseRevokeFailed")
        log.info("revoked lease %s of %s/%s", held.lease_id, key.namespace, key.name)
        self.ctx.events.emit(obj, "Normal", "LeaseRevoked", f"revoked lease {held.lease_id}")
        return None


def _export_expiry(key: ObjectKey, held: HeldLease) -> None:
    """Publish when the lease ends, so users can alert before credentials run out."""
    if held.lease_id and held.duration > 0:
        metrics.RESOURCE_EXPIRY.labels(KIND, key.namespace, key.name).set(
            held.last_renewal + held.duration
        )
