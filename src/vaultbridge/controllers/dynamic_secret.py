"""VaultDynamicSecret: leased credentials kept valid in a Kubernetes Secret.

One linear reconcile, like VaultStaticSecret, with one more question before any Vault call:
is the lease we hold still good? The answer comes from what this process remembers of the
lease it last issued or renewed, or — after a restart — from the persisted status
(`secretLease`, `lastRenewalTime`, `secretMAC`). If the lease is not yet due, the destination
still holds exactly what we wrote and the spec did not change, the reconcile only requeues:
an operator restart or a watch event never turns into a new set of credentials.

When a lease is due it is renewed; when it cannot be renewed (not renewable, gone, max TTL
reached) new credentials are issued, written and the rollout targets restarted. The old
credentials are left to expire on their own: pods still use them until the rollout finishes.
Failures never empty or delete the destination.

The memory is the freshest source: the informer's copy of our own status can lag behind the
status patch we just sent, and reading the lease from it would issue credentials twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.kinds import VAULT_DYNAMIC_SECRETS
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.observability import metrics
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.secrets.redact import SecretData
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import InvalidRequest, NotFound, PermissionDenied
from vaultbridge.vault.models import LeaseInfo, VaultResponse

from . import destination, finalizer, lease_schedule, live_secret, rollout
from .errors import ReconcileProblem
from .lease_schedule import Action, LeaseTimes
from .leased import LeasedReconciler
from .path_policy import enforce_path_policy
from .status import patch_status_if_changed, set_condition, set_ready
from .transform import resolve_transformation
from .vault_access import ResolvedAuth
from .vault_call import GIVE_UP_ON_DELETE_REASONS, call_vault

log = logging.getLogger(__name__)

KIND = "VaultDynamicSecret"
REVOKE_FINALIZER = "vaultbridge.dev/revoke-lease"


@dataclass(frozen=True)
class HeldLease:
    """The credentials this object currently delivers, as far as the operator knows."""

    uid: str
    generation: int
    lease_id: str
    duration: int
    renewable: bool
    request_id: str
    last_renewal: int
    """Unix seconds of the last issue or renewal."""
    asked: int
    """Duration granted at issue: the increment asked for at each renewal."""
    mac: str
    destination: str
    static_ttl: int | None = None
    """Static-role credentials: seconds until Vault rotates them, as of `last_renewal`."""

    @property
    def times(self) -> LeaseTimes:
        return LeaseTimes(float(self.last_renewal), float(self.duration), self.renewable)


def held_from_status(obj: dict[str, Any]) -> HeldLease | None:
    """The lease recorded in the status, if the status records a complete one."""
    status = obj.get("status") or {}
    lease = status.get("secretLease") or {}
    mac = status.get("secretMAC")
    last = status.get("lastRenewalTime")
    generation = status.get("lastGeneration")
    if not mac or not isinstance(last, int) or not isinstance(generation, int):
        return None
    static = status.get("staticCredsMetaData") or None
    return HeldLease(
        uid=objects.uid(obj),
        generation=generation,
        lease_id=str(lease.get("id") or ""),
        duration=int(lease.get("duration") or 0),
        renewable=bool(lease.get("renewable")),
        request_id=str(lease.get("requestID") or ""),
        last_renewal=last,
        asked=int(lease.get("duration") or 0),
        mac=str(mac),
        destination=str(((obj.get("spec") or {}).get("destination") or {}).get("name") or ""),
        static_ttl=int(static.get("ttl") or 0) if isinstance(static, dict) else None,
    )


class VaultDynamicSecretReconciler(LeasedReconciler[VaultDynamicSecretSpec, HeldLease]):
    kind = KIND
    resource = VAULT_DYNAMIC_SECRETS
    finalizer_name = REVOKE_FINALIZER
    spec_model = VaultDynamicSecretSpec

    def held_from_status(self, obj: dict[str, Any]) -> HeldLease | None:
        return held_from_status(obj)

    def expires_at(self, held: HeldLease) -> float | None:
        if held.lease_id and held.duration > 0:
            return held.times.expires_at
        return None

    # -- sync ----------------------------------------------------------------------------

    async def _sync(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        spec: VaultDynamicSecretSpec,
        status: dict[str, Any],
    ) -> Result:
        generation = objects.generation(obj)
        resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
        # Path policies, checked on every reconcile like VaultStaticSecret does: a refusal
        # keeps the last Secret (see controllers/path_policy.py).
        enforce_path_policy(self.ctx, key.namespace, spec)
        transformation = resolve_transformation(self.ctx, key.namespace, spec.destination)
        if spec.revoke:
            await finalizer.ensure_finalizer(self.ctx, VAULT_DYNAMIC_SECRETS, obj, REVOKE_FINALIZER)
        else:
            await finalizer.remove_finalizer(self.ctx, VAULT_DYNAMIC_SECRETS, obj, REVOKE_FINALIZER)

        dest = spec.destination
        live = await destination.read_live(self.ctx, key.namespace, dest.name)
        destination.check_ownership(obj, dest, live)
        held = self._current(key, obj)
        now = time.time()

        reason = self._reissue_reason(obj, spec, held, live, generation)
        if reason in ("destination-missing", "drift"):
            # The owned-Secret cache may not have seen our own last write yet: ask the API
            # server before replacing credentials that are probably fine.
            live = await live_secret.read_fresh(self.ctx, key.namespace, dest.name)
            destination.check_ownership(obj, dest, live)
            reason = self._reissue_reason(obj, spec, held, live, generation)
        renewal_note: tuple[bool, str, str] | None = None
        if reason is None:
            assert held is not None
            decision = self._decide(spec, held, now)
            if decision.action is Action.WAIT:
                self._mark_synced(status, spec=spec, held=held, generation=generation, renewal=None)
                await patch_status_if_changed(self.ctx.kube, VAULT_DYNAMIC_SECRETS, obj, status)
                self.backoff.reset(key)
                metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(1)
                _export_expiry(key, held)
                return Result(requeue_after=self._requeue(spec, held, now))
            if decision.action is Action.RENEW:
                try:
                    renewed, renewal_note = await self._renew(key, resolved, spec, held, now)
                except ReconcileProblem as problem:
                    # Vault unreachable or similar: the lease is still valid until it expires;
                    # _fail retries before then.
                    set_condition(
                        status, "LeaseRenewal", False, problem.reason, problem.message, generation
                    )
                    raise
                if renewed is not None:
                    self._held[key] = renewed
                    self._mark_synced(
                        status,
                        spec=spec,
                        held=renewed,
                        generation=generation,
                        renewal=renewal_note,
                    )
                    await patch_status_if_changed(self.ctx.kube, VAULT_DYNAMIC_SECRETS, obj, status)
                    self.backoff.reset(key)
                    metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(1)
                    _export_expiry(key, renewed)
                    return Result(requeue_after=self._requeue(spec, renewed, time.time()))
                reason = "lease-exhausted"
            else:
                reason = "lease-due" if held.lease_id else "refresh"

        return await self._issue(
            key,
            obj,
            spec=spec,
            status=status,
            resolved=resolved,
            transformation=transformation,
            held=held,
            live=live,
            cause=reason,
            renewal_note=renewal_note,
        )

    def _reissue_reason(
        self,
        obj: dict[str, Any],
        spec: VaultDynamicSecretSpec,
        held: HeldLease | None,
        live: dict[str, Any] | None,
        generation: int,
    ) -> str | None:
        """Why the current credentials cannot be kept as they are (None: they can)."""
        if held is None:
            return "create"
        if held.generation != generation:
            return "spec-change"
        if held.destination and held.destination != spec.destination.name:
            return "spec-change"
        if live is None:
            return "destination-missing"
        if spec.destination.create:
            live_data = destination.decode_data(live)
            if compute_mac(self.ctx.hmac_key, live_data) != held.mac:
                return "drift"
            plan = destination.plan(
                obj, spec.destination, live, live_data, vault_changed=False, spec_changed=False
            )
            if plan.write:
                return "drift"
        return None

    def _decide(
        self, spec: VaultDynamicSecretSpec, held: HeldLease, now: float
    ) -> lease_schedule.Decision:
        if held.lease_id and held.duration > 0:
            return lease_schedule.next_lease_action(held.times, spec.renewal_percent, now)
        if held.static_ttl is not None and spec.allow_static_creds:
            due = held.last_renewal + held.static_ttl + 1.0
            if now < due:
                return lease_schedule.Decision(Action.WAIT, due - now)
            return lease_schedule.Decision(Action.REISSUE)
        refresh = spec.refresh_after_seconds
        if refresh:
            return lease_schedule.next_deadline_decision(held.last_renewal + refresh, refresh, now)
        # No lease, no refresh: the credentials do not expire as far as Vault told us.
        return lease_schedule.Decision(Action.WAIT, float("inf"))

    def _requeue(self, spec: VaultDynamicSecretSpec, held: HeldLease, now: float) -> float | None:
        decision = self._decide(spec, held, now)
        if decision.action is not Action.WAIT:
            return lease_schedule.MIN_DELAY
        if decision.delay == float("inf"):
            return None
        if held.static_ttl is not None and not held.lease_id:
            # Late, not early: the new password exists only after Vault rotated it.
            return lease_schedule.static_creds_delay(max(0.0, decision.delay - 1.0))
        return lease_schedule.requeue_delay(decision.delay)

    # -- renewal -------------------------------------------------------------------------

    async def _renew(
        self,
        key: ObjectKey,
        resolved: ResolvedAuth,
        spec: VaultDynamicSecretSpec,
        held: HeldLease,
        now: float,
    ) -> tuple[HeldLease | None, tuple[bool, str, str]]:
        """Renew the lease. Returns the renewed lease, or None when new credentials are needed,
        plus the LeaseRenewal condition (ok, reason, message) to record."""
        asked = held.asked or held.duration
        try:
            info = await call_vault(
                self.access,
                resolved,
                key.namespace,
                spec.namespace,
                lambda c: c.renew_lease(held.lease_id, increment=asked),
            )
        except ReconcileProblem as problem:
            cause = problem.__cause__
            if isinstance(cause, InvalidRequest | NotFound | PermissionDenied):
                # The lease is gone (revoked, expired, tidied), or this token may not renew it
                # (e.g. a lease issued to the token of a previous operator process): new
                # credentials are the only way to keep the Secret valid.
                self.ctx.events.emit(
                    self._obj(key),
                    "Warning",
                    "LeaseRenewalFailed",
                    f"renewing lease {held.lease_id} failed, issuing new credentials: {cause}",
                )
                log.warning("renewing lease %s failed: %s", held.lease_id, cause)
                return None, (False, problem.reason, f"renewal failed: {cause}")
            raise
        return self._after_renewal(spec, held, info, asked, now)

    def _after_renewal(
        self,
        spec: VaultDynamicSecretSpec,
        held: HeldLease,
        info: LeaseInfo,
        asked: int,
        now: float,
    ) -> tuple[HeldLease | None, tuple[bool, str, str]]:
        if lease_schedule.renewal_exhausted(asked, info.lease_duration, spec.renewal_percent):
            message = (
                f"lease {held.lease_id} reached its max TTL (asked {asked}s, granted "
                f"{info.lease_duration}s): issuing new credentials"
            )
            log.info("%s", message)
            return None, (True, "MaxTTLReached", message)
        renewed = replace(
            held,
            duration=info.lease_duration,
            renewable=info.renewable,
            last_renewal=int(now),
            asked=asked,
        )
        log.debug("renewed lease %s for %ss", held.lease_id, info.lease_duration)
        return renewed, (True, "Renewed", f"lease renewed for {info.lease_duration}s")

    # -- issue ---------------------------------------------------------------------------

    async def _issue(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        *,
        spec: VaultDynamicSecretSpec,
        status: dict[str, Any],
        resolved: ResolvedAuth,
        transformation: pipeline.TransformationSpec,
        held: HeldLease | None,
        live: dict[str, Any] | None,
        cause: str,
        renewal_note: tuple[bool, str, str] | None,
    ) -> Result:
        generation = objects.generation(obj)
        resp = await self._request_credentials(key, resolved, spec)
        now = int(time.time())
        if resp.data is None:
            raise ReconcileProblem(
                "VaultEmptyResponse",
                f"Vault returned no data for {spec.request_path()}",
            )
        data = await self._build(resp, transformation, obj, spec)
        dest = spec.destination
        mac = compute_mac(self.ctx.hmac_key, data)
        plan = destination.plan(
            obj,
            dest,
            live,
            data,
            vault_changed=held is not None,
            spec_changed=cause == "spec-change",
        )
        if plan.write:
            await destination.write(self.ctx, obj, dest, data, plan.extra_keys)
            metrics.SECRET_WRITES.labels(KIND, plan.cause).inc()
        static_ttl = self._static_ttl(spec, resp)
        new = HeldLease(
            uid=objects.uid(obj),
            generation=generation,
            lease_id=resp.lease_id,
            duration=resp.lease_duration,
            renewable=resp.renewable,
            request_id=resp.request_id,
            last_renewal=now,
            asked=resp.lease_duration,
            mac=mac,
            destination=dest.name,
            static_ttl=static_ttl,
        )
        self._held[key] = new
        old_dest = held.destination if held is not None else ""
        if (
            old_dest
            and old_dest != dest.name
            and await destination.delete_if_owned(self.ctx, obj, old_dest)
        ):
            log.info(
                "deleted Secret %s/%s after a destination rename",
                key.namespace,
                old_dest,
            )

        # New credentials replace ones that consumers may be using: restart them. Not on the
        # first issue, and not when the values are unchanged (static-role re-read before
        # Vault rotated).
        rotated = held is not None and held.mac != mac
        restart_failures: list[str] = []
        if rotated and spec.rollout_restart_targets:
            restart_failures = await rollout.restart_targets(
                self.ctx, obj, spec.rollout_restart_targets
            )
        if renewal_note is None:
            renewal_note = self._issue_note(new)
        self._mark_synced(
            status,
            spec=spec,
            held=new,
            generation=generation,
            renewal=renewal_note,
            restart_failures=restart_failures,
        )
        if static_ttl is not None:
            status["staticCredsMetaData"] = _static_meta(resp)
        else:
            status.pop("staticCredsMetaData", None)
        await patch_status_if_changed(self.ctx.kube, VAULT_DYNAMIC_SECRETS, obj, status)
        if plan.write:
            if held is None or plan.cause == "create":
                self.ctx.events.emit(obj, "Normal", "SecretSynced", f"created Secret {dest.name}")
            else:
                self.ctx.events.emit(
                    obj,
                    "Normal",
                    "SecretRotated",
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
        self.backoff.reset(key)
        metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(1)
        _export_expiry(key, new)
        metrics.RESOURCE_LAST_SYNC.labels(KIND, key.namespace, key.name).set(time.time())
        return Result(requeue_after=self._requeue(spec, new, time.time()))

    @staticmethod
    def _issue_note(held: HeldLease) -> tuple[bool, str, str]:
        if not held.lease_id:
            return True, "NoLease", "Vault returned no lease for these credentials"
        if not held.renewable:
            return (
                True,
                "NotRenewable",
                (
                    f"lease {held.lease_id} is not renewable; new credentials are issued at "
                    "the renewal point"
                ),
            )
        return True, "LeaseIssued", f"lease {held.lease_id} issued for {held.duration}s"

    async def _request_credentials(
        self, key: ObjectKey, resolved: ResolvedAuth, spec: VaultDynamicSecretSpec
    ) -> VaultResponse:
        path = spec.request_path()
        method = spec.effective_http_method()

        async def request(client: VaultClient) -> VaultResponse:
            if method == "GET":
                return await client.read(
                    path, params=dict(spec.params) or None, operation="dynamic_read"
                )
            resp = await client.write(
                path, dict(spec.params), method=method, operation="dynamic_write"
            )
            if resp is None:
                raise ReconcileProblem(
                    "VaultEmptyResponse", f"Vault answered {method} {path} without a body"
                )
            return resp

        return await call_vault(self.access, resolved, key.namespace, spec.namespace, request)

    async def _build(
        self,
        resp: VaultResponse,
        transformation: pipeline.TransformationSpec,
        obj: dict[str, Any],
        spec: VaultDynamicSecretSpec,
    ) -> SecretData:
        assert resp.data is not None
        try:
            return await pipeline.build_secret_data_async(
                [pipeline.Source(data=resp.data, raw=resp.data)],
                transformation,
                labels=objects.labels(obj),
                annotations=objects.annotations(obj),
            )
        except DataError as exc:
            raise ReconcileProblem(exc.reason, str(exc), retry=False) from exc

    @staticmethod
    def _static_ttl(spec: VaultDynamicSecretSpec, resp: VaultResponse) -> int | None:
        if not spec.allow_static_creds or resp.lease_id or resp.data is None:
            return None
        ttl = resp.data.get("ttl")
        return ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 else None

    # -- status --------------------------------------------------------------------------

    def _mark_synced(
        self,
        status: dict[str, Any],
        *,
        spec: VaultDynamicSecretSpec,
        held: HeldLease,
        generation: int,
        renewal: tuple[bool, str, str] | None,
        restart_failures: list[str] | None = None,
    ) -> None:
        status["lastGeneration"] = generation
        status["secretMAC"] = held.mac
        status["lastRenewalTime"] = held.last_renewal
        status["secretLease"] = {
            "id": held.lease_id,
            "duration": held.duration,
            "renewable": held.renewable,
            "requestID": held.request_id,
        }
        message = f"Secret {spec.destination.name} holds valid credentials from Vault"
        set_condition(status, "SecretSynced", True, "Synced", message, generation)
        set_condition(status, "Healthy", True, "Healthy", "Vault requests succeed", generation)
        if renewal is not None:
            ok, reason, text = renewal
            set_condition(status, "LeaseRenewal", ok, reason, text, generation)
        elif not any(c.get("type") == "LeaseRenewal" for c in status.get("conditions") or []):
            ok, reason, text = self._issue_note(held)
            set_condition(status, "LeaseRenewal", ok, reason, text, generation)
        set_ready(status, restart_failures, message, generation)

    # -- deletion ------------------------------------------------------------------------

    async def _finalize(
        self, key: ObjectKey, obj: dict[str, Any], spec: VaultDynamicSecretSpec
    ) -> Result:
        if not finalizer.has_finalizer(obj, REVOKE_FINALIZER):
            return Result()
        held = self._current(key, obj)
        if held is not None and held.lease_id:
            try:
                resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
                await call_vault(
                    self.access,
                    resolved,
                    key.namespace,
                    spec.namespace,
                    lambda c: c.revoke_lease(held.lease_id),
                )
                log.info("revoked lease %s of %s/%s", held.lease_id, key.namespace, key.name)
                self.ctx.events.emit(
                    obj, "Normal", "LeaseRevoked", f"revoked lease {held.lease_id}"
                )
            except ReconcileProblem as problem:
                cause = problem.__cause__
                if isinstance(cause, InvalidRequest | NotFound):
                    log.info("lease %s already gone: %s", held.lease_id, cause)
                elif problem.reason in GIVE_UP_ON_DELETE_REASONS:
                    self.ctx.events.emit(
                        obj,
                        "Warning",
                        "LeaseRevokeSkipped",
                        f"cannot revoke lease {held.lease_id} ({problem.message}); it expires "
                        "at the end of its TTL",
                    )
                else:
                    self.ctx.events.emit(
                        obj,
                        "Warning",
                        "LeaseRevokeFailed",
                        f"revoking lease {held.lease_id} failed: {problem.message}",
                    )
                    return Result(requeue_after=self.backoff.failure(key))
        await finalizer.remove_finalizer(self.ctx, VAULT_DYNAMIC_SECRETS, obj, REVOKE_FINALIZER)
        self._held.pop(key, None)
        self.backoff.reset(key)
        return Result()

    def _obj(self, key: ObjectKey) -> dict[str, Any]:
        return self.ctx.informer(VAULT_DYNAMIC_SECRETS).store.get(key) or {
            "apiVersion": VAULT_DYNAMIC_SECRETS.api_version,
            "kind": KIND,
            "metadata": {"name": key.name, "namespace": key.namespace},
        }


def _static_meta(resp: VaultResponse) -> dict[str, int]:
    data = resp.data or {}

    def num(name: str) -> int:
        v = data.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    rotation = data.get("last_vault_rotation")
    last = 0
    if isinstance(rotation, str) and rotation:
        try:
            last = int(dt.datetime.fromisoformat(rotation.replace("Z", "+00:00")).timestamp())
        except ValueError:
            last = 0
    return {
        "lastVaultRotation": max(0, last),
        "rotationPeriod": num("rotation_period"),
        "ttl": num("ttl"),
    }


def _export_expiry(key: ObjectKey, held: HeldLease) -> None:
    """Publish when the lease ends, so users can alert before credentials run out."""
    if held.lease_id and held.duration > 0:
        metrics.RESOURCE_EXPIRY.labels(KIND, key.namespace, key.name).set(
            held.last_renewal + held.duration
        )
