"""One object of the pod: what its kind fetches, when it is next due, what it writes.

The kind strategies are the operator's (`vaultbridge.fetch` for the requests,
`vault/lease_schedule.py` for the timing, `secrets/` for the data); this module only holds
the state a pod needs between two fetches, and keeps it in a small state file next to the
object's files so that the sidecar adopts what the init container fetched instead of fetching
it again (a second set of database credentials per pod, a second certificate).

The state file (`.vaultbridge-state.json`, mode 0400) holds no value: a lease id and its
times, a certificate serial and its expiry, the Vault token's expiry (not the token).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.backoff import jittered
from vaultbridge.fetch import (
    issue_certificate,
    kv_pipeline_sources,
    read_kv_sources,
    request_credentials,
    revoke_certificate,
)
from vaultbridge.inject.config import AgentObject
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.certificates import TLS_TYPE, certificate_fields
from vaultbridge.secrets.redact import SecretData
from vaultbridge.vault.errors import BadResponse, InvalidRequest, NotFound, PermissionDenied
from vaultbridge.vault.lease_schedule import (
    MIN_DELAY,
    Action,
    Decision,
    LeaseTimes,
    next_cert_action,
    next_credentials_action,
    renewal_exhausted,
)

from .files import RESERVED_PREFIX, check_name
from .session import Session

log = logging.getLogger(__name__)

DEFAULT_REFRESH_AFTER = 300.0
"""A VaultStaticSecret without `refreshAfter` is re-read every 5 minutes in a pod (the
operator's sync default is 60 s for one reader per object; a pod agent multiplies reads by
the number of pods)."""
STATE_FILE = f"{RESERVED_PREFIX}-state.json"

Spec = VaultStaticSecretSpec | VaultDynamicSecretSpec | VaultPKISecretSpec

_SPECS: dict[str, type[Spec]] = {
    "VaultStaticSecret": VaultStaticSecretSpec,
    "VaultDynamicSecret": VaultDynamicSecretSpec,
    "VaultPKISecret": VaultPKISecretSpec,
}


class ObjectConfigError(ValueError):
    """An object of the config cannot be served (its spec, its file layout)."""


def parse_spec(
    obj: AgentObject,
) -> VaultStaticSecretSpec | VaultDynamicSecretSpec | VaultPKISecretSpec:
    try:
        return _SPECS[obj.kind].model_validate(obj.spec)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "spec" for e in exc.errors()})
        raise ObjectConfigError(
            f"{obj.kind} {obj.name}: invalid spec (fields: {', '.join(fields)})"
        ) from None


def transformation_of(spec: Any, name: str) -> pipeline.TransformationSpec:
    """The inline transformation of the spec (the webhook inlined SecretTransformation
    references; a reference left over cannot be read from a pod and is refused). Works with a
    spec without `destination` (inject mode)."""
    dest = getattr(spec, "destination", None)
    tr = getattr(dest, "transformation", None)
    if tr is None:
        return pipeline.TransformationSpec()
    if tr.transformation_refs:
        raise ObjectConfigError(
            f"{name}: transformationRefs must be inlined by the webhook; the agent cannot "
            "read SecretTransformation objects"
        )
    return pipeline.TransformationSpec(
        templates={k: t.text for k, t in tr.templates.items()},
        includes=tuple(tr.includes),
        excludes=tuple(tr.excludes),
        exclude_raw=tr.exclude_raw,
    )


@dataclass
class Held:
    """What the object currently delivers, as far as this pod knows (no value)."""

    issued_at: float = 0.0
    lease_id: str = ""
    lease_duration: float = 0.0
    lease_renewable: bool = False
    asked: float = 0.0
    static_ttl: float | None = None
    serial: str = ""
    expiration: float = 0.0
    adopted: bool = False
    """From the init container's state file: its lease belongs to the init container's Vault
    token, which nobody renews; it is replaced at its renewal point, never renewed."""


class AgentObjectWorker:
    """One object: fetch, build, render, and its schedule."""

    def __init__(self, obj: AgentObject, session: Session, directory: Path) -> None:
        self.obj = obj
        self.name = obj.name
        self.kind = obj.kind
        self.spec = parse_spec(obj)
        self.transformation = transformation_of(self.spec, obj.name)
        self.session = session
        self.directory = directory
        self.filename: str | None = None
        if obj.file.template is not None:
            try:
                self.filename = check_name(obj.file.filename or obj.name)
            except ValueError as exc:
                raise ObjectConfigError(f"{obj.name}: {exc}") from None
        self.held: Held | None = None
        self.due = 0.0
        self.delivered = False
        """Files were written (or adopted) once: later rewrites are changes (on_change)."""

    # -- schedule --------------------------------------------------------------------------

    def next_due(self, now: float) -> float:
        """Unix seconds of the next action (fetch, renewal, re-issue)."""
        held = self.held
        if held is None:
            return now
        if isinstance(self.spec, VaultStaticSecretSpec):
            refresh = self.spec.refresh_after_seconds or DEFAULT_REFRESH_AFTER
            return held.issued_at + refresh
        if isinstance(self.spec, VaultPKISecretSpec):
            decision = next_cert_action(
                held.issued_at, held.expiration, self.spec.expiry_offset_seconds, now
            )
            return now + decision.delay if decision.action is Action.WAIT else now
        decision = self._credentials_decision(held, now)
        if decision.action is not Action.WAIT:
            return now
        return now + decision.delay

    def schedule(self, now: float, rng: random.Random | None = None) -> None:
        """Set `due` from the held state, early-jittered like the operator's requeues."""
        delay = self.next_due(now) - now
        if delay == float("inf"):
            self.due = delay
            return
        self.due = now + max(MIN_DELAY, jittered(delay, rng=rng)) if delay > 0 else now

    def _credentials_decision(self, held: Held, now: float) -> Decision:
        assert isinstance(self.spec, VaultDynamicSecretSpec)
        lease = None
        if held.lease_id and held.lease_duration > 0:
            lease = LeaseTimes(held.issued_at, held.lease_duration, held.lease_renewable)
        return next_credentials_action(
            lease,
            issued_at=held.issued_at,
            static_ttl=held.static_ttl if self.spec.allow_static_creds else None,
            refresh=self.spec.refresh_after_seconds,
            percent=self.spec.renewal_percent,
            now=now,
        )

    # -- work ------------------------------------------------------------------------------

    async def step(self, now: float) -> dict[str, bytes] | None:
        """Do what is due: the files to write, or None when only a lease was renewed."""
        spec = self.spec
        if isinstance(spec, VaultStaticSecretSpec):
            return await self._read_static(now)
        if isinstance(spec, VaultPKISecretSpec):
            return await self._issue_certificate()
        held = self.held
        if held is not None and not held.adopted:
            decision = self._credentials_decision(held, now)
            if decision.action is Action.RENEW and await self._renew(held):
                return None
        return await self._issue_credentials()

    async def _read_static(self, now: float) -> dict[str, bytes]:
        assert isinstance(self.spec, VaultStaticSecretSpec)
        spec = self.spec
        reads = await self.session.call(lambda c: read_kv_sources(c, spec))
        data = await pipeline.build_secret_data_async(
            kv_pipeline_sources(reads), self.transformation
        )
        self.held = Held(issued_at=time.time())
        return self.render(data)

    async def _renew(self, held: Held) -> bool:
        asked = int(held.asked or held.lease_duration)
        try:
            info = await self.session.call(lambda c: c.renew_lease(held.lease_id, increment=asked))
        except (InvalidRequest, NotFound, PermissionDenied) as exc:
            log.warning(
                "%s: renewing the lease failed (%s); issuing new credentials", self.name, exc.reason
            )
            return False
        assert isinstance(self.spec, VaultDynamicSecretSpec)
        if renewal_exhausted(asked, info.lease_duration, self.spec.renewal_percent):
            log.info("%s: the lease reached its max TTL; issuing new credentials", self.name)
            return False
        held.issued_at = time.time()
        held.lease_duration = info.lease_duration
        held.lease_renewable = info.renewable
        held.asked = asked
        log.info("%s: renewed the lease for %ss", self.name, info.lease_duration)
        return True

    async def _issue_credentials(self) -> dict[str, bytes]:
        assert isinstance(self.spec, VaultDynamicSecretSpec)
        spec = self.spec
        resp = await self.session.call(lambda c: request_credentials(c, spec))
        if resp is None or resp.data is None:
            raise BadResponse(f"Vault returned no credentials for {spec.request_path()}")
        static_ttl = None
        if spec.allow_static_creds and not resp.lease_id:
            ttl = resp.data.get("ttl")
            if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0:
                static_ttl = float(ttl)
        data = await pipeline.build_secret_data_async(
            [pipeline.Source(data=resp.data, raw=resp.data)], self.transformation
        )
        self.held = Held(
            issued_at=time.time(),
            lease_id=resp.lease_id,
            lease_duration=float(resp.lease_duration),
            lease_renewable=resp.renewable,
            asked=float(resp.lease_duration),
            static_ttl=static_ttl,
        )
        log.info(
            "%s: issued credentials (lease %s, %ss)",
            self.name,
            "held" if resp.lease_id else "none",
            resp.lease_duration,
        )
        return self.render(data)

    async def _issue_certificate(self) -> dict[str, bytes]:
        assert isinstance(self.spec, VaultPKISecretSpec)
        spec = self.spec
        resp = await self.session.call(lambda c: issue_certificate(c, spec))
        if resp is None or resp.data is None or not resp.data.get("serial_number"):
            raise BadResponse(f"Vault returned no certificate for {spec.issue_path()}")
        expiration = resp.data.get("expiration")
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            raise BadResponse(f"Vault returned no expiration for {spec.issue_path()}")
        try:
            fields = certificate_fields(resp.data, TLS_TYPE, key_format=spec.private_key_format)
        except ValueError as exc:
            raise BadResponse(str(exc)) from None
        data = await pipeline.build_secret_data_async(
            [pipeline.Source(data=fields, raw=resp.data)], self.transformation
        )
        previous = self.held.serial if self.held is not None else ""
        serial = str(resp.data["serial_number"])
        self.held = Held(issued_at=time.time(), serial=serial, expiration=float(expiration))
        log.info("%s: issued certificate %s (expires %d)", self.name, serial, expiration)
        if previous and spec.revoke and previous != serial:
            await self._revoke_certificate(previous)
        return self.render(data)

    async def _revoke_certificate(self, serial: str) -> None:
        assert isinstance(self.spec, VaultPKISecretSpec)
        spec = self.spec
        try:
            await self.session.call(lambda c: revoke_certificate(c, spec, serial))
        except Exception as exc:
            log.warning("%s: revoking certificate %s failed: %s", self.name, serial, exc)
        else:
            log.info("%s: revoked certificate %s", self.name, serial)

    async def release(self) -> None:
        """On SIGTERM: revoke what the spec asks to revoke (`revoke: true`), including a lease
        adopted from the init container (revoking needs the policy, not the lease's token)."""
        held = self.held
        if held is None:
            return
        if isinstance(self.spec, VaultDynamicSecretSpec) and self.spec.revoke and held.lease_id:
            lease_id = held.lease_id
            outcome = await self.session.call(lambda c: c.try_revoke_lease(lease_id))
            log.info("%s: revoking the lease: %s", self.name, outcome.outcome.value)
        elif isinstance(self.spec, VaultPKISecretSpec) and self.spec.revoke and held.serial:
            await self._revoke_certificate(held.serial)

    # -- files -----------------------------------------------------------------------------

    def render(self, data: SecretData) -> dict[str, bytes]:
        """The files of the built data: one per key, or the file template rendered."""
        if self.obj.file.template is None or self.filename is None:
            return data.reveal()
        from vaultbridge.secrets.templates import TemplateContext, render_templates

        secrets = {k: v.decode("utf-8", errors="replace") for k, v in data.items()}
        # Each key is a variable of its own (`{{ password }}`, as the pod annotations are
        # written) and under `secrets` (`{{ secrets["tls.crt"] }}`, as in transformations).
        rendered = render_templates(
            {self.filename: self.obj.file.template},
            TemplateContext(secrets=secrets, extra=secrets),
        )
        return {self.filename: rendered[self.filename]}

    # -- hand-over between the init container and the sidecar -------------------------------

    def save_state(self, token_expires_at: float | None) -> None:
        if self.held is None:
            return
        state = {"kind": self.kind, "held": asdict(self.held), "token_expires_at": token_expires_at}
        path = self.directory / STATE_FILE
        tmp = self.directory / f"{STATE_FILE}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.write_text(json.dumps(state))
        os.chmod(tmp, 0o400)
        os.replace(tmp, path)

    def load_state(self, now: float) -> bool:
        """Adopt what the init container delivered, if its files and state are there."""
        path = self.directory / STATE_FILE
        try:
            state = json.loads(path.read_text())
            held = Held(**state["held"])
            token_end = state.get("token_expires_at")
        except (OSError, ValueError, TypeError, KeyError):
            return False
        if state.get("kind") != self.kind:
            return False
        if isinstance(self.spec, VaultDynamicSecretSpec) and held.lease_id:
            # The lease dies with the init container's token: replace it at the renewal point
            # of whichever ends first, and never try to renew it.
            end = held.issued_at + held.lease_duration
            if isinstance(token_end, int | float) and token_end > 0:
                end = min(end, float(token_end))
            held.lease_duration = max(0.0, end - held.issued_at)
            held.lease_renewable = False
            held.adopted = True
        self.held = held
        return True
