"""The identity of a work item: the namespace and name of one object."""

from __future__ import annotations

from typing import Any, NamedTuple

from vaultbridge.kube import objects


class ObjectKey(NamedTuple):
    """``namespace`` is ``""`` for cluster-scoped objects."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectKey:
        """Key of a Kubernetes object (dict)."""
        return cls(objects.namespace(obj), objects.name(obj))

    @classmethod
    def parse(cls, text: str) -> ObjectKey:
        """Inverse of ``str()``: ``"ns/name"`` or ``"name"``."""
        ns, _, name = text.rpartition("/")
        return cls(ns, name)
