"""VaultAuthGlobal: shared login defaults, and how a VaultAuth that references one is resolved.

Pure functions over specs in wire form (camelCase dicts, the field names VSO and vaultbridge
share), so the merge happens before the VaultAuth is parsed and the result is validated by
`VaultAuthSpec` like any hand-written spec.

The kind itself (`VaultAuthGlobalSpec`) is defined here too. Users: the operator
(controllers/vault_access.py resolves every VaultAuth through `effective_auth_spec`, so the
VaultAuth reconcile and every secret resource see the merged spec; a change of a global
requeues the VaultAuths, and the secret objects, that reference it), and `vaultbridge migrate`
(only as a fallback, for a VSO VaultAuth whose global cannot be converted).

Precedence (VSO's documented rules):
- The VaultAuth's own fields win; a field left empty there is taken from the global's block of
  the same method (`kubernetes`, `jwt`, `appRole`, ...), then from the global's `default*` fields:
  method (`defaultAuthMethod`), mount (`defaultMount`), Vault namespace
  (`defaultVaultNamespace`), `vaultConnectionRef`.
- Inside a method block, each field is filled from the global's block only when empty locally.
- `headers` and `params` follow `vaultAuthGlobalRef.mergeStrategy` (default `none`):
  `none` = the VaultAuth's own only; `union` = global defaults, then the global method block,
  then the VaultAuth's own, later ones winning per key; `replace` = the first non-empty of
  the VaultAuth's own, the global method block's, the global defaults.
- Reference: `name`, else, with `allowDefault: true`, the global named `default`. `namespace`
  defaults to the VaultAuth's own; for the `default` lookup without a namespace, the VaultAuth's
  namespace is searched first, then the operator's.
- `allowedNamespaces` of the global: unset/empty = only VaultAuths in the global's own
  namespace; `["*"]` = every namespace; otherwise the listed namespaces (and its own).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from vaultbridge.api.auth import (
    AppRoleAuthFields,
    AuthMethod,
    JWTAuthFields,
    KubernetesAuthFields,
    namespace_allowed,
)
from vaultbridge.api.common import (
    AllowedNamespaces,
    ApiModel,
    ObjectRef,
    StringMap,
    VaultNamespace,
    VaultPath,
)
from vaultbridge.api.conditions import Conditions

DEFAULT_GLOBAL_NAME = "default"
METHOD_BLOCKS = ("kubernetes", "jwt", "appRole", "aws", "gcp")
_PER_METHOD_EXTRAS = ("namespace", "mount", "params", "headers")
MERGE_STRATEGIES = ("none", "union", "replace")


class GlobalRefError(ValueError):
    """The reference cannot be resolved or is not allowed; the message says why."""


class GlobalNotFound(GlobalRefError):
    """No VaultAuthGlobal by the referenced name (creating it fixes the VaultAuth)."""


class GlobalNotAllowed(GlobalRefError):
    """The VaultAuthGlobal exists but its allowedNamespaces leave out the VaultAuth's."""


@dataclass(frozen=True)
class GlobalKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def candidate_keys(
    ref: Mapping[str, Any], *, auth_namespace: str, operator_namespace: str
) -> list[GlobalKey]:
    """The globals to look for, in order; the first that exists is used."""
    name = str(ref.get("name") or "")
    namespace = str(ref.get("namespace") or "")
    if name:
        return [GlobalKey(namespace or auth_namespace, name)]
    if not ref.get("allowDefault"):
        raise GlobalRefError("vaultAuthGlobalRef has no name and allowDefault is not true")
    if namespace:
        return [GlobalKey(namespace, DEFAULT_GLOBAL_NAME)]
    keys = [GlobalKey(auth_namespace, DEFAULT_GLOBAL_NAME)]
    if operator_namespace != auth_namespace:
        keys.append(GlobalKey(operator_namespace, DEFAULT_GLOBAL_NAME))
    return keys


