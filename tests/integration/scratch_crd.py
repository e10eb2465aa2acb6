"""Throw-away custom resources for tests of the generic Kubernetes layer.

A CRD created by the test starts with an empty watch cache, so old resourceVersions really
are gone (410) — which built-in types on a fresh cluster do not guarantee.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import NotFound
from vaultbridge.kube.resources import CRDS, Resource

GROUP = "it.vaultbridge.dev"


def _crd(plural: str, kind: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@asynccontextmanager
async def scratch_crd(kube: KubeClient, resource: Resource) -> AsyncIterator[Resource]:
    """Install a schemaless namespaced CRD for `resource` (group GROUP, version v1), wait until
    it is served, delete it afterwards."""
    plural = resource.plural
    await kube.apply(CRDS, _crd(plural, resource.kind))
    deadline = time.monotonic() + 30
    while True:
        try:
            await kube.list(resource)
            break
        except NotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        yield resource
    finally:
        await kube.delete(CRDS, f"{plural}.{GROUP}")
