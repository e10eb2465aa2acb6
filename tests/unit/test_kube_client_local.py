"""KubeClient behaviour that a healthy API server cannot be made to show on demand:
token rotation answered with 401, an unreachable server, a stream that breaks mid-event,
events split across many small chunks. A tiny aiohttp server on 127.0.0.1 plays the peer.

Everything else (CRUD, apply, paging, watch, errors) is tested against the real API server
in tests/integration/test_kube_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from vaultbridge.kube import client as kube_client
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.config import FileToken, KubeConfig, StaticToken
from vaultbridge.kube.errors import (
    Conflict,
    KubeUnreachable,
    ResourceExpired,
    TooManyRequests,
    Unauthorized,
)
from vaultbridge.kube.resources import SECRETS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def secret(name: str, rv: str) -> dict[str, object]:
    return {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "resourceVersion": rv}}


async def test_401_rereads_rotated_token_and_retries_once(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")
    valid = "old"
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        seen.append(auth)
        if auth != f"Bearer {valid}":
            return web.json_response(
                {"kind": "Status", "code": 401, "reason": "Unauthorized"}, status=401
            )
        return web.json_response(secret("s", "1"))

    async with serve(handler) as url:
        client = await KubeClient.create(KubeConfig(url, token=FileToken(token_file)))
        statuses: list[int] = []
        client.add_request_hook(lambda verb, plural, status, secs: statuses.append(status))
        await client.get(SECRETS, "s", "ns")
        # The kubelet rotates the projected token; the server stops accepting the old one
        # before our periodic re-read comes round.
        token_file.write_text("new")
        valid = "new"
        obj = await client.get(SECRETS, "s", "ns")
        assert obj["metadata"]["name"] == "s"
        assert seen == ["Bearer old", "Bearer old", "Bearer new"]
        assert statuses == [200, 401, 200]
        assert client.request_counts[("get", "secrets")] == 3
        await client.close()


async def test_persistent_401_raises_unauthorized() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(
            {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "nope"}, status=401
        )

    async with (
        serve(handler) as url,
        await KubeClient.create(KubeConfig(url, token=StaticToken("t"))) as client,
    ):
        with pytest.raises(Unauthorized) as err:
            await client.create(
                SECRETS, {"metadata": {"name": "x"}, "data": {"k": "VE9QU0VDUkVU"}}, "ns"
            )
        assert calls == 2
        assert "VE9QU0VDUkVU" not in str(err.value) and "TOPSECRET" not in str(err.value)


async def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with await KubeClient.create(KubeConfig(f"http://127.0.0.1:{port}")) as client:
        statuses: list[int] = []
        client.add_request_hook(lambda verb, plural, status, secs: statuses.append(status))
        with pytest.raises(KubeUnreachable, match="GET /api/v1/namespaces/ns/secrets/x"):
            await client.get(SECRETS, "x", "ns")
        with pytest.raises(KubeUnreachable):
            async with contextlib.aclosing(
                client.watch(SECRETS, "ns", resource_version="1")
            ) as stream:
                async for _ in stream:
                    pass
        assert statuses == [0, 0]
        assert client.request_counts[("watch", "secrets")] == 1


async def test_watch_reassembles_events_split_across_chunks() -> None:
    big = secret("big", "2")
    big["data"] = {"blob": "A" * 300_000}  # longer than aiohttp's readline limit
    lines = [
        json.dumps({"type": "ADDED", "object": secret("a", "1")}),
        json.dumps({"type": "MODIFIED", "object": big}),
        json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "3"}}}),
        json.dumps(
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "code": 410,
                    "reason": "Expired",
                    "message": "too old",
                },
            }
        ),
    ]
    payload = ("\n".join(lines) + "\n").encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.query["watch"] == "true"
        assert request.query["resourceVersion"] == "1"
        assert request.query["allowWatchBookmarks"] == "true"
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        # The first two events share a chunk boundary, the big one arrives in 7 KiB pieces.
        for i in range(0, len(payload), 7000):
            await resp.write(payload[i : i + 7000])
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    async with serve(handler) as url, await KubeClient.create(KubeConfig(url)) as client:
        events = []
        with pytest.raises(ResourceExpired, match="too old"):
            async for event in client.watch(SECRETS, "ns", resource_version="1"):
                events.append(event)
        assert [e.type for e in events] == ["ADDED", "MODIFIED", "BOOKMARK"]
        assert events[1].object["data"]["blob"] == "A" * 300_000


async def test_watch_broken_mid_event_raises_unreachable() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(json.dumps({"type": "ADDED", "object": secret("a", "1")}).encode() + b"\n")
        await resp.write(b'{"type": "MODIFIED", "obj')
        assert request.transport is not None
        request.transport.close()  # connection dies without a terminating chunk
        return resp

    async with serve(handler) as url, await KubeClient.create(KubeConfig(url)) as client:
        events = []
        with pytest.raises(KubeUnreachable):
            async for event in client.watch(SECRETS, "ns", resource_version="1"):
                events.append(event)
        assert [e.object["metadata"]["name"] for e in events] == ["a"]


async def test_throttled_requests_are_retried_briefly_then_surface() -> None:
    answers = [429, 429, 200, 429, 429, 429, 429]
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        status = answers.pop(0)
        if status == 429:
            return web.json_response(
                {"kind": "Status", "code": 429, "reason": "TooManyRequests"},
                status=429,
                headers={"Retry-After": "0"},
            )
        return web.json_response(secret("s", "1"), status=201)

    async with serve(handler) as url, await KubeClient.create(KubeConfig(url)) as client:
        created = await client.create(SECRETS, {"metadata": {"name": "s"}}, "ns")
        assert created["metadata"]["name"] == "s"
        assert seen == ["POST"] * 3  # a 429 was not processed: even a create is retried
        with pytest.raises(TooManyRequests):
            await client.get(SECRETS, "s", "ns")
        assert len(seen) == 3 + 4  # first try + 3 retries


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the client's JSON decodes (every body it decodes goes through `_decode`)."""
    sizes: list[int] = []
    real = kube_client._decode

    def counting(raw: bytes) -> object:
        sizes.append(len(raw))
        return real(raw)

    monkeypatch.setattr(kube_client, "_decode", counting)
    return sizes


