"""Inject mode, the operator's half: the pod-file delivery target (here) and the mutating
webhook's decisions (`inject_admission.py`).

Two places, one set of rules:

- **The delivery target** (`deliver_to_pods`, called by `DeliveryReconciler.reconcile` at the
  one seam where the flow picks a target). An object with `delivery: inject` goes through the
  same `prepare` as every object (VaultAuth → VaultConnection, allowedNamespaces, address
  allow-list, VaultPathPolicy, transformation refs), then nothing is fetched and no Secret is
  written: each pod's agent logs in as the pod and fetches (per-pod dynamic leases). The status
  says how many pods use it (`injectedPods`), counted from a pod informer that only lists pods
  the webhook labelled, so the operator never holds a cluster's other pods in memory.
- **The admission decision** (`PodInjector`): a pod annotated `vaultbridge.dev/inject` gets
  its objects resolved from the same informer caches with the same functions the reconcile
  uses (`VaultAccess.resolve`, `enforce_path_policy`, `resolve_transformation`,
  the credential guard's audience checks), or is refused with the reason. The patch itself is
  built by the pure `inject/pod.py`.

Nothing here reads Vault, and the AgentConfig written into the pod carries no secret value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from vaultbridge.api.auth import VaultAuthSpec
from vaultbridge.engine.controller import Result
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority
from vaultbridge.inject.pod import (
    INJECTED_LABEL,
    INJECTED_OBJECTS_ANNOTATION,
)
from vaultbridge.kube import objects
from vaultbridge.kube.resources import PODS, SECRETS

from . import destination, ownership
from .errors import ReconcileProblem
from .reasons import INJECT_READY, Reason
from .status import set_condition

if TYPE_CHECKING:
    from .delivery import DeliveryReconciler, Prepared

log = logging.getLogger(__name__)

Obj = dict[str, Any]

INJECTED_SELECTOR = f"{INJECTED_LABEL}=true"
"""The pod informer's label selector: only pods the webhook mutated."""

INJECT_METHODS = ("kubernetes", "jwt")
"""Auth methods a pod can log in with using its own projected ServiceAccount token."""


# -- the pod informer ----------------------------------------------------------------------------


def pod_metadata_only(pod: Obj) -> Obj:
    """Informer transform: keep what counting needs. A mutated pod's spec holds the agent
    config twice (a few KiB); the store keeps ~200 bytes per pod instead."""
    meta = objects.meta(pod)
    notes = meta.get("annotations") or {}
    kept_notes = {}
    if INJECTED_OBJECTS_ANNOTATION in notes:
        kept_notes[INJECTED_OBJECTS_ANNOTATION] = notes[INJECTED_OBJECTS_ANNOTATION]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
        }
        | {"annotations": kept_notes},
    }


def objects_of_pod(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every object the webhook resolved for the pod."""
    raw = str(
        (objects.meta(dict(pod)).get("annotations") or {}).get(INJECTED_OBJECTS_ANNOTATION) or ""
    )
    out = []
    for item in raw.split(","):
        kind, sep, name = item.strip().partition("/")
        if sep and kind and name:
            out.append((kind, name))
    return out


def pod_keys(kind: str, pod: Mapping[str, Any]) -> list[ObjectKey]:
    """Watch mapper: the objects of `kind` a pod uses (a pod came or went: recount)."""
    ns = objects.namespace(dict(pod))
    return [ObjectKey(ns, name) for k, name in objects_of_pod(pod) if k == kind]


def pods_come_and_go(event: str, _old: Obj | None, _new: Obj) -> Priority | None:
    """Only additions and deletions change a count (the markers never change)."""
    return None if event == "MODIFIED" else Priority.NORMAL


def count_pods(pods: Informer | None, kind: str, key: ObjectKey) -> int:
    """Pods of the object's namespace that use it: a scan of that namespace's injected pods."""
    if pods is None:
        return 0
    return sum(
        1 for pod in pods.store.list(key.namespace) if (kind, key.name) in objects_of_pod(pod)
    )


def pod_login_of(
    auth: VaultAuthSpec,
) -> tuple[Literal["kubernetes", "jwt"], str, Sequence[str]]:
    """(method, role, audiences) of a VaultAuth a pod can log in with (its own ServiceAccount
    token); ReconcileProblem otherwise — raised by the reconcile (the object is not Ready) and
    by the webhook (the pod is refused), so status and admission agree."""
    if auth.method == "kubernetes" and auth.kubernetes is not None:
        return "kubernetes", auth.kubernetes.role, auth.kubernetes.audiences or ["vault"]
    if auth.method == "jwt" and auth.jwt is not None:
        if auth.jwt.secret_ref is not None:
            raise ReconcileProblem(
                Reason.INJECT_AUTH_METHOD_NOT_SUPPORTED,
                "its VaultAuth logs in with a JWT from a Secret; with delivery inject the pod "
                "logs in with its own ServiceAccount token (use jwt.serviceAccount or kubernetes)",
                retry=False,
            )
        return "jwt", auth.jwt.role, auth.jwt.audiences or ["vault"]
    raise ReconcileProblem(
        Reason.INJECT_AUTH_METHOD_NOT_SUPPORTED,
        f"its VaultAuth uses method {auth.method}; with delivery inject the pod logs in with its "
        f"own ServiceAccount token, so only {' and '.join(INJECT_METHODS)} work",
        retry=False,
    )


# -- the delivery target -----------------------------------------------------------------------


async def deliver_to_pods(reconciler: DeliveryReconciler[Any], p: Prepared[Any]) -> Result:
    """The pod-file target: the flow's checks passed (`prepare`); record how many pods use the
    object. No Vault read, no Secret. Secrets this object owns from its `secret` delivery are
    deleted (their data must leave etcd), after the kind released what it held for them."""
    pod_login_of(p.resolved.auth)  # a VaultAuth no pod can log in with: not Ready
    ctx = reconciler.ctx
    secrets = ctx.informers.get(SECRETS)
    owned = [
        objects.name(s)
        for s in (secrets.store.list(p.key.namespace) if secrets is not None else [])
        if ownership.is_owned_by(s, p.obj)
    ]
    if p.status.get("secretMAC"):
        # Just moved from secret delivery: revoke / clear what was held for the Secret.
        await reconciler.leave_secret_delivery(p)
    for name in owned:
        if await destination.delete_if_owned(ctx, p.obj, name):
            log.info(
                "deleted Secret %s/%s: the object moved to delivery inject", p.key.namespace, name
            )
            ctx.events.emit(
                p.obj, "Normal", "SecretDeleted", f"deleted Secret {name}: delivery is inject"
            )
    for stale in (
        "destinationName",
        "secretMAC",
        "secretLease",
        "lastSyncTime",
        "vaultVersion",
        "lastRenewalTime",
        "staticCredsMetaData",
        "serialNumber",
        "expiration",
        "lastRotation",
    ):
        p.status.pop(stale, None)
    pods = ctx.informers.get(PODS)
    count = count_pods(pods, reconciler.kind, p.key)
    p.status["injectedPods"] = count
    p.status["lastGeneration"] = p.generation
    message = (
        f"delivery inject: {count} pod(s) use this object; their agents read Vault as the "
        "pod's ServiceAccount (no Secret is written)"
    )
    for condition in ("SecretSynced", "Healthy", "Ready"):
        set_condition(p.status, condition, True, INJECT_READY, message, p.generation)
    await reconciler.succeed(p, delivered=False)
    return Result()
