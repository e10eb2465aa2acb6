"""Kubernetes resource types, and how their REST paths are spelled.

Only built-in resources are declared here; the operator's own kinds are declared once, in
`vaultbridge.api.kinds` (each `KindInfo.resource`), so this layer knows none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource: ``group`` is ``""`` for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` field value of objects of this resource."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """REST path of the collection, or of one object (and its subresource).

        A namespaced resource without ``namespace`` names the all-namespaces collection (valid
        for list and watch only).
        """
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and not self.namespaced:
            raise ValueError(f"{self.plural} is cluster-scoped; no namespace allowed")
        if subresource is not None and name is None:
            raise ValueError("a subresource needs an object name")
        if self.namespaced and name is not None and namespace is None:
            raise ValueError(f"{self.plural} is namespaced; a namespace is required with a name")
        parts = [root]
        if namespace is not None:
            parts.append(f"namespaces/{_segment(namespace)}")
        parts.append(self.plural)
        if name is not None:
            parts.append(_segment(name))
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


#: What ``quote(value, safe="")`` leaves as it is (RFC 3986 unreserved characters): every
#: valid object and namespace name, so the usual segment needs no quoting at all (one regex
#: match instead of ``quote``'s per-character work, twice per request).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


def _segment(value: str) -> str:
    if not value or value in (".", ".."):
        raise ValueError(f"invalid path segment {value!r}")
    if _UNRESERVED.fullmatch(value):
        return value
    return quote(value, safe="")


SECRETS = Resource("", "v1", "secrets", "Secret")
PODS = Resource("", "v1", "pods", "Pod")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
TOKEN_REVIEWS = Resource(
    "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False
)
EVENTS = Resource("", "v1", "events", "Event")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    namespaced=False,
)
