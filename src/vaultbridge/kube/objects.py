"""Small typed accessors for Kubernetes objects kept as plain dicts.

Objects from the API stay plain ``dict`` (no model layer on the hot path); these helpers
give the few fields we read a name and a type.
"""

import re
from typing import Any

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MAX_LABEL_VALUE = 63


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` of ``obj`` (an empty dict if absent)."""
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def name(obj: dict[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def namespace(obj: dict[str, Any]) -> str:
    """Namespace of ``obj``; ``""`` for cluster-scoped objects."""
    return str(meta(obj).get("namespace") or "")


def uid(obj: dict[str, Any]) -> str:
    return str(meta(obj).get("uid") or "")


def resource_version(obj: dict[str, Any]) -> str:
    return str(meta(obj).get("resourceVersion") or "")


def generation(obj: dict[str, Any]) -> int:
    g = meta(obj).get("generation")
    return g if isinstance(g, int) else 0


def labels(obj: dict[str, Any]) -> dict[str, str]:
    v = meta(obj).get("labels")
    return v if isinstance(v, dict) else {}


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    v = meta(obj).get("annotations")
    return v if isinstance(v, dict) else {}


def owner_references(obj: dict[str, Any]) -> list[dict[str, Any]]:
    v = meta(obj).get("ownerReferences")
    return [r for r in v if isinstance(r, dict)] if isinstance(v, list) else []


def is_deleting(obj: dict[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def owner_reference(
    owner: dict[str, Any], *, controller: bool = True, block_owner_deletion: bool = True
) -> dict[str, Any]:
    """An ownerReference pointing at ``owner`` (which needs apiVersion, kind, name, uid)."""
    ref: dict[str, Any] = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name(owner),
        "uid": uid(owner),
    }
    if controller:
        ref["controller"] = True
    if block_owner_deletion:
        ref["blockOwnerDeletion"] = True
    return ref


def controller_owner(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in owner_references(obj):
        if ref.get("controller") is True:
            return ref
    return None


def is_label_value(value: str) -> bool:
    return len(value) <= _MAX_LABEL_VALUE and bool(_LABEL_VALUE.match(value))


def api_group(api_version: str) -> str:
    """Group part of an ``apiVersion`` (``""`` for the core group)."""
    return api_version.rpartition("/")[0]
