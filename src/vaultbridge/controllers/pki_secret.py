"""VaultPKISecret: a certificate issued by Vault's PKI engine, replaced before it expires.

The same shape as VaultDynamicSecret: keep the current certificate while the spec is unchanged,
the destination holds exactly what was written and `expiration - expiryOffset` has not come;
otherwise issue a new one, write it, restart the rollout targets and (with `revoke`) revoke the
certificate it replaces. The schedule is recomputed from the status after a restart, so a
restart never issues a certificate by itself. Failures never empty or delete the destination.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from vaultbridge.api.kinds import VAULT_PKI_SECRETS
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.observability import metrics
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.hmac import compute_mac
from vaultbridge.secrets.redact import SecretData
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import InvalidRequest
from vaultbridge.vault.errors import NotFound as NotFoundInVault
from vaultbridge.vault.models import VaultResponse

from . import destination, finalizer, lease_schedule, live_secret, rollout
from .errors import ReconcileProblem
from .lease_schedule import Action
from .leased import LeasedReconciler
from .path_policy import enforce_path_policy
from .status import patch_status_if_changed, set_condition, set_ready
from .transform import resolve_transformation
from .vault_access import ResolvedAuth
from .vault_call import GIVE_UP_ON_DELETE_REASONS, call_vault

log = logging.getLogger(__name__)

KIND = "VaultPKISecret"
CLEANUP_FINALIZER = "vaultbridge.dev/pki-cleanup"
TLS_TYPE = "kubernetes.io/tls"


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


def issue_request(spec: VaultPKISecretSpec) -> dict[str, Any]:
    """The body of `<mount>/issue/<role>`: only what the spec sets, so role defaults apply."""
    body: dict[str, Any] = {"format": spec.format}
    if spec.common_name:
        body["common_name"] = spec.common_name
    for field, values in (
        ("alt_names", spec.alt_names),
        ("ip_sans", spec.ip_sans),
        ("uri_sans", spec.uri_sans),
        ("other_sans", spec.other_sans),
    ):
        if values:
            body[field] = ",".join(values)
    if spec.ttl is not None:
        body["ttl"] = spec.ttl
    if spec.private_key_format:
        body["private_key_format"] = spec.private_key_format
    if spec.not_after:
        body["not_after"] = spec.not_after
    if spec.exclude_cn_from_sans:
        body["exclude_cn_from_sans"] = True
    return body


def der_to_pem(value: str, label: str) -> str:
    """PEM text of what Vault returns for `format: der`: base64 of the DER, one item.

    Raises ValueError when `value` is not base64 (the message never includes the value: it
    may be a private key).
    """
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"Vault returned a {label} that is not base64 DER") from None
    if not raw:
        raise ValueError(f"Vault returned an empty {label}")
    body = base64.b64encode(raw).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def private_key_label(key_type: str, private_key_format: str) -> str:
    """The PEM label of a DER private key as Vault encodes it.

    Vault writes PKCS#8 when asked (`pkcs8`) and for ed25519 keys, otherwise the key type's
    own structure (PKCS#1 for RSA, SEC 1 for EC), matching the labels of its own PEM output.
    """
    if private_key_format == "pkcs8" or key_type not in ("rsa", "ec"):
        return "PRIVATE KEY"
    return f"{key_type.upper()} PRIVATE KEY"


def _pem_certificates(text: str) -> list[str]:
    """The CERTIFICATE blocks of PEM text (a pem_bundle also holds the private key)."""
    return [
        f"-----BEGIN CERTIFICATE-----{block}-----END CERTIFICATE-----"
        for block in re.findall(
            r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.DOTALL
        )
    ]


def _as_pem(value: str, label: str) -> str:
    """PEM as is; anything else is Vault's base64 DER (`format: der`) and is wrapped."""
    if not value.strip() or "-----BEGIN " in value:
        return value
    return der_to_pem(value, label)


def certificate_fields(
    data: dict[str, Any], secret_type: str, *, key_format: str = ""
) -> dict[str, Any]:
    """The Secret keys of an issue response; for kubernetes.io/tls also `tls.crt`, `tls.key`
    and `ca.crt`, always PEM (what the Secret type requires) even when Vault returned DER
    (`format: der`). The Vault fields themselves are kept as Vault returned them.
    """
    chain_raw = data.get("ca_chain")
    chain = [str(c) for c in chain_raw] if isinstance(chain_raw, list) else []
    certificate = str(data.get("certificate") or "")
    fields: dict[str, Any] = {
        "certificate": certificate,
        "private_key": str(data.get("private_key") or ""),
        "private_key_type": str(data.get("private_key_type") or ""),
        "issuing_ca": str(data.get("issuing_ca") or ""),
        "ca_chain": "\n".join(chain),
        "serial_number": str(data.get("serial_number") or ""),
        "expiration": data.get("expiration"),
    }
    if secret_type == TLS_TYPE:
        # Servers present the leaf followed by its chain; a root listed in the chain is
        # harmless for clients and needed by some that do not have it. Only certificate
        # blocks: a pem_bundle's `certificate` also carries the private key.
        bundle = _pem_certificates(_as_pem(certificate, "CERTIFICATE"))
        for text in chain:
            for pem in _pem_certificates(_as_pem(text, "CERTIFICATE")):
                if pem.strip() not in (b.strip() for b in bundle):
                    bundle.append(pem)
        fields["tls.crt"] = "\n".join(b.strip() for b in bundle) + "\n" if bundle else ""
        label = private_key_label(fields["private_key_type"], key_format)
        fields["tls.key"] = _as_pem(fields["private_key"], label)
        ca_blocks = _pem_certificates(_as_pem(fields["issuing_ca"], "CERTIFICATE"))
        fields["ca.crt"] = "\n".join(b.strip() for b in ca_blocks) + "\n" if ca_blocks else ""
    return fields


class VaultPKISecretReconciler(LeasedReconciler[VaultPKISecretSpec, HeldCert]):
    kind = KIND
    resource = VAULT_PKI_SECRETS
    finalizer_name = CLEANUP_FINALIZER
    spec_model = VaultPKISecretSpec

    def held_from_status(self, obj: dict[str, Any]) -> HeldCert | None:
        return held_from_status(obj)

    def expires_at(self, held: HeldCert) -> float | None:
        return float(held.expiration)

    async def _sync(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        spec: VaultPKISecretSpec,
        status: dict[str, Any],
    ) -> Result:
        generation = objects.generation(obj)
        resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
        # Path policies, checked on every reconcile like VaultStaticSecret does: a refusal
        # keeps the last Secret (see controllers/path_policy.py).
        enforce_path_policy(self.ctx, key.namespace, spec)
        transformation = resolve_transformation(self.ctx, key.namespace, spec.destination)
        if spec.revoke or spec.clear:
            await finalizer.ensure_finalizer(self.ctx, VAULT_PKI_SECRETS, obj, CLEANUP_FINALIZER)
        else:
            await finalizer.remove_finalizer(self.ctx, VAULT_PKI_SECRETS, obj, CLEANUP_FINALIZER)
        dest = spec.destination
        live = await destination.read_live(self.ctx, key.namespace, dest.name)
        destination.check_ownership(obj, dest, live)
        held = self._current(key, obj)
        now = time.time()
        cause = self._reissue_reason(obj, spec, held, live, generation)
        if cause in ("destination-missing", "drift"):
            # The owned-Secret cache may not have seen our own last write yet: ask the API
            # server before replacing credentials that are probably fine.
            live = await live_secret.read_fresh(self.ctx, key.namespace, dest.name)
            destination.check_ownership(obj, dest, live)
            cause = self._reissue_reason(obj, spec, held, live, generation)
        if cause is None:
            assert held is not None
            if held.issued_at is None:
                # After a restart: schedule from when this process first saw the certificate,
                # so that the early-jitter window stays put between wake-ups.
                held = replace(held, issued_at=now)
                self._held[key] = held
            decision = lease_schedule.next_cert_action(
                held.issued_at, held.expiration, spec.expiry_offset_seconds, now
            )
            if decision.action is Action.WAIT:
                self._mark_synced(status, spec=spec, held=held, generation=generation)
                await patch_status_if_changed(self.ctx.kube, VAULT_PKI_SECRETS, obj, status)
                self.backoff.reset(key)
                metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(1)
                metrics.RESOURCE_EXPIRY.labels(KIND, key.namespace, key.name).set(held.expiration)
                return Result(requeue_after=lease_schedule.requeue_delay(decision.delay))
            cause = "expiring"
        return await self._issue(
            key,
            obj,
            spec=spec,
            status=status,
            resolved=resolved,
            transformation=transformation,
            held=held,
            live=live,
            cause=cause,
        )

    def _reissue_reason(
        self,
        obj: dict[str, Any],
        spec: VaultPKISecretSpec,
        held: HeldCert | None,
        live: dict[str, Any] | None,
        generation: int,
    ) -> str | None:
        if held is None:
            return "create"
        if held.generation != generation or (
            held.destination and held.destination != spec.destination.name
        ):
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

    async def _issue(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        *,
        spec: VaultPKISecretSpec,
        status: dict[str, Any],
        resolved: ResolvedAuth,
        transformation: pipeline.TransformationSpec,
        held: HeldCert | None,
        live: dict[str, Any] | None,
        cause: str,
    ) -> Result:
        generation = objects.generation(obj)
        path = spec.issue_path()
        body = issue_request(spec)

        async def issue(client: VaultClient) -> VaultResponse | None:
            return await client.write(path, body, method="POST", operation="pki_issue")

        resp = await call_vault(self.access, resolved, key.namespace, spec.namespace, issue)
        issued_at = time.time()
        if resp is None or resp.data is None or not resp.data.get("serial_number"):
            raise ReconcileProblem(
                "VaultEmptyResponse", f"Vault returned no certificate for {path}"
            )
        serial = str(resp.data["serial_number"])
        expiration = resp.data.get("expiration")
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            raise ReconcileProblem(
                "VaultBadResponse", f"Vault returned no expiration for the certificate of {path}"
            )
        data = await self._build(resp.data, spec, transformation, obj)
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
        new = HeldCert(
            uid=objects.uid(obj),
            generation=generation,
            serial=serial,
            expiration=expiration,
            mac=mac,
            destination=dest.name,
            issued_at=issued_at,
        )
        self._held[key] = new
        old_dest = held.destination if held is not None else ""
        if (
            old_dest
            and old_dest != dest.name
            and await destination.delete_if_owned(self.ctx, obj, old_dest)
        ):
            log.info("deleted Secret %s/%s after a destination rename", key.namespace, old_dest)

        restart_failures: list[str] = []
        if held is not None and spec.rollout_restart_targets:
            restart_failures = await rollout.restart_targets(
                self.ctx, obj, spec.rollout_restart_targets
            )
        if held is not None and spec.revoke and held.serial != serial:
            await self._revoke(key, obj, resolved, spec, held.serial, replaced=True)

        self._mark_synced(
            status,
            spec=spec,
            held=new,
            generation=generation,
            restart_failures=restart_failures,
        )
        # Set only here: after a restart `issued_at` is when this process first saw the
        # certificate, not when it was issued.
        status["lastRotation"] = int(issued_at)
        await patch_status_if_changed(self.ctx.kube, VAULT_PKI_SECRETS, obj, status)
        if held is None or plan.cause == "create":
            self.ctx.events.emit(
                obj, "Normal", "SecretSynced", f"issued certificate {serial} into {dest.name}"
            )
        else:
            self.ctx.events.emit(
                obj,
                "Normal",
                "SecretRotated",
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
        self.backoff.reset(key)
        metrics.RESOURCE_READY.labels(KIND, key.namespace, key.name).set(1)
        metrics.RESOURCE_EXPIRY.labels(KIND, key.namespace, key.name).set(expiration)
        metrics.RESOURCE_LAST_SYNC.labels(KIND, key.namespace, key.name).set(time.time())
        decision = lease_schedule.next_cert_action(
            issued_at, expiration, spec.expiry_offset_seconds, time.time()
        )
        delay = decision.delay if decision.action is Action.WAIT else 0.0
        return Result(requeue_after=lease_schedule.requeue_delay(delay))

    async def _build(
        self,
        data: dict[str, Any],
        spec: VaultPKISecretSpec,
        transformation: pipeline.TransformationSpec,
        obj: dict[str, Any],
    ) -> SecretData:
        try:
            fields = certificate_fields(
                data, spec.destination.type, key_format=spec.private_key_format
            )
        except ValueError as exc:
            raise ReconcileProblem("VaultBadResponse", str(exc)) from exc
        try:
            return await pipeline.build_secret_data_async(
                [pipeline.Source(data=fields, raw=data)],
                transformation,
                labels=objects.labels(obj),
                annotations=objects.annotations(obj),
            )
        except DataError as exc:
            raise ReconcileProblem(exc.reason, str(exc), retry=False) from exc

    async def _revoke(
        self,
        key: ObjectKey,
        obj: dict[str, Any],
        resolved: ResolvedAuth,
        spec: VaultPKISecretSpec,
        serial: str,
        *,
        replaced: bool,
    ) -> bool:
        """Revoke `serial`; True when done (or nothing is left to do)."""
        path = spec.revoke_path()

        async def revoke(client: VaultClient) -> VaultResponse | None:
            return await client.write(
                path, {"serial_number": serial}, method="POST", operation="pki_revoke"
            )

        try:
            await call_vault(self.access, resolved, key.namespace, spec.namespace, revoke)
        except ReconcileProblem as problem:
            if isinstance(problem.__cause__, InvalidRequest | NotFoundInVault):
                # Unknown or expired serial: nothing left to revoke; retrying cannot help.
                log.info("certificate %s not revocable: %s", serial, problem.message)
                return True
            self.ctx.events.emit(
                obj,
                "Warning",
                "CertificateRevokeFailed",
                f"revoking certificate {serial} failed: {problem.message}",
            )
            log.warning("revoking certificate %s failed: %s", serial, problem.message)
            return False
        what = "replaced" if replaced else "deleted"
        self.ctx.events.emit(
            obj, "Normal", "CertificateRevoked", f"revoked {what} certificate {serial}"
        )
        log.info("revoked certificate %s (%s)", serial, what)
        return True

    def _mark_synced(
        self,
        status: dict[str, Any],
        *,
        spec: VaultPKISecretSpec,
        held: HeldCert,
        generation: int,
        restart_failures: list[str] | None = None,
    ) -> None:
        status["lastGeneration"] = generation
        status["secretMAC"] = held.mac
        status["serialNumber"] = held.serial
        status["expiration"] = held.expiration
        message = f"Secret {spec.destination.name} holds certificate {held.serial}"
        set_condition(status, "SecretSynced", True, "Synced", message, generation)
        set_condition(status, "Healthy", True, "Healthy", "Vault requests succeed", generation)
        set_ready(status, restart_failures, message, generation)

    async def _finalize(
        self, key: ObjectKey, obj: dict[str, Any], spec: VaultPKISecretSpec
    ) -> Result:
        if not finalizer.has_finalizer(obj, CLEANUP_FINALIZER):
            return Result()
        held = self._current(key, obj)
        if spec.revoke and held is not None:
            try:
                resolved = await self.access.resolve(key.namespace, spec.vault_auth_ref)
            except ReconcileProblem as problem:
                if problem.reason not in GIVE_UP_ON_DELETE_REASONS:
                    return Result(requeue_after=self.backoff.failure(key))
                self.ctx.events.emit(
                    obj,
                    "Warning",
                    "CertificateRevokeSkipped",
                    f"cannot revoke certificate {held.serial} ({problem.message})",
                )
            else:
                if not await self._revoke(key, obj, resolved, spec, held.serial, replaced=False):
                    return Result(requeue_after=self.backoff.failure(key))
        if spec.clear:
            try:
                await self._clear(key, spec)
            except ReconcileProblem as problem:
                self.ctx.events.emit(obj, "Warning", problem.reason, problem.message)
                return Result(requeue_after=self.backoff.failure(key))
        await finalizer.remove_finalizer(self.ctx, VAULT_PKI_SECRETS, obj, CLEANUP_FINALIZER)
        self._held.pop(key, None)
        self.backoff.reset(key)
        return Result()

    async def _clear(self, key: ObjectKey, spec: VaultPKISecretSpec) -> None:
        """Empty the destination's data (for `create: false` Secrets that outlive us)."""
        try:
            await self.ctx.kube.patch(SECRETS, spec.destination.name, {"data": None}, key.namespace)
        except NotFound:
            return
        except ApiError as exc:
            raise ReconcileProblem(
                "DestinationWriteFailed", f"clearing Secret {spec.destination.name} failed: {exc}"
            ) from exc
