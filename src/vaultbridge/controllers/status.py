"""Status conditions and status writes that happen only when something changed.

The one condition rule (`set_condition`): a condition is replaced by type, at most one per
type, sorted by type; `lastTransitionTime` moves only when the status value (True, False,
Unknown) changes, so re-asserting a condition, even with a new message, leaves the time alone.

One model of status: its schema is the kind's status model in `api/` (what the CRD generator
turns into the OpenAPI schema, where `api/conditions.py` declares the `metav1.Condition`
shape); at run time the controllers compute the desired status as the plain dict the API
server returns, from scratch on every reconcile, and `patch_status_if_changed` writes it only
when it differs from the live one, so a steady state costs no writes at all. Not through the
typed models, because that comparison is the zero-writes rule: a typed round trip drops
the fields the model does not know (a newer operator's, during a rollback), so the desired
status would differ from the live one on every reconcile and the merge patch would erase
them. The unit
tests check that what the reconcilers write validates against the status models
(tests/unit/test_status.py), so the schema and the dicts cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from vaultbridge.kube import objects
from vaultbridge.kube.api import KubeApi
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import Resource

_MAX_MESSAGE = 1024


_now_cache: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time to the second (several times per reconcile: formatted once a second)."""
    global _now_cache  # noqa: PLW0603 - a one-entry cache
    second = int(time.time())
    if _now_cache[0] != second:
        stamp = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _now_cache = (second, stamp)
    return _now_cache[1]


def set_condition(  # noqa: PLR0917 - mirrors metav1.Condition's fields in order
    status: dict[str, Any],
    type_: str,
    ok: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    *,
    now: str | None = None,
) -> None:
    """Set one condition, keeping lastTransitionTime unless the status value flips.

    `now`: the RFC 3339 time to record on a transition (default: the current second)."""
    value = "Unknown" if ok is None else ("True" if ok else "False")
    conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    old = next((c for c in conditions if c.get("type") == type_), None)
    transition = (
        old["lastTransitionTime"]
        if old is not None and old.get("status") == value and old.get("lastTransitionTime")
        else (now or now_rfc3339())
    )
    new = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:_MAX_MESSAGE],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        new["observedGeneration"] = generation
    conditions = [c for c in conditions if c.get("type") != type_] + [new]
    conditions.sort(key=lambda c: str(c.get("type")))
    status["conditions"] = conditions


def get_condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


async def patch_status_if_changed(
    kube: KubeApi, resource: Resource, obj: dict[str, Any], status: dict[str, Any]
) -> bool:
    old = obj.get("status") or {}
    if old == status:
        return False
    # The answer (the whole object) is not decoded: the informer brings the new status back
    # as a watch event, which is what the next reconcile reads.
    await kube.patch_status(
        resource,
        objects.name(obj),
        {"status": _merge_patch(old, status)},
        namespace=objects.namespace(obj) or None,
        decode=False,
    )
    return True


def condition_reason(status: dict[str, Any], type_: str) -> str | None:
    """The reason of the condition `type_` in a status dict, if it is set."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("reason"))
    return None


def set_ready(
    status: dict[str, Any], restart_failures: list[str] | None, message: str, generation: int
) -> None:
    """`Ready` after a successful sync, which only failed rollout restarts can spoil.

    `restart_failures`: one message per target this sync could not restart (`[]`: all fine);
    `None` when this sync restarted nothing, so a failure reported by an earlier sync stays
    visible until the next delivery of new data.
    """
    if restart_failures:
        set_condition(
            status, "Ready", False, "RolloutRestartFailed", "; ".join(restart_failures), generation
        )
    elif restart_failures is None and condition_reason(status, "Ready") == "RolloutRestartFailed":
        return
    else:
        set_condition(status, "Ready", True, "Ready", message, generation)


async def report_validity(
    kube: KubeApi,
    events: EventRecorder,
    resource: Resource,
    obj: dict[str, Any],
    status: dict[str, Any],
    *,
    ok: bool,
    reason: str,
    message: str,
    healthy: bool = True,
) -> None:
    """The verdict of a configuration object (VaultConnection, VaultAuth, VaultAuthGlobal,
    SecretTransformation): `status.valid`, `Ready` (and `Healthy` unless `healthy` is False),
    written only when the status changed; an event only when `valid` flips, so a state that
    persists is reported once, not on every recheck."""
    generation = objects.generation(obj)
    status["valid"] = ok
    set_condition(status, "Ready", ok, reason, message, generation)
    if healthy:
        set_condition(status, "Healthy", ok, reason, message, generation)
    was_ok = (obj.get("status") or {}).get("valid")
    await patch_status_if_changed(kube, resource, obj, status)
    if was_ok != ok:
        events.emit(obj, "Normal" if ok else "Warning", reason, message)
