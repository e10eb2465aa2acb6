"""How to reach one Vault server, and the one HTTP transport the whole operator shares.

Every ``VaultConnection`` resource turns into a ``ConnectionSettings``; all of them go through a
single ``Transport`` that owns one ``aiohttp.ClientSession`` (one connection pool, one global
rate limit). TLS differs per connection, so the transport passes a cached ``ssl.SSLContext`` per
request instead of creating a session per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import yarl

from vaultbridge import __version__
from vaultbridge.vault.errors import VaultError, VaultTimeout, VaultTLSError, VaultUnreachable
from vaultbridge.vault.fairshare import FairShare
from vaultbridge.vault.ratelimit import AdaptiveRate, TokenBucket

if TYPE_CHECKING:
    # Imported where a session is opened: aiohttp is a third of `vaultbridge agent`'s memory,
    # and the agent sends its few requests through `agent/http.py` instead.
    import aiohttp

log = logging.getLogger(__name__)
T = TypeVar("T")

RequestHook = Callable[[str, int | str, float], None]
"""``on_request(operation, status_or_error_reason, seconds)`` — called once per HTTP attempt.

``operation`` is a fixed name such as ``kv_read`` (never a path: metrics need low cardinality);
the second argument is the HTTP status, or the error ``reason`` when no answer arrived.
"""


class FrozenHeaders(Mapping[str, str]):
    """An immutable, hashable header mapping, so ``ConnectionSettings`` can key caches."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> str:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenHeaders):
            return self._items == other._items
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        # Custom headers may carry credentials for a proxy in front of Vault: names only.
        return f"FrozenHeaders({[k for k, _ in self._items]!r})"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where Vault is and how to trust it. Frozen and hashable: it keys the SSL-context cache.

    ``ca_pem`` replaces the system trust store rather than extending it (as Vault's own
    ``VAULT_CACERT`` does): a private Vault CA should not also trust every public CA.
    ``tls_server_name`` overrides the name checked in the server certificate (SNI as well).
    ``headers`` are sent with every request; the client's own ``X-Vault-*`` headers win.
    """

    address: str
    ca_pem: bytes | None = None
    tls_server_name: str | None = None
    skip_tls_verify: bool = False
    headers: Mapping[str, str] = field(default_factory=FrozenHeaders)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        address = self.address.rstrip("/")
        url = yarl.URL(address)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("Vault address must be an http:// or https:// URL with a host")
        if url.query_string or url.fragment:
            raise ValueError("Vault address must not carry a query or fragment")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        object.__setattr__(self, "address", address)
        if not isinstance(self.headers, FrozenHeaders):
            object.__setattr__(self, "headers", FrozenHeaders(self.headers))

    @property
    def is_tls(self) -> bool:
        return self.address.startswith("https://")

    def __repr__(self) -> str:
        ca = f"<{len(self.ca_pem)} bytes>" if self.ca_pem else None
        return (
            f"ConnectionSettings(address={self.address!r}, ca_pem={ca}, "
            f"tls_server_name={self.tls_server_name!r}, skip_tls_verify={self.skip_tls_verify}, "
            f"headers={self.headers!r}, timeout={self.timeout})"
        )


@dataclass(frozen=True, slots=True)
class RawResponse:
    """Status and parsed JSON body (``None`` when empty); ``json_ok`` is False for non-JSON.

    ``retry_after``: seconds from a ``Retry-After`` header (429s), None without one.
    """

    status: int
    body: Any
    json_ok: bool = True
    retry_after: float | None = None


def build_ssl_context(ca_pem: bytes | None, skip_tls_verify: bool) -> ssl.SSLContext:
    """Build the client context; blocking (reads the system store), so call it off the loop."""
    if skip_tls_verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_pem:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
        return ctx
    return ssl.create_default_context()


def request_headers(
    settings: ConnectionSettings, token: str | None, namespace: str | None
) -> dict[str, str]:
    """The headers of one request: the connection's own, then Vault's (which win)."""
    headers = dict(settings.headers)
    headers["X-Vault-Request"] = "true"
    if token:
        headers["X-Vault-Token"] = token
    if namespace:
        headers["X-Vault-Namespace"] = namespace
    return headers


def no_answer(
    exc: BaseException, settings: ConnectionSettings, path: str, operation: str, *, tls: bool
) -> VaultError:
    """The typed error of a request that got no HTTP answer (TLS, timeout, connection)."""
    if tls:
        return VaultTLSError(f"TLS error ({type(exc).__name__})", path=path, operation=operation)
    if isinstance(exc, TimeoutError):
        return VaultTimeout(f"timed out after {settings.timeout}s", path=path, operation=operation)
    return VaultUnreachable(
        f"cannot reach {settings.address} ({type(exc).__name__})", path=path, operation=operation
    )


def encode_path(path: str) -> str:
    """Percent-encode each segment; the caller has validated that segments are sane."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


