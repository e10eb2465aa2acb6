"""VaultPathPolicy semantics, as pure functions shared by the webhook, the controllers and audit.

Patterns are matched against the whole effective path (no implicit prefix match):

- `*` matches any run of characters inside one path segment (it never crosses a `/`);
- a `*` that ends the pattern matches the rest of the path, further segments included (so
  `secret/data/team-a/*` covers `secret/data/team-a/db/main`, like a Vault policy's trailing `*`);
- `{namespace}` is replaced by the namespace of the resource being checked.

A resource complies when every one of its effective paths matches at least one `allow` pattern
of a policy selecting its namespace, and none matches a `neverSync` pattern of any policy at all
(a path that must never become a Secret must not become one in a namespace someone forgot to
select). With no policy selecting the namespace, the cluster default applies: `allow-all`
(adoption: nothing changes until the platform team writes policies) or `deny`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.path_policy import LabelSelector, VaultPathPolicySpec

DEFAULT_ALLOW_ALL = "allow-all"
DEFAULT_DENY = "deny"
DEFAULTS = (DEFAULT_ALLOW_ALL, DEFAULT_DENY)

NAMESPACE_PLACEHOLDER = "{namespace}"

PATH_NOT_ALLOWED: Literal["PathNotAllowed"] = "PathNotAllowed"
SYNC_FORBIDDEN: Literal["SyncForbidden"] = "SyncForbidden"


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for i, char in enumerate(pattern):
        if char == "*":
            parts.append(".*" if i == len(pattern) - 1 else "[^/]*")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def pattern_matches(pattern: str, path: str, namespace: str = "") -> bool:
    """Whether a policy pattern covers `path` for a resource in `namespace`."""
    if NAMESPACE_PLACEHOLDER in pattern:
        if not namespace:
            return False
        pattern = pattern.replace(NAMESPACE_PLACEHOLDER, namespace)
    return _compile(pattern).fullmatch(path) is not None


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector matches everything."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and (not present or labels[req.key] not in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class PathPolicy:
    """One VaultPathPolicy, parsed."""

    name: str
    spec: VaultPathPolicySpec

    @property
    def allow(self) -> list[str]:
        return self.spec.allow

    @property
    def never_sync(self) -> list[str]:
        return self.spec.never_sync

    @property
    def uses_selector(self) -> bool:
        return self.spec.namespace_selector is not None

    def selects(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        """Whether the policy covers `namespace` (whose labels may be unknown: None)."""
        if self.spec.namespaces:
            return namespace in self.spec.namespaces
        if self.spec.namespace_selector is None or labels is None:
            return False
        return selector_matches(self.spec.namespace_selector, labels)


def policy_from_object(obj: Mapping[str, Any]) -> PathPolicy | str:
    """A policy from an API object, or the reason it is invalid (an invalid policy is ignored,
    and reported in its status, rather than taking the whole guard down)."""
    name = str((obj.get("metadata") or {}).get("name") or "")
    try:
        spec = VaultPathPolicySpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        return describe_validation_error(exc)
    return PathPolicy(name, spec)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one resource: allowed, or the condition reason and a message naming the
    path and the policy."""

    allowed: bool
    reason: Literal["PathNotAllowed", "SyncForbidden", ""] = ""
    message: str = ""
    policies: tuple[str, ...] = field(default=())


ALLOWED = Verdict(True)


def evaluate(
    policies: Iterable[PathPolicy],
    namespace: str,
    labels: Mapping[str, str] | None,
    paths: Sequence[str],
    default: str = DEFAULT_ALLOW_ALL,
) -> Verdict:
    """Check a resource's effective `paths` in `namespace` against every policy."""
    every = sorted(policies, key=lambda p: p.name)
    for path in paths:
        for policy in every:
            for pattern in policy.never_sync:
                if pattern_matches(pattern, path, namespace):
                    return Verdict(
                        False,
                        SYNC_FORBIDDEN,
                        f"Vault path {path!r} must never be synced: it matches neverSync "
                        f"pattern {pattern!r} of VaultPathPolicy {policy.name}",
                        (policy.name,),
                    )
    selecting = [p for p in every if p.selects(namespace, labels)]
    if not selecting:
        if default == DEFAULT_DENY:
            return Verdict(
                False,
                PATH_NOT_ALLOWED,
                f"no VaultPathPolicy selects namespace {namespace!r} and the cluster default "
                f"is deny: Vault path {paths[0] if paths else '?'!r} is not allowed",
            )
        return ALLOWED
    names = tuple(p.name for p in selecting)
    for path in paths:
        if not any(pattern_matches(a, path, namespace) for p in selecting for a in p.allow):
            return Verdict(
                False,
                PATH_NOT_ALLOWED,
                f"Vault path {path!r} is not allowed in namespace {namespace!r}: it matches no "
                f"allow pattern of VaultPathPolicy {', '.join(names)}",
                names,
            )
    return Verdict(True, policies=names)
