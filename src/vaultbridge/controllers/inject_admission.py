"""Inject mode's admission decision: the mutating webhook's `PodInjector`.

A pod annotated `vaultbridge.dev/inject` gets its objects resolved from the operator's
informer caches with the same functions the reconcile uses (`VaultAccess.resolve`,
`enforce_path_policy`, `resolve_transformation`, the credential guard's audience checks), or is
refused with the reason. The patch itself is built by the pure `inject/pod.py`; the delivery
target of inject-mode objects (status, pod count) is `inject.py`. Nothing here reads Vault, and
the AgentConfig written into the pod carries no secret value.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.destination import SyncedSecretSpec
from vaultbridge.api.kinds import SECRET_KINDS, KindInfo
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.inject.config import (
    AgentConfig,
    AgentFile,
    AgentLogin,
    AgentObject,
    AgentVault,
)
from vaultbridge.inject.pod import (
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
from vaultbridge.secrets import pipeline

from .context import OperatorContext
from .credential_guard import TokenGrant
from .errors import ReconcileProblem
from .inject import pod_login_of
from .path_policy import enforce_path_policy
from .transform import resolve_transformation
from .vault_access import VaultAccess

log = logging.getLogger(__name__)

Obj = dict[str, Any]

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
            method, role, audiences = pod_login_of(auth)
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
