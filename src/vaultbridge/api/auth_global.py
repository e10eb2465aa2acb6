"""VaultAuthGlobal: shared login defaults, and how a VaultAuth that references one is resolved.

Pure functions over specs in wire form (camelCase dicts, the field names VSO and vaultbridge
share), so the merge happens before the VaultAuth is parsed and the result is validated by
`VaultAuthSpec` like any hand-written spec.

Users today: `vaultbridge migrate` inlines a VSO VaultAuthGlobal into each VaultAuth that
references it (vaultbridge has no VaultAuthGlobal kind yet). Call site for an operator-side
VaultAuthGlobal: the VaultAuth reconcile, where it parses `obj["spec"]` with `VAULT_AUTH`; when
the spec has `vaultAuthGlobalRef`, `resolve_global_ref` (lookup = the VaultAuthGlobal
informer's store) then `merge_auth`, then parse the merged spec; a `GlobalRefError` becomes
`valid: false` with its message. Consumers of the VaultAuth must see the merged spec too, and
a change of the global must requeue the VaultAuths that reference it.

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
from typing import Any

DEFAULT_GLOBAL_NAME = "default"
METHOD_BLOCKS = ("kubernetes", "jwt", "appRole", "aws", "gcp")
_PER_METHOD_EXTRAS = ("namespace", "mount", "params", "headers")
MERGE_STRATEGIES = ("none", "union", "replace")


class GlobalRefError(ValueError):
    """The reference cannot be resolved or is not allowed; the message says why."""


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
            raise GlobalRefError(
                f"VaultAuthGlobal {key} does not allow namespace {auth_namespace} "
                "(see its allowedNamespaces)"
            )
        return key, spec
    raise GlobalRefError("VaultAuthGlobal " + " or ".join(str(k) for k in keys) + " not found")


def global_allows(spec: Mapping[str, Any], *, auth_namespace: str, global_namespace: str) -> bool:
    if auth_namespace == global_namespace:
        return True
    allowed = list(spec.get("allowedNamespaces") or [])
    return "*" in allowed or auth_namespace in allowed


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
