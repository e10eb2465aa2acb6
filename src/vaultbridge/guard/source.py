"""The live policies and namespace labels, read from informer caches (no API call per check).

The controllers and the webhook ask the same object, so admission and reconcile can never
disagree about what the policies say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from vaultbridge.api.kinds import VAULT_PATH_POLICIES
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.resources import NAMESPACES

from .matching import DEFAULT_ALLOW_ALL, PathPolicy, Verdict, evaluate, policy_from_object

log = logging.getLogger(__name__)


class PolicySource(Protocol):
    def policies(self) -> Sequence[PathPolicy]: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...

    @property
    def synced(self) -> bool: ...


class InformerPolicySource:
    """Policies and namespaces from two informers; the parsed policies are cached per
    resourceVersion so a check costs a few regex matches, not a pydantic parse."""

    def __init__(self, policies: Informer, namespaces: Informer | None) -> None:
        self._policies = policies
        self._namespaces = namespaces
        self._parsed: dict[str, tuple[str, PathPolicy | str]] = {}

    @classmethod
    def create(cls, kube: KubeClient) -> InformerPolicySource:
        return cls(Informer(kube, VAULT_PATH_POLICIES), Informer(kube, NAMESPACES))

    @property
    def informers(self) -> list[Informer]:
        return [i for i in (self._policies, self._namespaces) if i is not None]

    @property
    def synced(self) -> bool:
        return all(i.has_synced for i in self.informers)

    def policies(self) -> list[PathPolicy]:
        out: list[PathPolicy] = []
        seen: set[str] = set()
        for obj in self._policies.store.list():
            name = objects.name(obj)
            seen.add(name)
            rv = objects.resource_version(obj)
            cached = self._parsed.get(name)
            if cached is None or cached[0] != rv:
                cached = (rv, policy_from_object(obj))
                self._parsed[name] = cached
                if isinstance(cached[1], str):
                    log.warning("VaultPathPolicy %s is invalid and ignored: %s", name, cached[1])
            if isinstance(cached[1], PathPolicy):
                out.append(cached[1])
        for gone in set(self._parsed) - seen:
            del self._parsed[gone]
        return out

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        if self._namespaces is None:
            return None
        obj = self._namespaces.store.get(ObjectKey("", namespace))
        return None if obj is None else objects.labels(obj)


def check(
    source: PolicySource | None, namespace: str, paths: Sequence[str], default: str
) -> Verdict:
    """The verdict for one resource; with no source (guard not wired) only the default."""
    if source is None:
        return evaluate([], namespace, None, paths, default or DEFAULT_ALLOW_ALL)
    return evaluate(
        source.policies(), namespace, source.namespace_labels(namespace), paths, default
    )
