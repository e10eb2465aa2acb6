"""Rollout restarts of the workloads that consume a Secret, the way `kubectl rollout restart`
does it: a new annotation on the pod template makes the workload controller roll the pods."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from vaultbridge.api.destination import RolloutRestartTarget
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, NotFound
from vaultbridge.kube.resources import DAEMONSETS, DEPLOYMENTS, STATEFULSETS, Resource
from vaultbridge.observability import metrics

from .context import OperatorContext
from .status import now_rfc3339

log = logging.getLogger(__name__)

RESTARTED_AT = "vaultbridge.dev/restartedAt"
_RESOURCES: dict[str, Resource] = {
    "Deployment": DEPLOYMENTS,
    "StatefulSet": STATEFULSETS,
    "DaemonSet": DAEMONSETS,
}


async def restart_targets(
    ctx: OperatorContext, owner: Mapping[str, Any], targets: Sequence[RolloutRestartTarget]
) -> list[str]:
    """Restart each target; return one message per target that could not be restarted.

    A missing or paused target never fails the sync: the Secret is already correct, and the
    event tells the user which workload still runs with the old values.
    """
    failures: list[str] = []
    ns = objects.namespace(dict(owner))
    stamp = now_rfc3339()
    for target in targets:
        resource = _RESOURCES[target.kind]
        what = f"{target.kind} {ns}/{target.name}"
        try:
            live = await ctx.kube.get(resource, target.name, ns)
            if target.kind == "Deployment" and (live.get("spec") or {}).get("paused"):
                raise _Skip(f"{what} is paused; resume it to pick up the new Secret data")
            await ctx.kube.patch(
                resource,
                target.name,
                {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}},
                ns,
            )
        except NotFound:
            message = f"{what} does not exist; nothing was restarted"
            metrics.ROLLOUT_RESTARTS.labels(target.kind, "skipped").inc()
        except _Skip as skip:
            message = str(skip)
            metrics.ROLLOUT_RESTARTS.labels(target.kind, "skipped").inc()
        except ApiError as exc:
            message = f"restarting {what} failed: {exc}"
            metrics.ROLLOUT_RESTARTS.labels(target.kind, "error").inc()
        else:
            metrics.ROLLOUT_RESTARTS.labels(target.kind, "success").inc()
            ctx.events.emit(
                dict(owner),
                "Normal",
                "RolloutRestartTriggered",
                f"restarted {what} because the Secret data changed",
            )
            continue
        failures.append(message)
        ctx.events.emit(dict(owner), "Warning", "RolloutRestartFailed", message)
    return failures


class _Skip(Exception):
    pass
