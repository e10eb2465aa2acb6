"""HTTP endpoints for Prometheus (/metrics) and the kubelet probes (/healthz, /readyz)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import REGISTRY

log = logging.getLogger(__name__)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)  # noqa: S104 - bind-all is the documented default


class ObservabilityServer:
    def __init__(
        self,
        metrics_address: str,
        health_address: str,
        ready: Callable[[], bool],
    ) -> None:
        self._metrics_address = metrics_address
        self._health_address = health_address
        self._ready = ready
        self._runners: list[web.AppRunner] = []

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok")
        return web.Response(status=503, text="not ready: caches not synced")

    async def start(self) -> None:
        routes: dict[str, list[web.RouteDef]] = {}
        if self._metrics_address:
            routes.setdefault(self._metrics_address, []).append(web.get("/metrics", self._metrics))
        if self._health_address:
            routes.setdefault(self._health_address, []).extend(
                [web.get("/healthz", self._healthz), web.get("/readyz", self._readyz)]
            )
        for address, defs in routes.items():
            app = web.Application()
            app.add_routes(defs)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            host, port = _split(address)
            await web.TCPSite(runner, host, port).start()
            self._runners.append(runner)
            log.info("serving %s on %s", ", ".join(d.path for d in defs), address)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
