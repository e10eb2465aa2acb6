"""The refresh interval an object gets: its own, but never below ``--min-refresh-after``.

Each refresh costs Vault reads that every namespace shares (``--vault-qps``), so the operator,
not the object, sets the floor. One function for every kind with a periodic refresh, called
while the reconcile builds its status: when the request is raised, the object says so
(condition ``RefreshAfterClamped``, a Warning event the first time, a metric); once it asks
for an allowed interval again, the condition goes away.
"""

from __future__ import annotations

from typing import Any

from vaultbridge.api.duration import format_duration
from vaultbridge.kube import objects
from vaultbridge.observability import metrics

from .context import OperatorContext
from .status import condition_reason, set_condition

CONDITION = "RefreshAfterClamped"


def effective_refresh(
    ctx: OperatorContext,
    kind: str,
    obj: dict[str, Any],
    status: dict[str, Any],
    requested: float | None,
) -> float | None:
    """``requested`` seconds (``None``/0: no periodic refresh) raised to the minimum."""
    minimum = ctx.settings.min_refresh_after
    if not requested or requested <= 0 or minimum <= 0 or requested >= minimum:
        if condition_reason(status, CONDITION) is not None:
            status["conditions"] = [
                c for c in status.get("conditions") or [] if c.get("type") != CONDITION
            ]
        return requested
    message = (
        f"refreshAfter {format_duration(requested)} is below the operator's minimum of "
        f"{format_duration(minimum)} (--min-refresh-after); refreshing every "
        f"{format_duration(minimum)}"
    )
    first = condition_reason(status, CONDITION) is None
    set_condition(status, CONDITION, True, "BelowMinimum", message, objects.generation(obj))
    if first:
        ctx.events.emit(obj, "Warning", CONDITION, message)
    metrics.REFRESH_CLAMPED.labels(kind, objects.namespace(obj)).inc()
    return minimum
