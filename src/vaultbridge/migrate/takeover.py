"""`vaultbridge migrate --adopt-secrets`: hand VSO's Secrets to the applied vaultbridge objects.

Runs after the converted objects are applied (and VSO is scaled to zero). For every
VaultStaticSecret, VaultDynamicSecret and VaultPKISecret carrying the adopt-from annotation, it
reads the destination Secret and asks `adopt.decide_adoption` (without the Vault data, which
only the operator reads). On `Adoption`, in this order:

1. VaultDynamicSecret / VaultPKISecret: the lease (certificate) VSO holds is carried into the
   object's status (`adopt.carried_status`, MAC made with the operator's HMAC key), so the
   operator renews VSO's lease (keeps VSO's certificate until its rotation time) instead of
   issuing new credentials. Done first, and given a moment to reach the operator's cache,
   because the ownership patch below is what makes the operator reconcile these kinds.
2. The ownership patch, as is: labels and owner reference only, guarded by the Secret's
   resourceVersion, data untouched.
3. A `vaultbridge.dev/adopted-at` stamp on the object, so the operator reconciles it right away
   (VaultStaticSecrets ignore a Secret appearing in their cache).

The operator then finds the Secret its own and writes nothing when the data already matches
(and, first sync, restarts nothing either way).

The operator adopts VaultStaticSecrets' Secrets itself (controllers/ownership.py:claim), so
for them this command usually finds nothing left to do; for the leased kinds it is how adoption
happens, and the operator meanwhile reports `DestinationConflict` on those objects, which
clears at the reconcile this command triggers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from vaultbridge.api import describe_validation_error, kind_info
from vaultbridge.api.kinds import VAULT_DYNAMIC_SECRETS, VAULT_PKI_SECRETS, VAULT_STATIC_SECRETS
from vaultbridge.api.labels import owner_labels
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import ApiError, Conflict, NotFound
from vaultbridge.kube.resources import SECRETS, Resource

from . import vso
from .adopt import Adoption, Refusal, carried_status, decide_adoption, decode_data
from .convert import ADOPT_ANNOTATION, Outcome, Verdict

ADOPTED_AT_ANNOTATION = "vaultbridge.dev/adopted-at"
DEFAULT_HMAC_KEY_SECRET = "vaultbridge-hmac-key"  # noqa: S105 (a Secret name)
CACHE_SETTLE_SECONDS = 1.0
"""Pause between carrying the status over and moving ownership (see the module docstring):
the operator's informer must see the status before the Secret event makes it reconcile. If it
does not, the operator issues new credentials, as it would for a new object."""
LEASED_KINDS = ("VaultDynamicSecret", "VaultPKISecret")


@dataclass
class _Context:
    kube: KubeClient
    operator_namespace: str
    hmac_key_secret: str
    settle_seconds: float
    _key: bytes | None = None
    _key_problem: str | None = None
    _key_loaded: bool = field(default=False)

    async def hmac_key(self) -> tuple[bytes | None, str | None]:
        """The operator's HMAC key, or why it is not available (read once)."""
        if not self._key_loaded:
            self._key_loaded = True
            try:
                secret = await self.kube.get(SECRETS, self.hmac_key_secret, self.operator_namespace)
                raw = (secret.get("data") or {}).get("key")
                self._key = base64.b64decode(raw, validate=True) if raw else None
                if self._key is None:
                    self._key_problem = "its HMAC key Secret has no key"
            except NotFound:
                self._key_problem = (
                    f"Secret {self.operator_namespace}/{self.hmac_key_secret} not found (start "
                    "the operator once, or pass --operator-namespace / --hmac-key-secret)"
                )
            except (ApiError, binascii.Error, ValueError) as exc:
                self._key_problem = f"reading the HMAC key failed: {type(exc).__name__}"
        return self._key, self._key_problem


SECRET_RESOURCES: tuple[Resource, ...] = (
    VAULT_STATIC_SECRETS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
)


