"""Rollout restarts of the workloads that consume a Secret, the way `kubectl rollout restart`
does it: a new annotation on the pod template makes the workload controller roll the pods.

An Argo Rollout (`kind: argo.Rollout`, as VSO spells it) is restarted the way its own
`kubectl argo rollouts restart` does: `spec.restartAt` set to now, after which the Argo
controller replaces the pods older than that time, honouring the Rollout's strategy. Its CRD
is optional: when the API server does not know `rollouts.argoproj.io`, the restart is
reported (event, failure message), never raised."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from vaultbridge.api.destination import RolloutRestartTarget
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, Forbidden, NotFound
from vaultbridge.kube.resources import DAEMONSETS, DEPLOYMENTS, STATEFULSETS, Resource
from vaultbridge.observability import metrics

from .context import OperatorContext
from .status import now_rfc3339

log = logging.getLogger(__name__)

RESTARTED_AT = "vaultbridge.dev/restartedAt"
ARGO_ROLLOUT_KIND = "argo.Rollout"
ARGO_ROLLOUTS = Resource("argoproj.io", "v1alpha1", "rollouts", "Rollout")
_RESOURCES: dict[str, Resource] = {
    "Deployment": DEPLOYMENTS,
    "StatefulSet": STATEFULSETS,
    "DaemonSet": DAEMONSETS,
    ARGO_ROLLOUT_KIND: ARGO_ROLLOUTS,
}


def restart_patch(kind: str, stamp: str) -> dict[str, Any]:
    """The patch that restarts a workload of `kind` (an RFC 3339 `stamp`: now)."""
    if kind == ARGO_ROLLOUT_KIND:
        return {"spec": {"restartAt": stamp}}
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


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
            await ctx.kube.patch(resource, target.name, restart_patch(target.kind, stamp), ns)
        except NotFound as exc:
            if target.kind == ARGO_ROLLOUT_KIND and not exc.details.get("name"):
                # A 404 naming no object: the resource type itself is unknown.
                message = (
                    f"{what} cannot be restarted: the API server has no Argo Rollouts CRD "
                    f"({ARGO_ROLLOUTS.plural}.{ARGO_ROLLOUTS.group}); install Argo Rollouts or "
                    "remove the target"
                )
                metrics.ROLLOUT_RESTARTS.labels(target.kind, "error").inc()
            else:
                message = f"{what} does not exist; nothing was restarted"
                metrics.ROLLOUT_RESTARTS.labels(target.kind, "skipped").inc()
        except Forbidden as exc:
            hint = (
                " (with the Helm chart, set rbac.argoRollouts: true)"
                if target.kind == ARGO_ROLLOUT_KIND
                else ""
            )
            message = f"restarting {what} is forbidden to the operator{hint}: {exc}"
            metrics.ROLLOUT_RESTARTS.labels(target.kind, "error").inc()
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
