"""In-memory stand-ins for unit tests of reconcile decisions (never for integration tests).

- `FakeKube` implements `vaultbridge.kube.api.KubeApi` over a dict: get / apply / patch /
  patch_status / delete with the API server's NotFound and uid preconditions, and a log of
  the calls so a test can assert what was (not) written. Like the API server with our CRDs'
  structural schemas, it holds a status write to the kind's status model (api/), and fails
  the test where the real server would refuse it or silently prune a field.
- `FakeVault` stands in for `VaultAccess` + `VaultClient`: canned KV data, dynamic
  responses, PKI certificates, or an error to raise; `problem` is what resolving a
  reference reports. `FakeTransport` answers `sys/health` for VaultConnection.
- `make_ctx` wires them into an `OperatorContext` with informer caches filled by `cache()`.

They model only what the reconcilers rely on; the real behaviour is covered by the
integration tests against the real servers.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from vaultbridge.api.auth import VaultAuthSpec
from vaultbridge.api.kinds import (
    KINDS,
    SECRET_TRANSFORMATIONS,
    VAULT_AUTHS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
    VAULT_STATIC_SECRETS,
)
from vaultbridge.controllers.context import OperatorContext
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.controllers.resolution import ResolvedAuth
from vaultbridge.controllers.vault_access import VaultAccess
from vaultbridge.engine.controller import Reconciler, Result
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.api import PatchType
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import Conflict, NotFound
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import Resource
from vaultbridge.settings import Settings
from vaultbridge.vault.cache import ClientCache
from vaultbridge.vault.connection import ConnectionSettings, RawResponse, Transport
from vaultbridge.vault.errors import VaultError
from vaultbridge.vault.models import KVSecret, LeaseInfo, VaultResponse

_uids = itertools.count(1)


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 merge patch."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


class FakeKube:
    """A tiny API server: objects by (plural, namespace, name)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        #: Writes whose answer the caller asked for (``decode=True``), as in ``calls``: the
        #: real client decodes exactly these answers.
        self.decoded: list[tuple[str, str, str]] = []
        self._rv = itertools.count(1)

    # -- helpers for tests -----------------------------------------------------------------

    def put(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(_uids)}")
        meta["resourceVersion"] = str(next(self._rv))
        stored.setdefault("apiVersion", res.api_version)
        stored.setdefault("kind", res.kind)
        self.objects[(res.plural, objects.namespace(stored), objects.name(stored))] = stored
        return copy.deepcopy(stored)

    def stored(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((res.plural, namespace, name))

    def writes(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] != "get"]

    def _find(self, res: Resource, name: str, namespace: str | None) -> dict[str, Any]:
        obj = self.objects.get((res.plural, namespace or "", name))
        if obj is None:
            raise NotFound(404, "NotFound", f'{res.plural} "{name}" not found')
        return obj

    # -- KubeApi ---------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(("get", res.plural, name))
        return copy.deepcopy(self._find(res, name, namespace))

    async def create_object(
        self, res: Resource, obj: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("create", res.plural, objects.name(dict(obj))))
        return self.put(res, dict(obj))

    async def apply(
        self,
        res: Resource,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        name: str | None = None,
        field_manager: str = "vaultbridge",
        force: bool = True,
        subresource: str | None = None,
        decode: bool = True,
    ) -> dict[str, Any]:
        name = name or objects.name(dict(obj))
        self.calls.append(("apply", res.plural, name))
        existing = self.objects.get((res.plural, namespace or "", name))
        if existing is None:
            # A create ignores a resourceVersion precondition.
            return self._answer(self.put(res, dict(obj)), decode)
        precondition = (obj.get("metadata") or {}).get("resourceVersion")
        if precondition is not None and precondition != objects.resource_version(existing):
            raise Conflict(409, "Conflict", "the object has been modified")
        _merge(existing, obj)
        existing["metadata"]["resourceVersion"] = str(next(self._rv))
        return self._answer(copy.deepcopy(existing), decode)

    def _answer(self, obj: dict[str, Any], decode: bool) -> dict[str, Any]:
        """What the real client returns: the object, or ``{}`` when not decoded."""
        if not decode:
            return {}
        self.decoded.append(self.calls[-1])
        return obj

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Mapping[str, Any] | list[Any],
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = "vaultbridge",
        decode: bool = True,
    ) -> dict[str, Any]:
        self.calls.append((f"patch{'/' + subresource if subresource else ''}", res.plural, name))
        obj = self._find(res, name, namespace)
        if isinstance(patch, list):
            for op in patch:
                assert op["op"] == "remove"
                parts = op["path"].strip("/").split("/")
                obj.get(parts[0], {}).pop(parts[1].replace("~1", "/").replace("~0", "~"), None)
        else:
            _merge(obj, patch)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return self._answer(copy.deepcopy(obj), decode)

    async def patch_status(
        self,
        res: Resource,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        *,
        decode: bool = True,
    ) -> dict[str, Any]:
        await self.patch(res, name, patch, namespace, subresource="status", decode=False)
        _check_status_schema(res, self._find(res, name, namespace).get("status") or {})
        if not decode:
            return {}
        self.decoded.append(self.calls[-1])
        return copy.deepcopy(self._find(res, name, namespace))

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions_uid: str | None = None,
        preconditions_resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("delete", res.plural, name))
        obj = self._find(res, name, namespace)
        if preconditions_uid is not None and objects.uid(obj) != preconditions_uid:
            raise Conflict(409, "Conflict", "uid precondition failed")
        del self.objects[(res.plural, namespace or "", name)]
        return obj

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: list[str] | None = None,
        expiration_seconds: int = 600,
    ) -> str:
        self.calls.append(("create_token", "serviceaccounts", service_account))
        return "fake-service-account-token"

    async def openid_configuration(self) -> dict[str, Any]:
        return {"issuer": "https://kubernetes.default.svc"}


