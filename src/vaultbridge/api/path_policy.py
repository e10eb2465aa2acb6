"""VaultPathPolicy: which Vault paths the secret resources of some namespaces may name.

Cluster-scoped and owned by the platform team. A namespace's tenants write their own
VaultStaticSecret / VaultDynamicSecret / VaultPKISecret objects; the policies selecting that
namespace bound the Vault paths those objects may read (`allow`) and name paths that must never
become Kubernetes Secrets at all (`neverSync`). The matching itself lives in
`vaultbridge.guard.matching`; this module only holds the shape of the object.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from vaultbridge.api.common import ApiModel, CelRule, DNSLabel
from vaultbridge.api.conditions import Conditions

PathPattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=512, pattern=r"^[^/].*$"),
]
"""A Vault path pattern: `*` matches inside one segment, a final `*` matches the rest of the
path, `{namespace}` stands for the resource's namespace."""

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]


class LabelSelectorRequirement(ApiModel):
    """One `matchExpressions` entry of a label selector."""

    key: LabelKey
    """Label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """In, NotIn, Exists or DoesNotExist."""
    values: Annotated[list[LabelValue], Field(max_length=64)] = Field(default_factory=list)
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(ApiModel):
    """A standard Kubernetes label selector over Namespace labels."""

    match_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] = Field(
        default_factory=dict
    )
    """Labels a namespace must carry, all of them."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] = Field(
        default_factory=list
    )
    """Further requirements, all of which must hold."""


class VaultPathPolicySpec(ApiModel):
    """The namespaces a policy covers, the Vault paths they may read and those never synced."""

    cel_rules = (
        CelRule(
            rule=(
                "(has(self.namespaces) && size(self.namespaces) > 0) != has(self.namespaceSelector)"
            ),
            message="set exactly one of namespaces (non-empty) or namespaceSelector",
        ),
    )

    namespaces: Annotated[list[DNSLabel], Field(max_length=256)] = Field(default_factory=list)
    """Namespaces this policy selects, by name. Exclusive with namespaceSelector."""
    namespace_selector: LabelSelector | None = None
    """Namespaces this policy selects, by label. An empty selector selects every namespace.
    Exclusive with namespaces."""
    allow: Annotated[list[PathPattern], Field(max_length=256)] = Field(default_factory=list)
    """Vault paths the secret resources of the selected namespaces may name. A resource must
    match at least one allow pattern of some policy selecting its namespace."""
    never_sync: Annotated[list[PathPattern], Field(max_length=256)] = Field(default_factory=list)
    """Vault paths that must never become Kubernetes Secrets. A match with the neverSync
    pattern of any policy selecting the namespace forbids the resource, whatever allows it."""

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if bool(self.namespaces) == (self.namespace_selector is not None):
            raise ValueError("set exactly one of namespaces (non-empty) or namespaceSelector")
        return self


class VaultPathPolicyStatus(ApiModel):
    """What the operator made of the policy."""

    valid: bool | None = None
    """Whether the operator accepted the policy."""
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Why the policy was not accepted."""
    conditions: Conditions = Field(default_factory=list)
    """Current state of the VaultPathPolicy."""
