"""`vaultbridge migrate --adopt-secrets`: hand VSO's Secrets to the applied vaultbridge objects.

Runs after the converted objects are applied (and VSO is scaled to zero). For every
VaultStaticSecret, VaultDynamicSecret and VaultPKISecret carrying the adopt-from annotation, it
reads the destination Secret and asks `adopt.decide_adoption` (without the Vault data, which
only the operator reads); an `Adoption` patch is applied as is: labels and owner reference only,
guarded by the Secret's resourceVersion, data untouched. It then stamps the object with
`vaultbridge.dev/adopted-at`, so the operator reconciles it right away: the Secret is now its
own, and it writes nothing when the data already matches Vault (and, first sync, restarts
nothing either way).

Until the operator calls `decide_adoption` itself at its ownership check, this command is how
adoption happens; the operator meanwhile reports `DestinationConflict` on those objects, which
clears at the reconcile this command triggers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from vaultbridge.api import describe_validation_error, kind_info
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import ApiError, Conflict, NotFound
from vaultbridge.kube.resources import (
    SECRETS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
    VAULT_STATIC_SECRETS,
    Resource,
)

from .adopt import Adoption, Refusal, decide_adoption
from .convert import ADOPT_ANNOTATION, Outcome, Verdict

ADOPTED_AT_ANNOTATION = "vaultbridge.dev/adopted-at"
SECRET_RESOURCES: tuple[Resource, ...] = (
    VAULT_STATIC_SECRETS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
)


def desired_labels(owner: Mapping[str, Any], dest_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels the operator puts on a Secret it owns (as controllers/destination.py)."""
    labels = dict(dest_labels)
    labels.update(objects.owner_labels(str(owner["kind"]), objects.name(dict(owner))))
    return labels


async def adopt_secrets(kube: KubeClient, namespaces: list[str]) -> list[Outcome]:
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
                    outcomes.append(await _adopt_one(kube, obj))
    return outcomes


async def _adopt_one(kube: KubeClient, obj: dict[str, Any]) -> Outcome:
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
    return outcome(
        Verdict.ADOPTED,
        dest.name,
        f"ownership moved from VSO to {kind} {name}; data untouched",
    )


def _resource_of(kind: str) -> Resource:
    for res in SECRET_RESOURCES:
        if res.kind == kind:
            return res
    raise KeyError(kind)
