"""Adding and removing one finalizer on a custom resource, safely against concurrent writers.

The patch carries the resourceVersion the decision was based on, so a concurrent change of the
finalizer list (another controller's finalizer, a user edit) makes the API server answer 409
instead of silently dropping someone else's entry; the reconcile then retries on fresh data.
"""

from __future__ import annotations

from typing import Any

from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, Conflict, NotFound
from vaultbridge.kube.resources import Resource

from .context import OperatorContext
from .errors import ReconcileProblem
from .reasons import Reason


def finalizers(obj: dict[str, Any]) -> list[str]:
    raw = objects.meta(obj).get("finalizers")
    return [str(f) for f in raw] if isinstance(raw, list) else []


def has_finalizer(obj: dict[str, Any], name: str) -> bool:
    return name in finalizers(obj)


async def _update(
    ctx: OperatorContext, resource: Resource, obj: dict[str, Any], add: str | None, drop: str | None
) -> None:
    name, ns = objects.name(obj), objects.namespace(obj)
    for attempt in range(2):
        current = finalizers(obj)
        values = [f for f in current if f != drop]
        if add is not None and add not in values:
            values.append(add)
        if values == current:
            return
        patch = {
            "metadata": {
                "finalizers": values or None,
                "resourceVersion": objects.resource_version(obj),
            }
        }
        try:
            await ctx.kube.patch(resource, name, patch, ns)
            return
        except NotFound:
            return
        except Conflict:
            # The cached object was stale (often our own status write): decide again on the
            # live one, once.
            if attempt == 0:
                try:
                    obj = await ctx.kube.get(resource, name, ns)
                except NotFound:
                    return
                except ApiError as exc:
                    raise ReconcileProblem(
                        Reason.FINALIZER_UPDATE_FAILED, f"updating the finalizers failed: {exc}"
                    ) from exc
                continue
            raise ReconcileProblem(
                Reason.FINALIZER_UPDATE_FAILED, "updating the finalizers failed: conflict"
            ) from None
        except ApiError as exc:
            raise ReconcileProblem(
                Reason.FINALIZER_UPDATE_FAILED, f"updating the finalizers failed: {exc}"
            ) from exc


async def ensure_finalizer(
    ctx: OperatorContext, resource: Resource, obj: dict[str, Any], name: str
) -> bool:
    """Add `name` unless present; True when a patch was sent."""
    if name in finalizers(obj):
        return False
    await _update(ctx, resource, obj, name, None)
    return True


async def remove_finalizer(
    ctx: OperatorContext, resource: Resource, obj: dict[str, Any], name: str
) -> bool:
    """Remove `name` if present; True when a patch was sent."""
    if name not in finalizers(obj):
        return False
    await _update(ctx, resource, obj, None, name)
    return True
