"""Inject mode, the operator's half: the pod-file delivery target and the mutating webhook's
decisions.

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

import base64
import copy
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from vaultbridge.api.auth import VaultAuthSpec
from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.destination import SyncedSecretSpec
from vaultbridge.api.kinds import SECRET_KINDS, KindInfo
from vaultbridge.engine.controller import Result
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority
from vaultbridge.inject.config import (
    AgentConfig,
    AgentFile,
    AgentLogin,
    AgentObject,
    AgentVault,
)
from vaultbridge.inject.pod import (
    INJECTED_LABEL,
    INJECTED_OBJECTS_ANNOTATION,
    TOKEN_DIR,
    AgentOptions,
    InjectRefused,
    InjectRequest,
    already_injected,
    build_patch,
    parse_request,
    run_as_user,
    token_file,
    wants_injection,
)
from vaultbridge.kube import objects
from vaultbridge.kube.resources import PODS, SECRETS
from vaultbridge.secrets import pipeline

from . import destination
from .context import OperatorContext
from .credential_guard import TokenGrant
from .errors import ReconcileProblem
from .path_policy import enforce_path_policy
from .reasons import INJECT_READY
from .status import set_condition
from .transform import resolve_transformation
from .vault_access import VaultAccess

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


# -- the delivery target -----------------------------------------------------------------------


async def deliver_to_pods(reconciler: DeliveryReconciler[Any], p: Prepared[Any]) -> Result:
    """The pod-file target: the flow's checks passed (`prepare`); record how many pods use the
    object. No Vault read, no Secret. Secrets this object owns from its `secret` delivery are
    deleted (their data must leave etcd), after the kind released what it held for them."""
    ctx = reconciler.ctx
    secrets = ctx.informers.get(SECRETS)
    owned = [
        objects.name(s)
        for s in (secrets.store.list(p.key.namespace) if secrets is not None else [])
        if destination.is_owned_by(s, p.obj)
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


# -- the admission decision --------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    kind: str
    name: str
    agent_object: AgentObject
    audience: str


class PodInjector:
    """Answers `/mutate-pods` AdmissionReviews from the operator's caches."""

    def __init__(self, ctx: OperatorContext, access: VaultAccess, options: AgentOptions) -> None:
        self.ctx = ctx
        self.access = access
        self.options = options

    async def review(self, review: Mapping[str, Any]) -> dict[str, Any]:
        """The AdmissionReview answer: allowed (with a JSONPatch, or untouched) or refused."""
        request = review.get("request") or {}
        uid = str(request.get("uid") or "")
        pod = request.get("object")
        api_version = str(review.get("apiVersion") or "admission.k8s.io/v1")
        if (
            request.get("operation") not in (None, "CREATE")
            or not isinstance(pod, dict)
            or not wants_injection(pod)
            or already_injected(pod)
        ):
            return admission_response(api_version, uid, True)
        namespace = str(request.get("namespace") or objects.namespace(pod))
        try:
            patch = await self.patch_for(namespace, pod)
        except InjectRefused as exc:
            name = objects.name(pod) or str(objects.meta(pod).get("generateName") or "")
            log.info("pod %s/%s refused: %s: %s", namespace, name, exc.reason, exc.message)
            return admission_response(
                api_version, uid, False, reason=exc.reason, message=exc.message
            )
        return admission_response(api_version, uid, True, patch=patch)

    async def patch_for(self, namespace: str, pod: Obj) -> list[dict[str, Any]]:
        request = parse_request(pod)
        if not all(
            (i := self.ctx.informers.get(info.resource)) is not None and i.has_synced
            for info in SECRET_KINDS
        ):
            # Just started: an empty cache would answer "not found". The pod's controller
            # retries; a bare pod is re-created by whoever created it.
            raise InjectRefused(
                "InjectNotReady", "the operator's caches are not synced yet; retry in a moment"
            )
        service_account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        resolved = [
            await self.resolve(namespace, service_account, name, request) for name in request.names
        ]
        audiences: list[str] = []
        for r in resolved:
            if r.audience not in audiences:
                audiences.append(r.audience)
        agent_objects = [
            r.agent_object.model_copy(
                update={
                    "login": r.agent_object.login.model_copy(
                        update={
                            "token_path": f"{TOKEN_DIR}/{token_file(audiences.index(r.audience))}"
                        }
                    )
                }
            )
            for r in resolved
        ]
        config = AgentConfig(
            namespace=namespace,
            pod_name=objects.name(pod) or None,
            objects=agent_objects,
            on_change=request.on_change,
            run_as_user=run_as_user(pod),
        )
        return build_patch(
            pod,
            config,
            request,
            audiences=audiences,
            resolved=[(r.kind, r.name) for r in resolved],
            options=self.options,
        )

    def _find(self, namespace: str, name: str) -> tuple[KindInfo[Any, Any], Obj, SyncedSecretSpec]:
        """The inject-mode object called `name` in `namespace`, whatever its kind."""
        found: list[tuple[KindInfo[Any, Any], Obj, SyncedSecretSpec]] = []
        in_secret_delivery: list[str] = []
        for info in SECRET_KINDS:
            informer = self.ctx.informers.get(info.resource)
            obj = informer.store.get(ObjectKey(namespace, name)) if informer else None
            if obj is None:
                continue
            try:
                spec = info.parse_spec(obj)
            except ValidationError as exc:
                raise InjectRefused(
                    "InvalidSpec",
                    f"{info.kind} {namespace}/{name} is invalid: {describe_validation_error(exc)}",
                ) from None
            if spec.injected:
                found.append((info, obj, spec))
            else:
                in_secret_delivery.append(info.kind)
        if len(found) > 1:
            raise InjectRefused(
                "AmbiguousInjectObject",
                f"{name!r} names an inject-mode object of several kinds "
                f"({', '.join(f[0].kind for f in found)}) in {namespace}; rename one",
            )
        if found:
            return found[0]
        if in_secret_delivery:
            raise InjectRefused(
                "NotInjectDelivery",
                f"{in_secret_delivery[0]} {namespace}/{name} has delivery secret; set "
                "spec.delivery: inject to deliver it into pods",
            )
        raise InjectRefused(
            "InjectObjectNotFound",
            f"no VaultStaticSecret, VaultDynamicSecret or VaultPKISecret {namespace}/{name} "
            "(or the operator has not seen it yet: the pod's controller retries)",
        )

    async def resolve(
        self, namespace: str, service_account: str, name: str, request: InjectRequest
    ) -> Resolved:
        """One object, checked with the reconcile's own functions."""
        info, obj, spec = self._find(namespace, name)
        what = f"{info.kind} {namespace}/{name}"
        try:
            resolved = await self.access.resolve(namespace, spec.vault_auth_ref)
            enforce_path_policy(self.ctx, namespace, spec)
            transformation = resolve_transformation(self.ctx, namespace, spec.destination)
            auth = resolved.auth
            method, role, audiences = _login_of(auth)
            grant = TokenGrant(
                auth_key=resolved.auth_key,
                connection_key=resolved.connection_key,
                connection=self.access.connection_spec(
                    resolved.connection_key, resolved.connection_obj
                ),
                namespace=namespace,
                service_account=service_account,
                audiences=(audiences[0],),
                expiration_seconds=self.options.token_expiration_seconds,
            )
            await self.access.guard.check_projected_audiences(grant)
        except ReconcileProblem as problem:
            raise InjectRefused(str(problem.reason), f"{what}: {problem.message}") from None
        if transformation.source_templates:
            raise InjectRefused(
                "InjectNotSupported",
                f"{what}: SecretTransformation sourceTemplates are not supported with delivery "
                "inject yet",
            )
        settings = resolved.settings
        vault = AgentVault(
            address=settings.address,
            namespace=spec.namespace or auth.namespace,
            ca_cert_pem=settings.ca_pem.decode() if settings.ca_pem else None,
            tls_server_name=settings.tls_server_name,
            skip_tls_verify=settings.skip_tls_verify,
            headers=dict(settings.headers),
            timeout_seconds=settings.timeout,
        )
        login = AgentLogin(method=method, mount=auth.effective_mount(), role=request.role or role)
        template = request.templates.get(name)
        file = AgentFile(
            directory=f"{request.mount_path}/{name}",
            template=template,
            filename=(request.filenames.get(name) or name) if template is not None else None,
        )
        agent_object = AgentObject(
            name=name,
            kind=info.kind,
            spec=inlined_spec(obj, transformation),
            vault=vault,
            login=login,
            file=file,
        )
        return Resolved(info.kind, name, agent_object, audiences[0])


