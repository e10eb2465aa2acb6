"""The labels the operator puts on the Secrets it creates, and how a Secret maps back.

The ownerReference is the authority for ownership (the garbage collector follows it); the
labels let a Secret informer select only our Secrets (`managed_by_selector()`) and map a Secret
back to its owner even when the ownerReference was removed by hand. Declared here, not in
`kube/`, because they are vaultbridge's, not Kubernetes'.
"""

from __future__ import annotations

from typing import Any

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "vaultbridge"
OWNER_KIND_LABEL = "vaultbridge.dev/owner-kind"
# Label values hold at most 63 characters; a longer owner name is left out of the labels
# (the ownerReference still carries it).
OWNER_NAME_LABEL = "vaultbridge.dev/owner-name"
LEADER_LABEL = "vaultbridge.dev/leader"
"""On the leader's own Pod while it leads (engine/pod_label.py), so the chart's audit-stream
Service reaches the replica that acts on the entries."""


def owner_labels(owner_kind: str, owner_name: str) -> dict[str, str]:
    """Labels marking an object as created by the operator for `owner_kind/owner_name`."""
    out = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, OWNER_KIND_LABEL: owner_kind}
    if objects.is_label_value(owner_name):
        out[OWNER_NAME_LABEL] = owner_name
    return out


def managed_by_selector() -> str:
    """Label selector for the objects the operator manages."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


def owner_from_labels(obj: dict[str, Any], owner_kind: str) -> list[ObjectKey]:
    """The `owner_kind` owner named by our labels (same namespace), if they name one."""
    labels = objects.labels(obj)
    if (
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
        and labels.get(OWNER_KIND_LABEL) == owner_kind
        and labels.get(OWNER_NAME_LABEL)
    ):
        return [ObjectKey(objects.namespace(obj), labels[OWNER_NAME_LABEL])]
    return []
