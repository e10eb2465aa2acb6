"""Building blocks shared by every kind: the base model, CEL rules, name types and references.

Every model is written once and serves two readers: the CRD generator (which turns it into a
structural OpenAPI schema for the API server) and the controllers (which parse objects read from
the API server with `Model.model_validate(obj["spec"])`). Hence the conventions here:
camelCase aliases on the wire, snake_case in Python, unknown fields ignored (an older operator
must not choke on a newer CRD), and CEL rules declared beside the Python checks that mirror them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

if TYPE_CHECKING:
    # The one key model (engine/keys.py), used by resolve_ref; imported when first used, so
    # that the models load without the engine (`vaultbridge agent` parses specs, nothing more).
    from vaultbridge.engine.keys import ObjectKey as ObjectKey  # noqa: PLC0414 (re-export)

GROUP = "vaultbridge.dev"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry: a CEL expression evaluated by the API server.

    `self` in `rule` is the object (or field) the rule is attached to. `field_path` points the
    error at a child field, so `kubectl apply` names the offending field.
    """

    rule: str
    message: str
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def cel(*rules: CelRule) -> dict[str, Any]:
    """json_schema_extra for a single field: `Field(json_schema_extra=cel(CelRule(...)))`."""
    return {"x-kubernetes-validations": [r.to_schema() for r in rules]}


ALLOWED_NAMESPACE_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?|[*])$"

AllowedNamespaces = Annotated[
    list[
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=63, pattern=ALLOWED_NAMESPACE_PATTERN),
        ]
    ],
    Field(
        max_length=256,
        json_schema_extra=cel(
            CelRule(
                rule="!self.exists(n, n == '*') || size(self) == 1",
                message="'*' must be the only entry",
            ),
        ),
    ),
]
"""`allowedNamespaces` of VaultConnection and VaultAuth: namespace names, or ["*"] alone."""


class ApiModel(BaseModel):
    """Base of every spec/status model.

    `cel_rules` holds the object-level CEL rules that go into the schema of the model; the
    Python mirror of each rule lives in a model validator of the same class.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.cel_rules:
            target["x-kubernetes-validations"] = [r.to_schema() for r in cls.cel_rules]
        return schema

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API server wants it: camelCase keys, JSON values, unset fields out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def describe_validation_error(exc: ValidationError) -> str:
    """A one-line summary of a ValidationError that never echoes input values.

    pydantic's own str() includes the offending input, which for `headers` or `params` may be
    a credential; controllers put this text in status and events, so inputs must stay out.
    """
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


# --- names ------------------------------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a pattern)
# `name`, `namespace/name`, or empty (the operator then picks its documented default).
OBJECT_REF_PATTERN = (
    r"^(([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?"
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$"
)

DNSLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A Kubernetes namespace name (RFC 1123 label)."""

DNSSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
"""A Kubernetes object name such as a Secret or Deployment name (RFC 1123 subdomain)."""

SecretKey = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)
]
"""A key of a Secret's data map: letters, digits, `-`, `_` and `.`."""

ObjectRef = Annotated[str, StringConstraints(max_length=317, pattern=OBJECT_REF_PATTERN)]
"""A reference to one of our objects: `name` or `namespace/name`; empty means the default."""

ShortString = Annotated[str, StringConstraints(max_length=256)]
"""A free-form string that CEL rules may look at: bounded so their cost can be estimated."""

VaultNamespace = Annotated[str, StringConstraints(max_length=256, pattern=r"^([^/].*)?$")]
"""A Vault Enterprise / OpenBao namespace such as `admin/team-a`."""

StringMap = dict[ShortString, Annotated[str, StringConstraints(max_length=4096)]]


# --- Vault paths ------------------------------------------------------------------------------

# A `..` segment would let a manifest climb out of the mount its author was granted by the path
# guard; a leading `/` makes two spellings of one path. Both are refused by the API server (CEL)
# and again here, because controllers may parse objects that predate the CRD rules.
_DOTDOT_SEGMENT = re.compile(r"(^|/)\.\.(/|$)")
_VAULT_PATH_RULES = (
    CelRule(rule="!self.startsWith('/')", message="must not start with '/'"),
    CelRule(rule="!self.matches('(^|/)[.][.](/|$)')", message="must not contain '..' segments"),
)


def _check_vault_path(value: str) -> str:
    if value.startswith("/"):
        raise ValueError("must not start with '/'")
    if _DOTDOT_SEGMENT.search(value):
        raise ValueError("must not contain '..' segments")
    return value


VaultPath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024),
    AfterValidator(_check_vault_path),
    Field(json_schema_extra=cel(*_VAULT_PATH_RULES)),
]
"""A mount or a path inside Vault: no leading `/`, no `..` segment (checked here and by CEL)."""


# --- references -------------------------------------------------------------------------------


def resolve_ref(
    ref: str | None,
    *,
    own_namespace: str,
    operator_namespace: str,
    default_name: str = "default",
) -> ObjectKey:
    """Turn a `vaultAuthRef` / `vaultConnectionRef` value into the object it designates.

    Same rules as VSO so its manifests keep their meaning: empty means the object called
    `default` in the operator's namespace; a bare name is looked up in the referring object's
    own namespace; `namespace/name` is taken as written.
    """
    if not ref:
        return object_key(operator_namespace, default_name)
    namespace, sep, name = ref.partition("/")
    if not sep:
        return object_key(own_namespace, ref)
    return object_key(namespace, name)


def object_key(namespace: str, name: str) -> ObjectKey:
    """`ObjectKey(namespace, name)`, importing the engine's key model only when called."""
    from vaultbridge.engine.keys import ObjectKey

    return ObjectKey(namespace, name)


def __getattr__(name: str) -> Any:
    # `from vaultbridge.api.common import ObjectKey` keeps working, lazily.
    if name == "ObjectKey":
        from vaultbridge.engine.keys import ObjectKey

        return ObjectKey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
