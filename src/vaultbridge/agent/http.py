"""The agent's Vault transport: the standard library's `http.client` in a worker thread.

The operator's `Transport` shares one aiohttp session (a connection pool, rate limits) among
thousands of objects. An agent sends a few requests per refresh for one pod, and aiohttp
would be a third of its memory (docs/performance.md, "Inject agent"), so it overrides
`request` only: same URL and header spelling (`encode_path`, `request_headers`), same TLS
contexts (`ssl_context`: the connection's CA, or the system store), same JSON parsing and
typed errors, no redirect followed (a 3xx is reported, so the token never goes elsewhere).
One connection per request: at this rate a kept-alive connection saves nothing worth a pool.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from vaultbridge.vault.connection import (
    ConnectionSettings,
    RawResponse,
    Transport,
    encode_path,
    no_answer,
    parse_response,
    request_headers,
    retry_after_seconds,
)


class _HTTPSConnection(http.client.HTTPSConnection):
    """`HTTPSConnection` that checks (and sends as SNI) `server_name` instead of the host."""

    def __init__(self, host: str, port: int | None, *, server_name: str, **kw: Any) -> None:
        super().__init__(host, port, **kw)
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self._server_name
        )


def _send(  # noqa: PLR0917 - one call site, in a worker thread
    settings: ConnectionSettings,
    ssl_ctx: ssl.SSLContext | bool,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes | None,
) -> tuple[int, bytes, str | None]:
    url = urlsplit(settings.address)
    conn: http.client.HTTPConnection
    if isinstance(ssl_ctx, ssl.SSLContext):
        conn = _HTTPSConnection(
            url.hostname or "",
            url.port,
            server_name=settings.tls_server_name or url.hostname or "",
            context=ssl_ctx,
            timeout=settings.timeout,
        )
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=settings.timeout)
    try:
        conn.request(method, url.path + target, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Retry-After")
    finally:
        conn.close()


class ThreadTransport(Transport):
    """`Transport.request` on `http.client` (see the module docstring)."""

    async def request(
        self,
        settings: ConnectionSettings,
        method: str,
        path: str,
        *,
        operation: str,
        token: str | None = None,
        namespace: str | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> RawResponse:
        if self.closed:
            raise RuntimeError("Vault transport is closed")
        target = f"/v1/{encode_path(path)}" + (f"?{urlencode(dict(params))}" if params else "")
        headers = request_headers(settings, token, namespace)
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        ssl_ctx = await self._ssl_context_or_error(settings, path, operation)
        started = time.monotonic()
        outcome: int | str = "cancelled"
        try:
            status, raw, retry_after = await asyncio.to_thread(
                _send, settings, ssl_ctx, method, target, headers, body
            )
            outcome = status
        except ssl.SSLError as exc:  # ssl.CertificateError is one
            err = no_answer(exc, settings, path, operation, tls=True)
            outcome = err.reason
            raise err from exc
        except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
            err = no_answer(exc, settings, path, operation, tls=False)
            outcome = err.reason
            raise err from exc
        finally:
            self._report(operation, outcome, time.monotonic() - started)
        parsed = parse_response(status, raw)
        seconds = retry_after_seconds(retry_after)
        if seconds is None:
            return parsed
        return RawResponse(parsed.status, parsed.body, parsed.json_ok, seconds)
