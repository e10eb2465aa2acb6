"""Receive a Vault/OpenBao socket audit device's stream (UDP datagrams or a TCP stream).

The one rule: **the receiver never slows Vault down.** Vault writes every audit entry to every
device before it answers the request; a TCP device whose peer stops reading blocks Vault once
the kernel buffers fill. So:

* UDP (recommended): Vault's send never waits for us; a datagram we cannot take is dropped by
  the kernel. The socket's receive buffer is enlarged (bounded by the kernel's ``rmem_max``).
* TCP: every connection is read as fast as data arrives (``data_received``), never paused;
  entries are split on newlines into a buffer bounded by ``MAX_ENTRY_BYTES`` — a longer line
  is discarded up to its newline, never buffered.
* Overload: at most ``max_entries_per_second`` entries are handed on (a token bucket); the
  rest are read and dropped, counted, and reported as a gap (``on_gap``) so the objects are
  re-read once (see ``liveness.py``).

Lost entries are possible by design (UDP, drops, a restart); the heartbeat in ``liveness.py``
notices them and the caller re-reads every opted-in object once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from .entries import MAX_ENTRY_BYTES

log = logging.getLogger(__name__)

#: Receive buffer asked of the kernel for the UDP socket (capped by net.core.rmem_max).
UDP_RCVBUF = 4 * 1024 * 1024


@dataclass(frozen=True)
class ListenAddress:
    """``udp://host:port`` or ``tcp://host:port`` (``--audit-stream-listen``)."""

    scheme: Literal["udp", "tcp"]
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("udp", "tcp"):
            raise ValueError(f"audit stream address must start with udp:// or tcp://: {text!r}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ValueError(f"audit stream address must be udp://host:port or tcp://host:port: "
                             f"{text!r}")  # fmt: skip
        return cls("udp" if parts.scheme == "udp" else "tcp", parts.hostname, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class _EntryBudget:
    """Token bucket of entries per second; ``take`` never waits."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._last = clock()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


Sink = Callable[[bytes], None]
DropHook = Callable[[str], None]


class AuditStreamReceiver:
    """Listens on ``address``; calls ``sink(entry_bytes)`` for every entry, synchronously.

    ``on_drop(reason)`` counts what was read and thrown away (``overload``, ``too_large``);
    ``on_gap()`` is called when entries may have been lost (overload drops, a TCP connection
    lost mid-stream). ``sink`` must be fast and must not raise (exceptions are logged).
    """

    def __init__(
        self,
        address: ListenAddress,
        sink: Sink,
        *,
        max_entries_per_second: float = 20_000,
        on_drop: DropHook | None = None,
        on_gap: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self._sink = sink
        self._budget = _EntryBudget(max_entries_per_second, clock)
        self._on_drop = on_drop
        self._on_gap = on_gap
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Transport] = set()
        self._overloaded = False

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        sock: socket.socket | None = None
        if self._udp is not None:
            sock = self._udp.get_extra_info("socket")
        elif self._tcp is not None and self._tcp.sockets:
            sock = self._tcp.sockets[0]
        if sock is None:
            raise RuntimeError("receiver is not started")
        return int(sock.getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.address.scheme == "udp":
            family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                sock.bind((self.address.host, self.address.port))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=sock
            )
            self._udp = transport
        else:
            self._tcp = await loop.create_server(
                lambda: _TcpProtocol(self), self.address.host, self.address.port
            )
        log.info("audit stream receiver listening on %s", self.address)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._connections):
                conn.abort()
            await self._tcp.wait_closed()
            self._tcp = None

    # -- called by the protocols -------------------------------------------------------------

    def _entry(self, data: bytes) -> None:
        if not self._budget.take():
            if not self._overloaded:
                self._overloaded = True
                log.warning("audit stream overloaded: dropping entries (objects re-read later)")
                self._gap()
            self._drop("overload")
            return
        self._overloaded = False
        try:
            self._sink(data)
        except Exception:
            log.exception("audit stream entry handler failed")

    def _drop(self, reason: str) -> None:
        if self._on_drop is not None:
            self._on_drop(reason)

    def _gap(self) -> None:
        if self._on_gap is not None:
            self._on_gap()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: AuditStreamReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        # One datagram is one entry (Vault writes each entry in one send).
        self.receiver._entry(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("audit stream UDP socket error: %s", exc)


class _TcpProtocol(asyncio.Protocol):
    """Newline-delimited entries; reading is never paused (no back-pressure on Vault)."""

    def __init__(self, receiver: AuditStreamReceiver) -> None:
        self.receiver = receiver
        self.buffer = bytearray()
        self.discarding = False  # inside a line longer than MAX_ENTRY_BYTES
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.receiver._connections.add(transport)
        log.info("audit stream: Vault connected from %s", transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self.discarding:
                self.discarding = False
            elif len(self.buffer) + (end - start) > MAX_ENTRY_BYTES:
                self.receiver._drop("too_large")
            else:
                self.buffer += data[start:end]
                if self.buffer.strip():
                    self.receiver._entry(bytes(self.buffer))
            self.buffer.clear()
            start = end + 1
        rest = len(data) - start
        if self.discarding:
            return
        if len(self.buffer) + rest > MAX_ENTRY_BYTES:
            self.buffer.clear()
            self.discarding = True
            self.receiver._drop("too_large")
            return
        self.buffer += data[start:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.receiver._connections.discard(self.transport)
        # Vault reconnects on its next entry; the entry in flight may be lost.
        log.info("audit stream: Vault connection closed (%s)", exc or "EOF")
        self.receiver._gap()
