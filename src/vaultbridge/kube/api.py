"""`KubeApi`: the calls the reconcilers make to the API server, as a protocol.

`KubeClient` implements it against a real API server; tests pass an in-memory fake
(tests/fake_kube.py) so that reconcile decisions can be unit-tested without servers. Listing
and watching are the informers' job and not part of it.

``decode=False`` on a write: the caller does not use the answer, so the client does not decode
it and returns ``{}`` (errors are raised as always). A cold sync writes two objects per
resource and reads neither answer; decoding them was ~50 µs of CPU per resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from .resources import Resource

PatchType = Literal["merge", "json", "strategic"]


class KubeApi(Protocol):
    async def get(
        self, res: Resource, name: str, namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def create_object(
        self, res: Resource, obj: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def apply(
        self,
        res: Resource,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        name: str | None = None,
        field_manager: str = ...,
        force: bool = True,
        subresource: str | None = None,
        decode: bool = True,
    ) -> dict[str, Any]: ...

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Mapping[str, Any] | list[Any],
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = ...,
        decode: bool = True,
    ) -> dict[str, Any]: ...

    async def patch_status(
        self,
        res: Resource,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        *,
        decode: bool = True,
    ) -> dict[str, Any]: ...

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions_uid: str | None = None,
        preconditions_resource_version: str | None = None,
    ) -> dict[str, Any]: ...

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: list[str] | None = None,
        expiration_seconds: int = 600,
    ) -> str: ...

    async def openid_configuration(self) -> dict[str, Any]:
        """The service-account issuer discovery document (`issuer`, `jwks_uri`, ...)."""
        ...
