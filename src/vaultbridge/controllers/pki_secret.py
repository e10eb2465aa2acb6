"""VaultPKISecret: a certificate issued by Vault's PKI engine, replaced before it expires.

The kind's part of the delivery flow (controllers/delivery.py, leased.py): keep the current
certificate while the spec is unchanged, the destination holds exactly what was written and
`expiration - expiryOffset` has not come;
otherwise issue a new one, write it, restart the rollout targets and (with `revoke`) revoke the
certificate it replaces. The schedule is recomputed from the status after a restart, so a
restart never issues a certificate by itself. Failures never empty or delete the destination.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from vaultbridge.api.kinds import VAULT_PKI_SECRET
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.fetch import issue_certificate, revoke_certificate
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.observability import metrics
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.certificates import certificate_fields
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.vault import lease_schedule
from vaultbridge.vault.client import RevokeOutcome
from vaultbridge.vault.lease_schedule import Action

from .cleanup import Deleting, NotCleaned, not_cleaned
from .delivery import Prepared
from .errors import ReconcileProblem
from .leased import LeasedReconciler
from .reasons import Reason
from .resolution import ResolvedAuth
from .vault_call import call_vault

log = logging.getLogger(__name__)

KIND = VAULT_PKI_SECRET.kind
CLEANUP_FINALIZER = "vaultbridge.dev/pki-cleanup"


@dataclass(frozen=True)
class HeldCert:
    """The certificate this object currently delivers."""

    uid: str
    generation: int
    serial: str
    expiration: int
    mac: str
    destination: str
    issued_at: float | None = None
    """When this process issued it (or, after a restart, first saw it)."""


def held_from_status(obj: dict[str, Any]) -> HeldCert | None:
    status = obj.get("status") or {}
    serial = status.get("serialNumber")
    expiration = status.get("expiration")
    mac = status.get("secretMAC")
    generation = status.get("lastGeneration")
    if not serial or not mac or not isinstance(expiration, int) or not isinstance(generation, int):
        return None
    return HeldCert(
        uid=objects.uid(obj),
        generation=generation,
        serial=str(serial),
        expiration=expiration,
        mac=str(mac),
        destination=str(((obj.get("spec") or {}).get("destination") or {}).get("name") or ""),
    )


class VaultPKISecretReconciler(LeasedReconciler[VaultPKISecretSpec, HeldCert]):
    info = VAULT_PKI_SECRET
    finalizer_name = CLEANUP_FINALIZER

    def wants_finalizer(self, spec: VaultPKISecretSpec) -> bool:
        return spec.revoke or spec.clear

    def held_from_status(self, obj: dict[str, Any]) -> HeldCert | None:
        return held_from_status(obj)

    def expires_at(self, held: HeldCert) -> float | None:
        return float(held.expiration)

    async def sync(self, p: Prepared[VaultPKISecretSpec]) -> Result:
        held = self.current(p.key, p.obj)
        now = time.time()
        cause, live = await self.confirmed_cause(p, held)
        if cause is None:
            assert held is not None
            if held.issued_at is None:
                # After a restart: schedule from when this process first saw the certificate,
                # so that the early-jitter window stays put between wake-ups.
                held = replace(held, issued_at=now)
                self.remember(p.key, held)
            assert held.issued_at is not None
            decision = lease_schedule.next_cert_action(
                held.issued_at, held.expiration, p.spec.expiry_offset_seconds, now
            )
            if decision.action is Action.WAIT:
                self._mark_synced(p, held)
                await self.succeed(p, delivered=False)
                metrics.RESOURCE_EXPIRY.labels(KIND, p.key.namespace, p.key.name).set(
                    held.expiration
                )
                return Result(requeue_after=lease_schedule.requeue_delay(decision.delay))
            cause = "expiring"
        return await self._issue(p, held, live, cause)

    async def _issue(
        self,
        p: Prepared[VaultPKISecretSpec],
        held: HeldCert | None,
        live: dict[str, Any] | None,
        cause: str,
    ) -> Result:
        key, spec, dest = p.key, p.spec, p.dest
        path = spec.issue_path()
        resp = await call_vault(
            self.access,
            p.resolved,
            key.namespace,
            spec.namespace,
            lambda client: issue_certificate(client, spec),
        )
        issued_at = time.time()
        if resp is None or resp.data is None or not resp.data.get("serial_number"):
            raise ReconcileProblem(
                Reason.VAULT_EMPTY_RESPONSE, f"Vault returned no certificate for {path}"
            )
        serial = str(resp.data["serial_number"])
        expiration = resp.data.get("expiration")
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            raise ReconcileProblem(
                Reason.VAULT_BAD_RESPONSE,
                f"Vault returned no expiration for the certificate of {path}",
            )
        try:
            fields = certificate_fields(resp.data, dest.type, key_format=spec.private_key_format)
        except ValueError as exc:
            raise ReconcileProblem(Reason.VAULT_BAD_RESPONSE, str(exc)) from exc
        data = await self.build(p, [pipeline.Source(data=fields, raw=resp.data)])
        mac = compute_mac(self.ctx.hmac_key, data)
        new = HeldCert(
            uid=objects.uid(p.obj),
            generation=p.generation,
            serial=serial,
            expiration=expiration,
            mac=mac,
            destination=dest.name,
            issued_at=issued_at,
        )
        delivered = await self.deliver_new(
            p, live, data, held=held, new=new, cause=cause, restart=held is not None
        )
        if held is not None and spec.revoke and held.serial != serial:
            await self._revoke(key, p.obj, p.resolved, spec, held.serial, replaced=True)

        self._mark_synced(p, new, delivered.restart_failures)
        # Set only here: after a restart `issued_at` is when this process first saw the
        # certificate, not when it was issued.
        p.status["lastRotation"] = int(issued_at)
        await self.succeed(p, delivered=True)
        self.announce(
            p,
            delivered,
            held is None,
            f"issued certificate {serial} into {dest.name}",
            f"Secret {dest.name} updated with certificate {serial} ({cause})",
        )
        log.info(
            "issued certificate %s for %s/%s into Secret %s (%s, expires %d)",
            serial,
            key.namespace,
            key.name,
            dest.name,
            cause,
            expiration,
        )
        metrics.RESOURCE_EXPIRY.labels(KIND, key.namespace, key.name).set(expiration)
        decision = lease_schedule.next_cert_action(
            issued_at, expiration, spec.expiry_offset_seconds, time.time()
        )
        delay = decision.delay if decision.action is Action.WAIT else 0.0
        return Result(requeue_after=lease_schedule.requeue_delay(delay))

    async def _revoke(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        resolved: ResolvedAuth,
        spec: VaultPKISecretSpec,
        serial: str,
        *,
        replaced: bool,
    ) -> NotCleaned | None:
        """Revoke `serial`; None when done (or nothing is left to do)."""
        try:
            await call_vault(
                self.access,
                resolved,
                key.namespace,
                spec.namespace,
                lambda client: revoke_certificate(client, spec, serial),
            )
        except ReconcileProblem as problem:
            left = not_cleaned(problem, f"certificate {serial}", "CertificateRevokeFailed")
            if left.outcome == RevokeOutcome.LEASE_UNKNOWN:
                # Unknown or expired serial: nothing left to revoke; retrying cannot help.
                log.info("certificate %s not revocable: %s", serial, problem.message)
                return None
            if replaced:
                self.ctx.events.emit(
                    obj,
                    "Warning",
                    "CertificateRevokeFailed",
                    f"revoking certificate {serial} failed: {problem.message}",
                )
            log.warning("revoking certificate %s failed: %s", serial, problem.message)
            return left
        what = "replaced" if replaced else "deleted"
        self.ctx.events.emit(
            obj, "Normal", "CertificateRevoked", f"revoked {what} certificate {serial}"
        )
        log.info("revoked certificate %s (%s)", serial, what)
        return None

    def _mark_synced(
        self,
        p: Prepared[VaultPKISecretSpec],
        held: HeldCert,
        restart_failures: list[str] | None = None,
    ) -> None:
        p.status["serialNumber"] = held.serial
        p.status["expiration"] = held.expiration
        message = f"Secret {p.dest.name} holds certificate {held.serial}"
        self.mark_held(p, held, message, restart_failures)

    async def clean_up(self, d: Deleting[VaultPKISecretSpec, HeldCert]) -> NotCleaned | None:
        key, obj, spec, held = d.key, d.obj, d.spec, d.held
        if spec.revoke and held is not None:
            what = f"certificate {held.serial}"
            try:
                resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
            except ReconcileProblem as problem:
                return not_cleaned(problem, what, "CertificateRevokeFailed")
            left = await self._revoke(key, obj, resolved, spec, held.serial, replaced=False)
            if left is not None:
                return left
        if spec.clear:
            try:
                await self._clear(key, spec)
            except ReconcileProblem as problem:
                return not_cleaned(
                    problem, f"the data of Secret {spec.destination.name}", problem.reason
                )
        return None

    async def _clear(self, key: ObjectKey, spec: VaultPKISecretSpec) -> None:
        """Empty the destination's data (for `create: false` Secrets that outlive us)."""
        try:
            await self.ctx.kube.patch(SECRETS, spec.destination.name, {"data": None}, key.namespace)
        except NotFound:
            return
        except ApiError as exc:
            raise ReconcileProblem(
                Reason.DESTINATION_WRITE_FAILED,
                f"clearing Secret {spec.destination.name} failed: {exc}",
            ) from exc