_STATUS_MODELS = {info.plural: info.status_model for info in KINDS}


def _check_status_schema(res: Resource, status: dict[str, Any]) -> None:
    """The written status, held to the kind's status model (the CRD's schema): a value the
    API server would refuse, or a field its structural schema would prune, fails the test."""
    model = _STATUS_MODELS.get(res.plural)
    if model is None:
        return
    parsed = model.model_validate(status)  # a ValidationError: the server would refuse it
    kept = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert kept == status, f"{res.kind} status fields outside its schema: {status} -> {kept}"


class FakeEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def emit(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))

    def emit_routine(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.emit(obj, type, reason, message)

    def reasons(self) -> list[str]:
        return [r for _t, r, _m in self.events]


@dataclass
class FakeVault:
    """`VaultAccess` + `VaultClient` in one: answers from the fields below, or raises
    `error` (a VaultError) for every request."""

    kv: dict[str, dict[str, Any]] = field(default_factory=dict)
    """KV data by `mount/path`."""
    responses: list[VaultResponse] = field(default_factory=list)
    """Dynamic / PKI answers, served in order (the last one repeats)."""
    renewals: list[LeaseInfo] = field(default_factory=list)
    error: VaultError | None = None
    problem: ReconcileProblem | None = None
    """What resolving a reference (VaultAuth → VaultConnection) reports, if anything."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    purged: list[ObjectKey] = field(default_factory=list)
    forgotten_connections: list[ObjectKey] = field(default_factory=list)

    # VaultAccess
    async def resolve(self, consumer_namespace: str, ref: str) -> ResolvedAuth:
        if self.problem is not None:
            raise self.problem
        return cast(ResolvedAuth, _ResolvedStub())

    async def connection_settings(self, key: ObjectKey, obj: dict[str, Any]) -> ConnectionSettings:
        if self.problem is not None:
            raise self.problem
        return ConnectionSettings(address="http://vault.test:8200")

    async def purge_stale_tokens(
        self, auth_key: ObjectKey, auth_obj: dict[str, Any] | None
    ) -> None:
        self.purged.append(auth_key)

    def forget_connection(self, key: ObjectKey) -> None:
        self.forgotten_connections.append(key)

    async def client(self, resolved: ResolvedAuth, consumer_namespace: str) -> FakeVault:
        return self

    def invalidate(self, resolved: ResolvedAuth, consumer_namespace: str) -> None:
        pass

    async def token_replaced(
        self, resolved: ResolvedAuth, consumer_namespace: str, client: object
    ) -> bool:
        return False  # a 403 here is always a policy refusal

    # VaultClient
    def with_namespace(self, namespace: str | None) -> FakeVault:
        return self

    def _check(self, op: str, path: str) -> None:
        self.requests.append((op, path))
        if self.error is not None:
            raise self.error

    async def kv_read(
        self, mount: str, path: str, *, kv_version: int, version: int | None = None
    ) -> KVSecret:
        self._check("kv_read", f"{mount}/{path}")
        data = self.kv.get(f"{mount}/{path}")
        if data is None:
            raise NotFound(404, "NotFound", "no such secret")  # never reached in these tests
        return KVSecret(data=dict(data), metadata={"version": 1}, raw={"data": dict(data)})

    def _next(self) -> VaultResponse:
        if len(self.responses) > 1:
            return self.responses.pop(0)
        return self.responses[0]

    async def read(self, path: str, **_: Any) -> VaultResponse:
        self._check("read", path)
        return self._next()

    async def write(self, path: str, body: Any = None, **_: Any) -> VaultResponse | None:
        self._check("write", path)
        return self._next()

    async def renew_lease(self, lease_id: str, increment: int | None = None) -> LeaseInfo:
        self._check("renew", lease_id)
        return self.renewals.pop(0)

    async def revoke_lease(self, lease_id: str) -> None:
        self._check("revoke", lease_id)


@dataclass
class FakeTransport:
    """`vault.connection.Transport` answering only `sys/health`, with `health`'s body."""

    health: dict[str, Any] = field(
        default_factory=lambda: {"initialized": True, "sealed": False, "version": "2.0.0"}
    )
    requests: list[str] = field(default_factory=list)

    async def request(
        self, settings: ConnectionSettings, method: str, path: str, **_: Any
    ) -> RawResponse:
        self.requests.append(f"{method} {settings.address}/v1/{path}")
        return RawResponse(200, dict(self.health))


class _ResolvedStub:
    auth = VaultAuthSpec.model_validate(
        {"method": "kubernetes", "kubernetes": {"role": "app", "serviceAccount": "default"}}
    )
    auth_key = ObjectKey("app", "default")
    global_obj: dict[str, Any] | None = None


def response(
    data: dict[str, Any], *, lease_id: str = "", duration: int = 0, renewable: bool = False
) -> VaultResponse:
    return VaultResponse(
        request_id="req-1",
        lease_id=lease_id,
        lease_duration=duration,
        renewable=renewable,
        data=data,
        warnings=(),
        auth=None,
    )


HMAC_KEY = b"k" * 32
OPERATOR_RESOURCES = (
    VAULT_STATIC_SECRETS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
    VAULT_AUTHS,
    SECRET_TRANSFORMATIONS,
)


async def reconciled(reconciler: Reconciler, key: ObjectKey) -> Result:
    """One reconcile as the engine runs it: the reconcile, then its ``finish`` (the success
    status write the delivery flow hands off the worker, engine Result.finish), so a test
    sees what the engine would have written by the time the key is done."""
    result = await reconciler.reconcile(key)
    if result.finish is not None:
        await result.finish()
    return Result(requeue_after=result.requeue_after)


@dataclass
class Harness:
    kube: FakeKube
    events: FakeEvents
    vault: FakeVault
    ctx: OperatorContext

    @property
    def access(self) -> VaultAccess:
        return cast(VaultAccess, self.vault)

    def cache(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` on the fake server and in the informer cache (as a watch would)."""
        stored = self.kube.put(res, obj)
        self.ctx.informer(res).store._put(stored)
        return stored

    def listed(self, res: Resource) -> None:
        """The informer of `res` has done its first list (its cache is authoritative)."""
        informer = self.ctx.informers.setdefault(res, Informer(cast(KubeClient, self.kube), res))
        informer._synced.set()

    def refresh(self, res: Resource, key: ObjectKey) -> dict[str, Any]:
        """The informer catches up with the server (after our status patch)."""
        obj = self.kube.stored(res, key.namespace, key.name)
        assert obj is not None
        self.ctx.informer(res).store._put(copy.deepcopy(obj))
        return copy.deepcopy(obj)


def make_ctx(
    vault: FakeVault | None = None,
    settings: Callable[[], Settings] = Settings,
    transport: FakeTransport | None = None,
) -> Harness:
    kube = FakeKube()
    events = FakeEvents()
    ctx = OperatorContext(
        settings=settings(),
        kube=kube,
        events=cast(EventRecorder, events),
        vault_transport=cast(Transport, transport),
        clients=cast(ClientCache, None),
        hmac_key=HMAC_KEY,
    )
    for res in OPERATOR_RESOURCES:
        ctx.informers[res] = Informer(cast(KubeClient, kube), res)
    return Harness(kube, events, vault or FakeVault(), ctx)