def resolve_global_ref(
    ref: Mapping[str, Any],
    *,
    auth_namespace: str,
    operator_namespace: str,
    lookup: Callable[[GlobalKey], Mapping[str, Any] | None],
) -> tuple[GlobalKey, Mapping[str, Any]]:
    """Find the global spec a `vaultAuthGlobalRef` designates and check it may be used.

    `lookup` returns the spec of a global, or None when it does not exist.
    """
    keys = candidate_keys(ref, auth_namespace=auth_namespace, operator_namespace=operator_namespace)
    for key in keys:
        spec = lookup(key)
        if spec is None:
            continue
        if not global_allows(spec, auth_namespace=auth_namespace, global_namespace=key.namespace):
            raise GlobalNotAllowed(
                f"VaultAuthGlobal {key} does not allow namespace {auth_namespace} "
                "(see its allowedNamespaces)"
            )
        return key, spec
    raise GlobalNotFound("VaultAuthGlobal " + " or ".join(str(k) for k in keys) + " not found")


def global_allows(spec: Mapping[str, Any], *, auth_namespace: str, global_namespace: str) -> bool:
    allowed = [str(n) for n in spec.get("allowedNamespaces") or []]
    if "*" in allowed:
        allowed = ["*"]
    return namespace_allowed(allowed, auth_namespace, own_namespace=global_namespace)


def _merge_maps(
    strategy: str, local: Mapping[str, str], method: Mapping[str, str], default: Mapping[str, str]
) -> dict[str, str]:
    if strategy == "union":
        return {**default, **method, **local}
    if strategy == "replace":
        for candidate in (local, method, default):
            if candidate:
                return dict(candidate)
        return {}
    return dict(local)