class Transport:
    """One shared aiohttp session, rate limit and request hook for every Vault connection.

    Create it once per process and ``close()`` it on shutdown. The session is opened lazily on
    the first request so the transport can be constructed outside a running event loop.
    ``rate_adapter`` (on the same bucket as ``rate_limiter``) hears every answer, so Vault's
    429s lower the global rate.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        limit_per_host: int = 0,
        rate_limiter: TokenBucket | None = None,
        fair_share: FairShare | None = None,
        on_request: RequestHook | None = None,
        rate_adapter: AdaptiveRate | None = None,
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self.rate_limiter = rate_limiter
        self.rate_adapter = rate_adapter
        # In front of rate_limiter (the same bucket): who gets the next token (fairshare.py).
        self.fair_share = fair_share
        self.on_request = on_request
        self._session: aiohttp.ClientSession | None = None
        self._ssl_contexts: dict[tuple[bytes | None, bool], ssl.SSLContext] = {}
        self._facts: dict[str, tuple[float, asyncio.Task[Any]]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        for _, task in self._facts.values():
            task.cancel()
        self._facts.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._closed:
            raise RuntimeError("Vault transport is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit_per_host)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": f"vaultbridge/{__version__}"},
                # Vault's JSON goes through json.loads ourselves (to classify non-JSON bodies).
                raise_for_status=False,
            )
        return self._session

    async def server_fact(self, key: str, ttl: float, probe: Callable[[], Awaitable[T]]) -> T:
        """`probe()`'s answer, remembered for `ttl` seconds per `key` (e.g. a property of the
        server at one address). Single-flight: concurrent callers share one probe. A failed
        probe is not remembered: its callers get the error, the next caller probes again."""
        now = time.monotonic()
        entry = self._facts.get(key)
        if entry is None or now - entry[0] >= ttl:
            entry = (now, asyncio.ensure_future(probe()))
            # Retrieve the outcome even if every caller was cancelled meanwhile (no warning).
            entry[1].add_done_callback(lambda t: t.cancelled() or t.exception())
            self._facts[key] = entry
        task = entry[1]
        try:
            # Shielded: one caller's cancellation must not cancel the probe the others await.
            result: T = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except BaseException:
            if self._facts.get(key) is entry:
                del self._facts[key]
            raise
        return result

    async def ssl_context(self, settings: ConnectionSettings) -> ssl.SSLContext | bool:
        if not settings.is_tls:
            return True
        key = (settings.ca_pem, settings.skip_tls_verify)
        ctx = self._ssl_contexts.get(key)
        if ctx is None:
            # Two concurrent first requests may both build one; the spare is discarded.
            ctx = await asyncio.to_thread(build_ssl_context, *key)
            ctx = self._ssl_contexts.setdefault(key, ctx)
        return ctx

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
        """Send one request to ``{address}/v1/{path}``; raise only when no HTTP answer came.

        HTTP error statuses come back as a ``RawResponse`` for the client to classify (it knows
        when a 404 carries meaning, e.g. a deleted kv-v2 version).
        """
        import aiohttp

        session = self._get_session()
        url = yarl.URL(f"{settings.address}/v1/{encode_path(path)}", encoded=True)
        headers = request_headers(settings, token, namespace)
        ssl_ctx = await self._ssl_context_or_error(settings, path, operation)
        if self.fair_share is not None:
            await self.fair_share.acquire()
        elif self.rate_limiter is not None:
            await self.rate_limiter.acquire()
        ticket = self.rate_adapter.sent() if self.rate_adapter is not None else None

        started = time.monotonic()
        outcome: int | str = "cancelled"
        status = 0
        retry_after: float | None = None
        try:
            async with session.request(
                method,
                url,
                params=dict(params) if params else None,
                json=json_body,
                headers=headers,
                # A redirect would carry X-Vault-Token to another address; Vault and OpenBao
                # standbys forward requests themselves, so a 3xx is reported, not followed.
                allow_redirects=False,
                ssl=ssl_ctx,
                server_hostname=settings.tls_server_name if settings.is_tls else None,
                timeout=aiohttp.ClientTimeout(total=settings.timeout),
            ) as resp:
                raw = await resp.read()
                status = outcome = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            err = no_answer(exc, settings, path, operation, tls=True)
            outcome = err.reason
            raise err from exc
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            err = no_answer(exc, settings, path, operation, tls=False)
            outcome = err.reason
            raise err from exc
        finally:
            self._report(operation, outcome, time.monotonic() - started)

        if self.rate_adapter is not None:
            self.rate_adapter.observe(status, retry_after, ticket)
        parsed = parse_response(status, raw)
        return replace(parsed, retry_after=retry_after) if retry_after is not None else parsed

    async def _ssl_context_or_error(
        self, settings: ConnectionSettings, path: str, operation: str
    ) -> ssl.SSLContext | bool:
        try:
            return await self.ssl_context(settings)
        except (ssl.SSLError, ValueError) as exc:
            # A bad CA bundle in a VaultConnection: a TLS configuration problem, not a bug.
            raise VaultTLSError(
                f"invalid CA certificate bundle ({type(exc).__name__})",
                path=path,
                operation=operation,
            ) from exc

    def _report(self, operation: str, outcome: int | str, seconds: float) -> None:
        if self.on_request is None:
            return
        try:
            self.on_request(operation, outcome, seconds)
        except Exception:
            # Metrics must never break a request.
            log.exception("vault on_request hook failed")


_MAX_RETRY_AFTER = 60.0


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (the delay form; an HTTP date is ignored), capped:
    a proxy asking for an hour must not stop the operator for an hour."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, _MAX_RETRY_AFTER)


def parse_response(status: int, raw: bytes) -> RawResponse:
    if not raw.strip():
        return RawResponse(status, None)
    try:
        return RawResponse(status, json.loads(raw))
    except ValueError:
        return RawResponse(status, None, json_ok=False)