def desired_labels(owner: Mapping[str, Any], dest_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels the operator puts on a Secret it owns (as controllers/ownership.py)."""
    labels = dict(dest_labels)
    labels.update(owner_labels(str(owner["kind"]), objects.name(dict(owner))))
    return labels


async def adopt_secrets(
    kube: KubeClient,
    namespaces: list[str],
    *,
    operator_namespace: str,
    hmac_key_secret: str = DEFAULT_HMAC_KEY_SECRET,
    settle_seconds: float = CACHE_SETTLE_SECONDS,
) -> list[Outcome]:
    ctx = _Context(kube, operator_namespace, hmac_key_secret, settle_seconds)
    outcomes: list[Outcome] = []
    for res in SECRET_RESOURCES:
        scopes: list[str | None] = list(namespaces) or [None]
        for ns in scopes:
            try:
                listed = await kube.list(res, ns)
            except NotFound:
                break  # our CRD is not installed
            for obj in listed.items:
                if ADOPT_ANNOTATION in objects.annotations(obj):
                    outcomes.append(await _adopt_one(ctx, obj))
    return outcomes


async def _carry_over(ctx: _Context, obj: dict[str, Any], secret: Mapping[str, Any]) -> str:
    """Step 1 of the module docstring; returns a note for the report."""
    kind, ns, name = str(obj["kind"]), objects.namespace(obj), objects.name(obj)
    key, problem = await ctx.hmac_key()
    if key is None:
        return f"VSO's credentials not carried over ({problem}): the operator issues new ones"
    try:
        vso_obj = await ctx.kube.get(
            Resource(vso.GROUP, vso.VERSION, vso.PLURALS[kind], kind), name, ns
        )
    except NotFound:
        return "VSO's object is gone, its credentials cannot be carried over: new ones are issued"
    live = decode_data(secret)
    status = (
        None
        if live is None
        else carried_status(
            kind,
            vso_obj.get("status"),
            live,
            hmac_key=key,
            generation=objects.generation(obj),
        )
    )
    if status is None:
        return "VSO's status holds no lease/certificate to carry over: new credentials are issued"
    await ctx.kube.patch(
        _resource_of(kind), name, {"status": status}, ns, patch_type="merge", subresource="status"
    )
    await asyncio.sleep(ctx.settle_seconds)
    what = "lease" if kind == "VaultDynamicSecret" else "certificate"
    return f"VSO's {what} carried over: no new credentials at the switch"


async def _adopt_one(ctx: _Context, obj: dict[str, Any]) -> Outcome:
    kube = ctx.kube
    kind, ns, name = str(obj["kind"]), objects.namespace(obj), objects.name(obj)
    source = f"cluster:{kind}/{ns}/{name}"

    def outcome(verdict: Verdict, secret: str, text: str) -> Outcome:
        out = Outcome(source, "Secret", ns, secret, verdict)
        (out.problems if verdict is Verdict.FAILED else out.changes).append(text)
        return out

    try:
        spec = kind_info(kind).parse_spec(obj)
    except ValidationError as exc:
        return outcome(Verdict.FAILED, "", f"{kind} {name}: {describe_validation_error(exc)}")
    dest = spec.destination
    try:
        secret = await kube.get(SECRETS, dest.name, ns)
    except NotFound:
        return outcome(Verdict.SKIPPED, dest.name, "no such Secret: the operator creates it")
    decision = decide_adoption(
        secret,
        obj,
        owner_reference=objects.owner_reference(obj),
        desired_labels=desired_labels(obj, dest.labels),
        desired_data=None,
    )
    if decision is None:
        owned = any(r.get("uid") == objects.uid(obj) for r in objects.owner_references(secret))
        reason = f"already owned by {kind} {name}" if owned else "not created by VSO"
        return outcome(Verdict.SKIPPED, dest.name, reason)
    if isinstance(decision, Refusal):
        return outcome(Verdict.FAILED, dest.name, f"not adopted: {decision.reason}")
    assert isinstance(decision, Adoption)
    note = ""
    if kind in LEASED_KINDS:
        try:
            note = await _carry_over(ctx, obj, secret)
        except ApiError as exc:
            return outcome(Verdict.FAILED, dest.name, f"carrying the status over failed: {exc}")
    try:
        await kube.patch(SECRETS, dest.name, decision.patch, ns, patch_type="merge")
    except Conflict:
        return outcome(
            Verdict.FAILED, dest.name, "the Secret changed while adopting it: run the command again"
        )
    except ApiError as exc:
        return outcome(Verdict.FAILED, dest.name, f"patching the Secret failed: {exc}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        await kube.patch(
            _resource_of(kind),
            name,
            {"metadata": {"annotations": {ADOPTED_AT_ANNOTATION: stamp}}},
            ns,
            patch_type="merge",
        )
    except ApiError as exc:
        return outcome(
            Verdict.FAILED,
            dest.name,
            f"adopted, but stamping {kind} {name} failed ({exc}): the operator picks it up at "
            "its next change",
        )
    done = outcome(
        Verdict.ADOPTED,
        dest.name,
        f"ownership moved from VSO to {kind} {name}; data untouched",
    )
    if note:
        done.changes.append(note)
    return done


def _resource_of(kind: str) -> Resource:
    for res in SECRET_RESOURCES:
        if res.kind == kind:
            return res
    raise KeyError(kind)
