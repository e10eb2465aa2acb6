"""Path policies in the reconcile: the second enforcement point, after admission.

Admission only sees an object when it is written; a policy written later (or a namespace label
changed) must still stop the sync. Every reconcile of a secret kind asks here right after
resolving its VaultAuth, before anything is read from Vault. A refusal is a `ReconcileProblem`
without retry (only an edit of the object or a policy helps; the watches bring that reconcile),
so the caller's failure path keeps the last Secret and reports the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.kinds import VAULT_PATH_POLICIES
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.guard.matching import DEFAULT_ALLOW_ALL
from vaultbridge.guard.paths import SpecModel, effective_paths, spec_paths
from vaultbridge.guard.source import InformerPolicySource, PolicySource, check
from vaultbridge.kube import objects
from vaultbridge.kube.resources import NAMESPACES

from .context import OperatorContext
from .errors import ReconcileProblem


def policy_source(ctx: OperatorContext) -> PolicySource | None:
    """The informer-backed source, when the operator runs the policy informers."""
    if VAULT_PATH_POLICIES not in ctx.informers:
        return None
    if ctx.policy_source is None:
        ctx.policy_source = InformerPolicySource(
            ctx.informers[VAULT_PATH_POLICIES], ctx.informers.get(NAMESPACES)
        )
    return ctx.policy_source


def enforce_paths(ctx: OperatorContext, namespace: str, paths: Sequence[str]) -> None:
    """Raise `ReconcileProblem` (PathNotAllowed / SyncForbidden) if the paths are refused."""
    default = str(getattr(ctx.settings, "path_policy_default", DEFAULT_ALLOW_ALL))
    verdict = check(policy_source(ctx), namespace, paths, default)
    if not verdict.allowed:
        raise ReconcileProblem(verdict.reason, verdict.message, retry=False)


def enforce_path_policy(ctx: OperatorContext, namespace: str, spec: SpecModel | Any) -> None:
    """`enforce_paths` for a parsed VaultStaticSecret / VaultDynamicSecret / VaultPKISecret
    spec."""
    enforce_paths(ctx, namespace, spec_paths(spec))


REFUSED_REASONS = frozenset({"PathNotAllowed", "SyncForbidden"})


def _refusal_in_status(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the SecretSynced condition when a path policy refused the object."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "SecretSynced":
            if cond.get("status") == "False" and cond.get("reason") in REFUSED_REASONS:
                return str(cond.get("reason")), str(cond.get("message") or "")
            return None
    return None


def keys_whose_verdict_changed(
    ctx: OperatorContext, kind: str, objs: Iterable[dict[str, Any]]
) -> list[ObjectKey]:
    """The objects a policy or namespace change concerns: those now refused that still sync,
    those refused for another reason than their status says, and those refused that are now
    allowed. Re-syncing every object on each policy edit would cost one Vault read per object
    for nothing."""
    default = str(getattr(ctx.settings, "path_policy_default", DEFAULT_ALLOW_ALL))
    source = policy_source(ctx)
    keys: list[ObjectKey] = []
    for obj in objs:
        namespace = objects.namespace(obj)
        try:
            paths = effective_paths(kind, obj.get("spec") or {})
        except (ValidationError, KeyError):
            continue
        verdict = check(source, namespace, paths, default)
        now = None if verdict.allowed else (verdict.reason, verdict.message)
        if now != _refusal_in_status(obj):
            keys.append(ObjectKey.of(obj))
    return keys
