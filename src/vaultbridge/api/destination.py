"""Where synced data lands: the destination Secret, its transformation and the rollout targets.

Shared by the three secret kinds so that a change here changes all of them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from vaultbridge.api.common import (
    ApiModel,
    CelRule,
    DNSLabel,
    DNSSubdomain,
    ObjectRef,
    SecretKey,
    ShortString,
    VaultNamespace,
    object_key,
    resolve_ref,
)
from vaultbridge.api.conditions import Conditions
from vaultbridge.secrets.errors import InvalidRegexError
from vaultbridge.secrets.filters import compile_pattern

if TYPE_CHECKING:
    from vaultbridge.engine.keys import ObjectKey

MAX_TEMPLATE_LENGTH = 65536


def _check_regex(value: str) -> str:
    # The operator's own check (RE2 syntax, the syntax of Go's regexp that VSO uses), so that
    # a pattern the API accepts is one the filters can run.
    try:
        compile_pattern(value)
    except InvalidRegexError as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


KeyRegex = Annotated[
    str, StringConstraints(min_length=1, max_length=512), AfterValidator(_check_regex)
]
"""A regular expression matched against Secret keys (RE2 syntax, as Go's regexp; searched, not
anchored)."""


class RolloutRestartTarget(ApiModel):
    """A workload restarted (like `kubectl rollout restart`) when the Secret data changes."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "argo.Rollout"]
    """Kind of the workload: Deployment, StatefulSet, DaemonSet, or argo.Rollout (an Argo
    Rollout, restarted through its `spec.restartAt`; needs the Argo Rollouts CRD and, with the
    Helm chart, `rbac.argoRollouts: true`)."""
    name: DNSSubdomain
    """Name of the workload, in the same namespace as this object."""


RolloutRestartTargets = Annotated[list[RolloutRestartTarget], Field(max_length=32)]


class Template(ApiModel):
    """A template rendering the value of one Secret key."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEMPLATE_LENGTH)]
    """Template text (Jinja2, sandboxed). The data read from Vault is available to it."""


class SourceTemplate(ApiModel):
    """A named template that other templates can include; it renders no key by itself."""

    name: SecretKey
    """Name under which other templates include this one."""
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEMPLATE_LENGTH)]
    """Template text (Jinja2, sandboxed)."""


Templates = Annotated[dict[SecretKey, Template], Field(max_length=64)]


class TemplateRef(ApiModel):
    """Use one template of a SecretTransformation."""

    name: SecretKey
    """Key of the template in the SecretTransformation's `templates`."""
    key_override: SecretKey | None = None
    """Write the rendered value under this key instead of the template's own key."""


class TransformationRef(ApiModel):
    """Reuse templates and filters defined in a SecretTransformation object."""

    name: DNSSubdomain
    """Name of the SecretTransformation."""
    namespace: DNSLabel | None = None
    """Namespace of the SecretTransformation. Defaults to the namespace of this object."""
    template_refs: Annotated[list[TemplateRef], Field(max_length=64)] = Field(default_factory=list)
    """Templates to use from it. Empty uses all of its templates under their own keys."""

    def key(self, own_namespace: str) -> ObjectKey:
        """The SecretTransformation this ref names, for an object in `own_namespace`."""
        return object_key(self.namespace or own_namespace, self.name)

    ignore_includes: bool = False
    """Do not apply the SecretTransformation's `includes` filters."""
    ignore_excludes: bool = False
    """Do not apply the SecretTransformation's `excludes` filters."""


class Transformation(ApiModel):
    """How the data read from Vault becomes the data of the Secret."""

    templates: Templates = Field(default_factory=dict)
    """Templates keyed by the Secret key they render."""
    transformation_refs: Annotated[list[TransformationRef], Field(max_length=16)] = Field(
        default_factory=list
    )
    """SecretTransformation objects whose templates and filters apply as well."""
    includes: Annotated[list[KeyRegex], Field(max_length=64)] = Field(default_factory=list)
    """Keep only the Vault keys matching one of these regular expressions (applied after
    `excludes`; templated keys are never filtered). Invalid expressions are reported in the
    status by the operator."""
    excludes: Annotated[list[KeyRegex], Field(max_length=64)] = Field(default_factory=list)
    """Drop the Vault keys matching any of these regular expressions (applied before
    `includes`; templated keys are never filtered)."""
    exclude_raw: bool = False
    """Do not write the `_raw` key holding the whole Vault response as JSON."""


