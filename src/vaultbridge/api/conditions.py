"""Status conditions in the standard `metav1.Condition` shape.

`kubectl wait --for=condition=SecretSynced`, Argo CD health checks and our printer columns all
read this shape, so we keep it exactly. `set_condition` keeps `lastTransitionTime` when the
status did not change: rewriting it on every reconcile would make each status patch a real
write and break the zero-writes-when-idle rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from vaultbridge.api.common import ApiModel

SECRET_SYNCED = "SecretSynced"  # noqa: S105 (a condition type)
"""The destination Secret holds the data last read from Vault."""
HEALTHY = "Healthy"
"""The last reconcile reached Vault and Kubernetes without error."""
READY = "Ready"
"""Summary condition: the object is doing its job (synced and healthy)."""

ConditionStatus = Literal["True", "False", "Unknown"]

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def utc_now() -> datetime:
    """Now, truncated to whole seconds as Kubernetes stores timestamps.

    Comparing a freshly built status with the stored one must not differ by microseconds.
    """
    return datetime.now(UTC).replace(microsecond=0)


class Condition(ApiModel):
    """One aspect of the object's current state."""

    type: Annotated[
        str, StringConstraints(min_length=1, max_length=316, pattern=CONDITION_TYPE_PATTERN)
    ]
    """Which aspect this condition describes, such as SecretSynced, Healthy or Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
    """A CamelCase word that programs can match on, explaining the status."""
    message: Annotated[str, StringConstraints(max_length=32768)] = ""
    """A human-readable explanation. Never contains secret values."""
    last_transition_time: datetime
    """When the status of this condition last changed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation of the object that this condition was computed from."""


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of the given type, if present."""
    for cond in conditions:
        if cond.type == type_:
            return cond
    return None


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """Return a new list with the condition of `type_` set; other conditions keep their order.

    lastTransitionTime moves only when the status changes, so re-asserting the same condition
    yields an identical list and no status write.
    """
    previous = find_condition(conditions, type_)
    if previous is not None and previous.status == status:
        transition = previous.last_transition_time
    else:
        transition = now if now is not None else utc_now()
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    out = [new if c.type == type_ else c for c in conditions]
    if previous is None:
        out.append(new)
    return out


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
"""The `conditions` list of a status: at most one entry per type (merged by type in patches)."""
