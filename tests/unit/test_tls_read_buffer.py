"""The operator's TLS connections keep a 32 KiB read buffer, not asyncio's 256 KiB (issue #13)."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl

from vaultbridge import operator


async def test_a_tls_connection_allocates_the_smaller_read_buffer() -> None:
    before = asyncio.sslproto.SSLProtocol.max_size
    try:
        operator._smaller_tls_read_buffers()
        proto = asyncio.sslproto.SSLProtocol(
            asyncio.get_running_loop(),
            asyncio.Protocol(),
            ssl.create_default_context(),
            None,  # type: ignore[arg-type]  # no waiter: the protocol is never connected
        )
        assert len(proto._ssl_buffer) == 32 * 1024  # type: ignore[attr-defined]
        # A read of any size is served from that buffer (asyncio caps the request at it).
        assert len(proto.get_buffer(1 << 20)) == 32 * 1024
    finally:
        asyncio.sslproto.SSLProtocol.max_size = before