def merge_auth(auth_spec: Mapping[str, Any], global_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The VaultAuth spec with the global's defaults applied; `vaultAuthGlobalRef` removed."""
    out = copy.deepcopy(dict(auth_spec))
    ref = out.pop("vaultAuthGlobalRef", None) or {}
    strategy = ref.get("mergeStrategy") or {}
    headers_strategy = str(strategy.get("headers") or "none")
    params_strategy = str(strategy.get("params") or "none")
    for what, chosen in (("headers", headers_strategy), ("params", params_strategy)):
        if chosen not in MERGE_STRATEGIES:
            raise GlobalRefError(f"mergeStrategy.{what} must be union, replace or none")

    method = str(out.get("method") or global_spec.get("defaultAuthMethod") or "")
    if not method:
        raise GlobalRefError("no method: set spec.method or the global's defaultAuthMethod")
    out["method"] = method
    global_block: dict[str, Any] = dict(global_spec.get(method) or {})
    if global_block:
        local_block = dict(out.get(method) or {})
        for key, value in global_block.items():
            if key in _PER_METHOD_EXTRAS:
                continue
            if _empty(local_block.get(key)):
                local_block[key] = copy.deepcopy(value)
        out[method] = local_block

    fallbacks: tuple[tuple[str, str | None, str], ...] = (
        ("mount", "mount", "defaultMount"),
        ("namespace", "namespace", "defaultVaultNamespace"),
        ("vaultConnectionRef", None, "vaultConnectionRef"),
    )
    for name, method_key, default_key in fallbacks:
        if _empty(out.get(name)):
            value = (global_block.get(method_key) if method_key else None) or global_spec.get(
                default_key
            )
            if not _empty(value):
                out[name] = value

    for field, strat in (("headers", headers_strategy), ("params", params_strategy)):
        merged = _merge_maps(
            strat,
            dict(out.get(field) or {}),
            dict(global_block.get(field) or {}),
            dict(global_spec.get(field) or {}),
        )
        if merged:
            out[field] = merged
        else:
            out.pop(field, None)
    return out


def _empty(value: object) -> bool:
    return value is None or value in ("", [], {}, 0)


def effective_auth_spec(
    auth_spec: Mapping[str, Any],
    *,
    auth_namespace: str,
    operator_namespace: str,
    lookup: Callable[[GlobalKey], Mapping[str, Any] | None],
) -> tuple[dict[str, Any], GlobalKey | None]:
    """A VaultAuth's spec as the operator uses it, and the global it came from (None: none).

    Without `vaultAuthGlobalRef` the spec as written; with it, merged with the global's
    defaults (`GlobalRefError` when the global is missing, not allowed, or the merge has no
    method). The result is meant for `VaultAuthSpec`, which decides whether it is complete.
    """
    ref = auth_spec.get("vaultAuthGlobalRef")
    if not ref:
        return dict(auth_spec), None
    if not isinstance(ref, Mapping):
        raise GlobalRefError("vaultAuthGlobalRef must be a mapping")
    key, global_spec = resolve_global_ref(
        ref, auth_namespace=auth_namespace, operator_namespace=operator_namespace, lookup=lookup
    )
    return merge_auth(auth_spec, global_spec), key


# -- the VaultAuthGlobal kind -------------------------------------------------------------------


class _GlobalMethodExtras(ApiModel):
    """What a VaultAuthGlobal's method block may set besides the method's own settings."""

    namespace: VaultNamespace | None = None
    """Vault namespace for this method (before defaultVaultNamespace)."""
    mount: VaultPath | None = None
    """Auth mount for this method (before defaultMount)."""
    params: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Login parameters for this method (see the VaultAuth's mergeStrategy)."""
    headers: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Request headers for this method (see the VaultAuth's mergeStrategy)."""


class GlobalKubernetesAuth(KubernetesAuthFields, _GlobalMethodExtras):
    """Defaults for VaultAuths using the kubernetes method."""


class GlobalJWTAuth(JWTAuthFields, _GlobalMethodExtras):
    """Defaults for VaultAuths using the jwt method."""


class GlobalAppRoleAuth(AppRoleAuthFields, _GlobalMethodExtras):
    """Defaults for VaultAuths using the appRole method."""


class VaultAuthGlobalSpec(ApiModel):
    """Login defaults shared by the VaultAuths that reference this object."""

    allowed_namespaces: AllowedNamespaces = Field(default_factory=list)
    """Namespaces whose VaultAuths may reference this VaultAuthGlobal. Unset or empty: only its
    own namespace. ["*"]: every namespace. Otherwise the listed namespaces (and its own)."""
    vault_connection_ref: ObjectRef = ""
    """VaultConnection for VaultAuths that name none, read as if the VaultAuth named it:
    `name` is looked up in the VaultAuth's namespace, `namespace/name` anywhere."""
    default_auth_method: AuthMethod | None = None
    """Method for VaultAuths that set none."""
    default_mount: VaultPath | None = None
    """Auth mount for VaultAuths that set none and whose method block here sets none."""
    default_vault_namespace: VaultNamespace | None = None
    """Vault namespace for VaultAuths that set none and whose method block here sets none."""
    params: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Default login parameters (see the VaultAuth's mergeStrategy)."""
    headers: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Default request headers (see the VaultAuth's mergeStrategy)."""
    kubernetes: GlobalKubernetesAuth | None = None
    """Defaults of the kubernetes method."""
    jwt: GlobalJWTAuth | None = None
    """Defaults of the jwt method."""
    app_role: GlobalAppRoleAuth | None = None
    """Defaults of the appRole method."""

    @field_validator("allowed_namespaces")
    @classmethod
    def _star_alone(cls, value: list[str]) -> list[str]:
        if "*" in value and len(value) != 1:
            raise ValueError("'*' must be the only entry")
        return value

    def allows_namespace(self, auth_namespace: str, *, own_namespace: str) -> bool:
        """Whether a VaultAuth in `auth_namespace` may reference this global."""
        return namespace_allowed(
            list(self.allowed_namespaces), auth_namespace, own_namespace=own_namespace
        )


class VaultAuthGlobalStatus(ApiModel):
    """Result of the operator's last check of this VaultAuthGlobal."""

    valid: bool | None = None
    """Whether the spec is valid."""
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Why the VaultAuthGlobal is not valid."""
    conditions: Conditions = Field(default_factory=list)
    """Current state of the VaultAuthGlobal."""