FORBIDDEN_SECRET_TYPES = ("kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")
"""Secret types Kubernetes fills with credentials itself (or turns into credentials): a
destination of such a type would make the operator create a Secret that hands a ServiceAccount
token (or a bootstrap token) to whoever may read Secrets in the namespace."""
FORBIDDEN_ANNOTATIONS = (
    "kubernetes.io/service-account.name",
    "kubernetes.io/service-account.uid",
)
"""Annotations that ask Kubernetes' token controller to inject a ServiceAccount's token."""


def forbidden_destination(type_: str, annotations: Mapping[str, str]) -> str | None:
    """Why a destination must not be written, or None (the reconcile's mirror of the CEL)."""
    if type_ in FORBIDDEN_SECRET_TYPES:
        return (
            f"destination.type {type_} is filled with credentials by Kubernetes itself; "
            "the operator never creates such a Secret"
        )
    for key in FORBIDDEN_ANNOTATIONS:
        if key in annotations:
            return (
                f"destination.annotations {key} asks Kubernetes to inject a ServiceAccount "
                "token; the operator never sets it"
            )
    return None


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


class Destination(ApiModel):
    """The Kubernetes Secret that receives the data."""

    cel_rules = (
        CelRule(
            rule=f"!has(self.type) || !(self.type in {_cel_list(FORBIDDEN_SECRET_TYPES)})",
            message="type: Secret types that Kubernetes fills with credentials itself "
            f"({', '.join(FORBIDDEN_SECRET_TYPES)}) are not allowed",
        ),
        CelRule(
            rule="!has(self.annotations) || "
            f"!{_cel_list(FORBIDDEN_ANNOTATIONS)}.exists(k, k in self.annotations)",
            message="annotations: annotations that ask Kubernetes to inject a ServiceAccount "
            f"token ({', '.join(FORBIDDEN_ANNOTATIONS)}) are not allowed",
        ),
    )

    name: DNSSubdomain = ""
    """Name of the Secret, in the same namespace as this object. Required when `delivery` is
    `secret`; must be unset when it is `inject` (no Secret is written)."""
    create: bool = False
    """Create the Secret if it does not exist. The operator owns a Secret it created and deletes
    it with this object."""
    overwrite: bool = False
    """Take over an existing Secret that the operator did not create, replacing its data."""
    labels: Annotated[dict[ShortString, ShortString], Field(max_length=64)] = Field(
        default_factory=dict
    )
    """Labels set on the Secret."""
    annotations: Annotated[
        dict[ShortString, Annotated[str, StringConstraints(max_length=65536)]],
        Field(max_length=64),
    ] = Field(default_factory=dict)
    """Annotations set on the Secret."""
    type: Annotated[str, StringConstraints(min_length=1, max_length=253)] = "Opaque"
    """Type of the Secret, such as Opaque or kubernetes.io/tls. Applies when the operator
    creates the Secret."""
    transformation: Transformation = Field(default_factory=Transformation)
    """Templates and key filters applied to the data before it is written."""

    @model_validator(mode="after")
    def _no_credential_injection(self) -> Self:
        problem = forbidden_destination(self.type, self.annotations)
        if problem is not None:
            raise ValueError(problem)
        return self


Delivery = Literal["secret", "inject"]
"""`secret`: the operator writes a Kubernetes Secret (sync). `inject`: no Secret; pods that
name the object in the annotation `vaultbridge.dev/inject` get its data as files in memory,
fetched by `vaultbridge agent` in the pod (docs/inject.md)."""


def inject_refusal(delivery: str, dest: Destination, restart_targets: int) -> str | None:
    """Why a spec's destination does not fit its delivery, or None (the reconcile's mirror of
    the CEL rules of SyncedSecretSpec)."""
    if delivery != "inject":
        if not dest.name:
            return "destination.name is required when delivery is secret"
        return None
    secret_only = [
        name
        for name, is_set in (
            ("destination.name", bool(dest.name)),
            ("destination.create", dest.create),
            ("destination.overwrite", dest.overwrite),
            ("destination.labels", bool(dest.labels)),
            ("destination.annotations", bool(dest.annotations)),
            ("destination.type", dest.type != "Opaque"),
            ("rolloutRestartTargets", restart_targets > 0),
        )
        if is_set
    ]
    if secret_only:
        return (
            f"{', '.join(secret_only)}: only for delivery secret; with delivery inject no "
            "Secret is written and pods read fresh files without a restart"
        )
    return None


