"""Status conditions in the standard `metav1.Condition` shape: the schema, and its names.

`kubectl wait --for=condition=SecretSynced`, Argo CD health checks and our printer columns all
read this shape, so we keep it exactly. This module declares it (the CRD generator turns
`Condition` into each status schema) and names the condition types; the rule that sets a
condition (lastTransitionTime moves only when the status value changes) exists once, in
controllers/status.py, on the status the controllers write. See that module for why status is
computed as the API server's dict and not through these models.
"""

from __future__ import annotations

from datetime import datetime
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


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
"""The `conditions` list of a status: at most one entry per type (merged by type in patches)."""
