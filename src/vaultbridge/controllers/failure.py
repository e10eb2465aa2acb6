"""Where a failed reconcile is recorded, for every secret kind: conditions, event, metric, retry.

Retries are decided here, by one rule: none when only an edit can fix the problem (the
watches bring the next reconcile), Vault's Retry-After or the problem's own delay when it has
one, else the kind's backoff. Vault throttling (429, `VaultThrottled`) is not a failure of the
object: Vault asks the whole operator to slow down (the global rate already dropped), so the
object is only requeued after Vault's Retry-After (else ~1 s, jittered): no condition, no
event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from vaultbridge.api.kinds import KindInfo
from vaultbridge.engine.backoff import jittered
from vaultbridge.engine.controller import Result
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.observability import metrics
from vaultbridge.vault.errors import VaultThrottled

from .context import OperatorContext
from .errors import ReconcileProblem
from .reasons import Reason, event_reason, is_vault_side
from .status import patch_status_if_changed, set_condition

log = logging.getLogger("vaultbridge.controllers.delivery")  # where operators look for it


async def record_failure(  # noqa: PLR0917 - the failing reconcile's whole context
    ctx: OperatorContext,
    info: KindInfo[Any, Any],
    key: ObjectKey,
    obj: dict[str, Any],
    status: dict[str, Any],
    problem: ReconcileProblem,
    retry_delay: Callable[[], float],
) -> Result:
    """Record the failure where the user looks and pick the retry (module docstring)."""
    if problem.reason == Reason.VAULT_THROTTLED:
        cause = problem.__cause__
        after = cause.retry_after if isinstance(cause, VaultThrottled) else None
        log.info("Vault throttled %s %s; requeued", info.kind, key)
        return Result(requeue_after=after if after is not None else jittered(1.0, 0.75, 1.25))
    generation = objects.generation(obj)
    set_condition(status, "SecretSynced", False, problem.reason, problem.message, generation)
    if is_vault_side(problem.reason):
        set_condition(status, "Healthy", False, problem.reason, problem.message, generation)
    set_condition(status, "Ready", False, problem.reason, problem.message, generation)
    metrics.RESOURCE_READY.labels(info.kind, key.namespace, key.name).set(0)
    changed = await patch_status_if_changed(ctx.kube, info.resource, obj, status)
    if changed or (problem.retry and problem.repeat_event):
        ctx.events.emit(obj, "Warning", event_reason(problem.reason), problem.message)
    if not problem.retry:
        log.warning("sync failed: %s: %s", problem.reason, problem.message)
        return Result()
    delay = problem.retry_after if problem.retry_after is not None else retry_delay()
    # The retry delay as decided, in the log record: the schedule can be checked from the
    # log (tests do) instead of being inferred from when the retries happened to run.
    log.warning("sync failed: %s: %s", problem.reason, problem.message, extra={"retry_in": delay})
    return Result(requeue_after=delay)