_NO_DEST = "!has(self.destination)"
INJECT_CEL_RULES: tuple[CelRule, ...] = (
    CelRule(
        rule="(has(self.delivery) && self.delivery == 'inject') || "
        "(has(self.destination) && has(self.destination.name) && self.destination.name != '')",
        message="destination.name is required when delivery is secret",
        field_path=".destination.name",
    ),
    CelRule(
        rule="!has(self.delivery) || self.delivery != 'inject' || "
        f"{_NO_DEST} || ((!has(self.destination.name) || self.destination.name == '') && "
        "(!has(self.destination.create) || !self.destination.create) && "
        "(!has(self.destination.overwrite) || !self.destination.overwrite) && "
        "(!has(self.destination.labels) || size(self.destination.labels) == 0) && "
        "(!has(self.destination.annotations) || size(self.destination.annotations) == 0) && "
        "(!has(self.destination.type) || self.destination.type == 'Opaque'))",
        message="with delivery inject no Secret is written: destination name, create, "
        "overwrite, labels, annotations and type must be unset (transformation still applies)",
    ),
    CelRule(
        rule="!has(self.delivery) || self.delivery != 'inject' || "
        "!has(self.rolloutRestartTargets) || size(self.rolloutRestartTargets) == 0",
        message="rolloutRestartTargets: not allowed with delivery inject (pods read fresh "
        "files without a restart)",
    ),
)
"""The delivery rules of every secret kind's spec; `inject_refusal` is their Python mirror."""


class SyncedSecretSpec(ApiModel):
    """Fields every kind that writes a Secret shares."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = INJECT_CEL_RULES

    delivery: Delivery = "secret"
    """How the data reaches workloads: `secret` (a Kubernetes Secret, the default) or
    `inject` (files in memory in the pods that ask for this object with the annotation
    `vaultbridge.dev/inject`; no Secret, nothing in etcd; see docs/inject.md)."""
    vault_auth_ref: ObjectRef = ""
    """VaultAuth to log in with: `name` (in this namespace) or `namespace/name`. Empty uses the
    VaultAuth named `default` in the operator's namespace."""
    namespace: VaultNamespace | None = None
    """Vault Enterprise / OpenBao namespace of the secret. Overrides the VaultAuth's namespace."""
    rollout_restart_targets: RolloutRestartTargets = Field(default_factory=list)
    """Workloads restarted when the Secret's data changes."""
    destination: Destination = Field(default_factory=Destination)
    """The Secret that receives the data (`delivery: secret`), or only its `transformation`
    (`delivery: inject`)."""

    @model_validator(mode="after")
    def _destination_fits_delivery(self) -> Self:
        problem = inject_refusal(self.delivery, self.destination, len(self.rollout_restart_targets))
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def injected(self) -> bool:
        """Delivered into pods by the agent, not into a Secret by the operator."""
        return self.delivery == "inject"

    def auth_ref(self, *, own_namespace: str, operator_namespace: str) -> ObjectKey:
        """The VaultAuth this object uses."""
        return resolve_ref(
            self.vault_auth_ref,
            own_namespace=own_namespace,
            operator_namespace=operator_namespace,
        )


class SyncedSecretStatus(ApiModel):
    """Status fields every kind that writes a Secret shares."""

    last_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation of the spec last synced successfully."""
    secret_mac: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, alias="secretMAC"
    )
    """Keyed hash (HMAC-SHA256) of the Secret data last written; never the data itself."""
    conditions: Conditions = Field(default_factory=list)
    """Current state: SecretSynced, Healthy and Ready."""
    injected_pods: Annotated[int, Field(ge=0)] | None = None
    """With delivery inject: how many pods (admitted by the operator's webhook, not yet
    deleted) name this object in their `vaultbridge.dev/inject` annotation."""