def _login_of(
    auth: VaultAuthSpec,
) -> tuple[Literal["kubernetes", "jwt"], str, Sequence[str]]:
    """(method, role, audiences) of a VaultAuth a pod can use; ReconcileProblem otherwise."""
    if auth.method == "kubernetes" and auth.kubernetes is not None:
        return "kubernetes", auth.kubernetes.role, auth.kubernetes.audiences or ["vault"]
    if auth.method == "jwt" and auth.jwt is not None:
        if auth.jwt.secret_ref is not None:
            raise ReconcileProblem(
                "InjectAuthMethodNotSupported",
                "its VaultAuth logs in with a JWT from a Secret; with delivery inject the pod "
                "logs in with its own ServiceAccount token (use jwt.serviceAccount or kubernetes)",
                retry=False,
            )
        return "jwt", auth.jwt.role, auth.jwt.audiences or ["vault"]
    raise ReconcileProblem(
        "InjectAuthMethodNotSupported",
        f"its VaultAuth uses method {auth.method}; with delivery inject the pod logs in with its "
        f"own ServiceAccount token, so only {' and '.join(INJECT_METHODS)} work",
        retry=False,
    )


def inlined_spec(obj: Mapping[str, Any], transformation: pipeline.TransformationSpec) -> Obj:
    """The object's spec as stored, with its transformation (inline + SecretTransformation
    references, combined by the pipeline's own rules) written inline: the agent reads no
    SecretTransformation."""
    spec: Obj = copy.deepcopy(dict(obj.get("spec") or {}))
    dest: Obj = dict(spec.get("destination") or {})
    dest["transformation"] = {
        "templates": {k: {"text": v} for k, v in transformation.templates.items()},
        "includes": list(transformation.includes),
        "excludes": list(transformation.excludes),
        "excludeRaw": transformation.exclude_raw,
    }
    spec["destination"] = dest
    return spec


def admission_response(
    api_version: str,
    uid: str,
    allowed: bool,
    *,
    patch: list[dict[str, Any]] | None = None,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if not allowed:
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": message,
            "details": {"causes": [{"reason": reason, "message": message}]},
        }
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}
