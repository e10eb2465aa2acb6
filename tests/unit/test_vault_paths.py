"""Local path validation: nothing suspicious leaves the process."""

from __future__ import annotations

import asyncio

import pytest

from vaultbridge.vault import (
    ConnectionSettings,
    InvalidPath,
    InvalidRequest,
    Transport,
    VaultClient,
)
from vaultbridge.vault.connection import encode_path
from vaultbridge.vault.paths import join_path, validate_path


@pytest.mark.parametrize(
    "path",
    ["app/config", "team-a/db", "a", "a/b/c/d", "with space/x", "k.v/x..y", "x@y:z", "%2e%2e"],
)
def test_clean_paths_pass_unchanged(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/secret/x", "start with '/'"),
        ("a//b", "empty segment"),
        ("a/b/", "empty segment"),
        ("..", "'..' segment"),
        ("team-a/../team-b", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("a?version=1", "forbidden character"),
        ("a#frag", "forbidden character"),
        ("a\\..\\b", "forbidden character"),
        ("a\nb", "forbidden character"),
        ("a\x00b", "forbidden character"),
    ],
)
def test_suspicious_paths_are_rejected(path: str, why: str) -> None:
    with pytest.raises(InvalidPath) as exc:
        validate_path(path)
    assert why in str(exc.value)
    assert isinstance(exc.value, InvalidRequest)
    assert exc.value.reason == "VaultInvalidPath"
    assert exc.value.status is None


def test_join_validates_every_part() -> None:
    assert join_path("secret", "data", "app") == "secret/data/app"
    with pytest.raises(InvalidPath):
        join_path("secret", "../sys")


def test_segments_are_percent_encoded_so_nothing_changes_the_url() -> None:
    assert encode_path("a b/c%2F..%2Fd/x@y") == "a%20b/c%252F..%252Fd/x%40y"


class CountingHook:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | str, float]] = []

    def __call__(self, operation: str, outcome: int | str, seconds: float) -> None:
        self.calls.append((operation, outcome, seconds))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.kv_read("secret", "../sys/raw", kv_version=2),
        lambda c: c.kv_read("/secret", "app", kv_version=1),
        lambda c: c.kv_read("secret", "app/", kv_version=2),
        lambda c: c.kv_write("se..cret/..", "x", {"a": "b"}, kv_version=2),
        lambda c: c.kv_delete("secret", "a//b", kv_version=1),
        lambda c: c.read("database/creds/../../sys/raw"),
        lambda c: c.write("/sys/policy/x", {}),
        lambda c: c.delete(""),
        lambda c: c.login_kubernetes("kubernetes/..", "role", "jwt"),
        lambda c: c.login_approle("", "rid", "sid"),
    ],
)
async def test_client_rejects_before_sending(call) -> None:  # type: ignore[no-untyped-def]
    hook = CountingHook()
    transport = Transport(on_request=hook)
    client = VaultClient(transport, ConnectionSettings("http://127.0.0.1:9"), token="t")
    try:
        with pytest.raises(InvalidPath):
            await call(client)
    finally:
        await transport.close()
    assert hook.calls == []


async def test_server_fact_is_single_flight_and_forgets_failures() -> None:
    from vaultbridge.vault import Transport

    calls = 0
    release = asyncio.Event()

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls == 1

    transport = Transport()
    waiters = [asyncio.create_task(transport.server_fact("k", 300, probe)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [True] * 5
    assert calls == 1  # one probe for five concurrent callers
    assert await transport.server_fact("k", 300, probe) is True
    assert calls == 1  # remembered
    assert await transport.server_fact("k", 0, probe) is False  # ttl 0: asked again
    assert calls == 2

    async def failing() -> bool:
        nonlocal calls
        calls += 1
        raise RuntimeError("unreachable")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await transport.server_fact("f", 300, failing)
    assert calls == 4  # a failure is not remembered
    await transport.close()