async def test_writes_with_decode_false_leave_the_answer_undecoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #13: the Secret apply and the status patch of a sync are sent with decode=False;
    the answer (a whole Secret / object) is then not decoded at all, while an error answer
    still is, so a create-only apply still learns that the Secret exists (409 Conflict)."""
    answer = secret("s", "7")
    answer["data"] = {"k": "dg=="}
    bodies: list[object] = []

    async def handler(request: web.Request) -> web.Response:
        bodies.append(json.loads(await request.read()))
        if request.query.get("fieldManager") == "conflict":
            return web.json_response(
                {"kind": "Status", "code": 409, "reason": "Conflict", "message": "exists"},
                status=409,
            )
        return web.json_response(answer)

    decodes = _count_decodes(monkeypatch)
    async with (
        serve(handler) as url,
        await KubeClient.create(KubeConfig(url, token=StaticToken("t"))) as client,
    ):
        body = {"metadata": {"name": "s", "namespace": "ns"}, "data": {"k": "dg=="}}
        assert await client.apply(SECRETS, body, decode=False) == {}
        assert await client.patch_status(SECRETS, "s", {"status": {"a": "é"}}, decode=False) == {}
        assert await client.patch(SECRETS, "s", {"data": None}, "ns", decode=False) == {}
        assert decodes == []  # three writes, no answer decoded
        assert await client.apply(SECRETS, body) == answer  # the default still decodes
        assert len(decodes) == 1
        with pytest.raises(Conflict):
            await client.apply(SECRETS, body, field_manager="conflict", decode=False)
        assert len(decodes) == 2  # the error answer, for its reason
    # What was sent is the same JSON as before (msgspec encodes, UTF-8 not escaped).
    assert bodies[0] == {"apiVersion": "v1", "kind": "Secret", **body}
    assert bodies[1] == {"status": {"a": "é"}}


def test_the_decoder_gives_what_json_loads_gives() -> None:
    """msgspec replaced json.loads in the client: the same values for what the API server
    sends (large integers, unicode, escapes, nesting, floats), and a ValueError otherwise."""
    text = json.dumps(
        {
            "a": [1, 2.5, -0.0, 10**30, True, False, None, 'é\u2028"\\/'],
            "b": {"c": {"d": []}, "e": {}},
            "f": "x" * 10_000,
        }
    )
    for raw in (text.encode(), json.dumps(json.loads(text), ensure_ascii=False).encode()):
        decoded = kube_client._decode(raw)
        assert decoded == json.loads(raw)
        assert type(decoded["a"][0]) is int and type(decoded["a"][1]) is float
        assert type(decoded["a"][4]) is bool
    with pytest.raises(ValueError):
        kube_client._decode(b'{"a": ')
    sent = {"a": [1, 2.5, 10**30, True, None, ("t", "u")], "é": {"k": "\x00"}}
    assert json.loads(kube_client._encode(sent)) == json.loads(json.dumps(sent))
