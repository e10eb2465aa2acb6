"""Property: the path a VaultPathPolicy judges is the path the operator requests.

For random mounts and paths (anything the spec models accept, stray slashes included), the
effective path the guard checks equals the path the Vault client hands to the transport, or
the client refuses to send anything at all. Never a third spelling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.guard.paths import effective_paths
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.connection import ConnectionSettings, RawResponse, Transport
from vaultbridge.vault.errors import InvalidPath


class _Sent(Exception):
    """Raised by the recording transport: the request left the client."""


class RecordingTransport:
    def __init__(self) -> None:
        self.paths: list[str] = []

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
        self.paths.append(path)
        raise _Sent


SEGMENT = st.text(alphabet="abcxyz-_.0123456789", min_size=1, max_size=6)
# Parts with stray slashes, `.`/`..` segments and empty segments, as a user might write them.
PART = st.lists(st.one_of(SEGMENT, st.sampled_from(["", ".", ".."])), min_size=1, max_size=4).map(
    "/".join
)
DEST = {"destination": {"name": "d", "create": True}}


async def _requested(call: Callable[[VaultClient], Awaitable[object]]) -> list[str]:
    transport = RecordingTransport()
    client = VaultClient(
        cast(Transport, transport), ConnectionSettings("http://127.0.0.1:9"), token="t"
    )
    try:
        await call(client)
    except _Sent:
        pass
    except InvalidPath:
        assert transport.paths == []
    return transport.paths


def _run(call: Callable[[VaultClient], Awaitable[object]]) -> list[str]:
    return asyncio.run(_requested(call))


def _parse(model: type[Any], raw: dict[str, Any]) -> Any | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


@settings(max_examples=150, deadline=None)
@given(mount=PART, path=PART, kv2=st.booleans())
def test_static_secret_checked_path_is_the_read_path(mount: str, path: str, kv2: bool) -> None:
    raw = {"mount": mount, "path": path, "type": "kv-v2" if kv2 else "kv-v1", **DEST}
    spec = _parse(VaultStaticSecretSpec, raw)
    if spec is None:
        return
    checked = effective_paths("VaultStaticSecret", raw)
    source = spec.kv_sources()[0]
    sent = _run(lambda c: c.kv_read(source.mount, source.path, kv_version=2 if kv2 else 1))
    assert sent in ([], checked)


@settings(max_examples=150, deadline=None)
@given(mount=PART, path=PART)
def test_dynamic_secret_checked_path_is_the_requested_path(mount: str, path: str) -> None:
    raw = {"mount": mount, "path": path, **DEST}
    spec = _parse(VaultDynamicSecretSpec, raw)
    if spec is None:
        return
    checked = effective_paths("VaultDynamicSecret", raw)
    sent = _run(lambda c: c.read(spec.request_path()))
    assert sent in ([], checked)


@settings(max_examples=150, deadline=None)
@given(mount=PART, role=SEGMENT)
def test_pki_secret_checked_path_is_the_issue_path(mount: str, role: str) -> None:
    raw = {"mount": mount, "role": role, **DEST}
    spec = _parse(VaultPKISecretSpec, raw)
    if spec is None:
        return
    checked = effective_paths("VaultPKISecret", raw)
    sent = _run(lambda c: c.write(spec.issue_path(), {}, method="POST"))
    assert sent in ([], checked)


def test_clean_paths_are_sent_as_checked() -> None:
    """The property is not vacuous: clean specs are sent, and exactly as checked."""
    raw = {"mount": "secret", "path": "team-a/db", "type": "kv-v2", **DEST}
    sent = _run(lambda c: c.kv_read("secret", "team-a/db", kv_version=2))
    assert sent == effective_paths("VaultStaticSecret", raw) == ["secret/data/team-a/db"]
