"""The credentials a VaultDynamicSecret holds, and the pure decisions about them: when they
are due, what a renewal answer means, what the status records. No I/O; the reconciler
(dynamic_secret.py) acts on these answers.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from typing import Any

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.kube import objects
from vaultbridge.vault import lease_schedule
from vaultbridge.vault.lease_schedule import Action, LeaseTimes
from vaultbridge.vault.models import LeaseInfo, VaultResponse

from .status import set_condition

log = logging.getLogger(__name__)

Renewal = tuple[bool, str, str]
"""The LeaseRenewal condition to record: (ok, reason, message)."""


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


def decide(spec: VaultDynamicSecretSpec, held: HeldLease, now: float) -> lease_schedule.Decision:
    """What to do with the held credentials now: wait, renew the lease or issue new ones."""
    return lease_schedule.next_credentials_action(
        held.times if held.lease_id and held.duration > 0 else None,
        issued_at=held.last_renewal,
        static_ttl=held.static_ttl if spec.allow_static_creds else None,
        refresh=spec.refresh_after_seconds,
        percent=spec.renewal_percent,
        now=now,
    )


def requeue(spec: VaultDynamicSecretSpec, held: HeldLease, now: float) -> float | None:
    """When to look at the credentials again (None: only on a change)."""
    decision = decide(spec, held, now)
    if decision.action is not Action.WAIT:
        return lease_schedule.MIN_DELAY
    if decision.delay == float("inf"):
        return None
    if held.static_ttl is not None and not held.lease_id:
        # Late, not early: the new password exists only after Vault rotated it.
        return lease_schedule.static_creds_delay(max(0.0, decision.delay - 1.0))
    return lease_schedule.requeue_delay(decision.delay)


def after_renewal(
    spec: VaultDynamicSecretSpec,
    held: HeldLease,
    info: LeaseInfo,
    asked: int,
    now: float,
) -> tuple[HeldLease | None, Renewal]:
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


def issue_note(held: HeldLease) -> Renewal:
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


def static_ttl(spec: VaultDynamicSecretSpec, resp: VaultResponse) -> int | None:
    if not spec.allow_static_creds or resp.lease_id or resp.data is None:
        return None
    ttl = resp.data.get("ttl")
    return ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 else None


def static_meta(resp: VaultResponse) -> dict[str, int]:
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


def record_lease(
    status: dict[str, Any], held: HeldLease, renewal: Renewal | None, generation: int
) -> None:
    """The lease fields of the status, and the LeaseRenewal condition: `renewal` when this
    reconcile renewed or issued, else the issue note if none is recorded yet."""
    status["lastRenewalTime"] = held.last_renewal
    status["secretLease"] = {
        "id": held.lease_id,
        "duration": held.duration,
        "renewable": held.renewable,
        "requestID": held.request_id,
    }
    if renewal is None and any(
        c.get("type") == "LeaseRenewal" for c in status.get("conditions") or []
    ):
        return
    ok, reason, text = renewal if renewal is not None else issue_note(held)
    set_condition(status, "LeaseRenewal", ok, reason, text, generation)
