"""The validating admission webhook: the first enforcement point, at `kubectl apply` time.

Served by the operator over HTTPS (aiohttp) with a certificate it manages itself (`certs`).
A review is answered from the informer caches in well under a millisecond of CPU: parse the
spec, compute the effective paths, match a handful of patterns. `/readyz` on the same port is
the webhook's own readiness: 200 once the policy caches have synced and a certificate is
loaded, so a Service never routes admission requests to a replica that would answer from an
empty cache.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from vaultbridge.kube import objects

from .addresses import AddressAllowList
from .matching import DEFAULT_ALLOW_ALL
from .paths import SECRET_KINDS, effective_paths
from .source import PolicySource, check

log = logging.getLogger(__name__)

VALIDATE_PATH = "/validate"
MUTATE_PODS_PATH = "/mutate-pods"
Mutator = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
"""Answers a Pod AdmissionReview (inject mode; controllers/inject.py's `PodInjector.review`)."""
CONNECTION_KIND = "VaultConnection"


def review_response(
    review: Mapping[str, Any],
    source: PolicySource | None,
    default: str = DEFAULT_ALLOW_ALL,
    addresses: AddressAllowList | None = None,
) -> dict[str, Any]:
    """The AdmissionReview answer to an AdmissionReview request (pure but for `source`)."""
    request = review.get("request") or {}
    uid = str(request.get("uid") or "")

    def answer(allowed: bool, message: str = "", reason: str = "") -> dict[str, Any]:
        response: dict[str, Any] = {"uid": uid, "allowed": allowed}
        if not allowed:
            response["status"] = {
                "code": 403,
                "reason": "Forbidden",
                "message": message,
                "details": {"causes": [{"reason": reason, "message": message}]},
            }
        return {
            "apiVersion": review.get("apiVersion") or "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }

    kind = str((request.get("kind") or {}).get("kind") or "")
    obj = request.get("object")
    if (
        kind == CONNECTION_KIND
        and isinstance(obj, dict)
        and not objects.is_deleting(obj)
        and not _metadata_only(request, obj)
    ):
        # Where the operator may send credentials (--allowed-vault-addresses): the same
        # AddressAllowList every reconcile asks before contacting a VaultConnection.
        address = str((obj.get("spec") or {}).get("address") or "")
        refusal = addresses.refusal(address) if addresses is not None else None
        if refusal is None:
            return answer(True)
        name = objects.name(obj) or str(request.get("name") or "")
        namespace = str(request.get("namespace") or objects.namespace(obj))
        message = f"{kind} {namespace}/{name}: {refusal}"
        log.info("admission denied: %s", message)
        return answer(False, message, "VaultAddressNotAllowed")
    if kind not in SECRET_KINDS or not isinstance(obj, dict) or objects.is_deleting(obj):
        # Never block finalizer removal of an object that is going away.
        return answer(True)
    if _metadata_only(request, obj):
        return answer(True)
    namespace = str(request.get("namespace") or objects.namespace(obj))
    try:
        paths = effective_paths(kind, obj.get("spec") or {})
    except ValidationError:
        # The CRD schema validated it already; what pydantic still refuses, the controller
        # reports as InvalidSpec. Admission is about paths only.
        return answer(True)
    verdict = check(source, namespace, paths, default)
    if verdict.allowed:
        return answer(True)
    name = objects.name(obj) or str(request.get("name") or "")
    message = f"{kind} {namespace}/{name}: {verdict.message}"
    log.info("admission denied: %s", message)
    return answer(False, message, verdict.reason)


def _metadata_only(request: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Metadata-only edits (labels, finalizers) of an object that may predate a policy or an
    allow-list: admitted, the reconcile still refuses what the object asks for."""
    old = request.get("oldObject")
    return (
        request.get("operation") == "UPDATE"
        and isinstance(old, dict)
        and old.get("spec") == obj.get("spec")
    )


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)  # noqa: S104 - bind-all is the documented default


class WebhookServer:
    """HTTPS server for `/validate`, `/healthz` and `/readyz` on one address."""

    def __init__(
        self,
        address: str,
        ssl_context: ssl.SSLContext,
        source: PolicySource | None,
        *,
        default: str = DEFAULT_ALLOW_ALL,
        cert_ready: Callable[[], bool] = lambda: True,
        addresses: AddressAllowList | None = None,
        mutate_pods: Mutator | None = None,
    ) -> None:
        self.address = address
        self.mutate_pods = mutate_pods
        self.addresses = addresses
        self.ssl_context = ssl_context
        self.source = source
        self.default = default
        self._cert_ready = cert_ready
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def ready(self) -> bool:
        return self._cert_ready() and (self.source is None or self.source.synced)

    async def _validate(self, request: web.Request) -> web.Response:
        try:
            review = await request.json()
        except ValueError:
            return web.json_response({"message": "body is not an AdmissionReview"}, status=400)
        if not isinstance(review, dict):
            return web.json_response({"message": "body is not an AdmissionReview"}, status=400)
        return web.json_response(review_response(review, self.source, self.default, self.addresses))

    async def _mutate(self, request: web.Request) -> web.Response:
        try:
            review = await request.json()
        except ValueError:
            return web.json_response({"message": "body is not an AdmissionReview"}, status=400)
        if not isinstance(review, dict) or self.mutate_pods is None:
            return web.json_response({"message": "body is not an AdmissionReview"}, status=400)
        return web.json_response(await self.mutate_pods(review))

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _request: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="ok")
        return web.Response(status=503, text="not ready: policy caches or certificate missing")

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.add_routes(
            [
                web.post(VALIDATE_PATH, self._validate),
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
            ]
        )
        if self.mutate_pods is not None:
            app.add_routes([web.post(MUTATE_PODS_PATH, self._mutate)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = _split(self.address)
        site = web.TCPSite(self._runner, host, port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server  # the only way to learn an ephemeral port
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("admission webhook serving on %s:%d", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
