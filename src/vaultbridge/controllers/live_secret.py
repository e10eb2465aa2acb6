"""The destination Secret as the API server has it now, bypassing the informer cache.

The owned-Secret cache lags behind our own writes: the reconcile that a write triggers can
still see the old Secret, or none. For the leased kinds a missing or different Secret means
"issue new credentials", which is expensive and visible (rollout restarts), so before
concluding that, they confirm with a direct read.
"""

from __future__ import annotations

from typing import Any

from vaultbridge.kube.errors import ApiError, NotFound
from vaultbridge.kube.resources import SECRETS

from .context import OperatorContext
from .errors import ReconcileProblem
from .reasons import Reason


async def read_fresh(ctx: OperatorContext, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await ctx.kube.get(SECRETS, name, namespace)
    except NotFound:
        return None
    except ApiError as exc:
        raise ReconcileProblem(
            Reason.KUBERNETES_ERROR, f"reading Secret {namespace}/{name} failed: {exc}"
        ) from exc
