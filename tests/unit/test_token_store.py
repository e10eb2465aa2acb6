"""Persisted tokens: the MAC-protected record format, and how the client cache uses a store.

The store here is an in-memory fake (a pure-logic edge of the cache); the Kubernetes Secret
store, Transit and real restarts are covered in tests/integration/test_token_persistence.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Hashable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vaultbridge.persistence.token_store import (
    ClientKey,
    RejectedEntry,
    open_entry,
    seal_entry,
    token_record,
)
from vaultbridge.vault import AuthToken, ClientCache, Transport, VaultClient
from vaultbridge.vault.persist import LoginFn, Restored, TokenStoreUnavailable

from .test_vault_cache import SETTINGS, Clock, FakeLogin, FakeRenew, settle, token

HMAC_KEY = b"k" * 32
KEY = ClientKey("apps", "default", "uid-a", 3, "uid-c", 1, "apps", "default")


def sealed(key: ClientKey = KEY, **extra: Any) -> dict[str, Any]:
    record = token_record(key, token(3600, n=7))
    record["token"] = "tok-7"
    record.update(extra)
    return {"data": seal_entry(HMAC_KEY, key, record)}


# --- record format -------------------------------------------------------------------------------


def test_sealed_record_opens_with_its_token_and_identity() -> None:
    record = open_entry(HMAC_KEY, KEY, sealed())
    assert record["token"] == "tok-7"
    assert record["accessor"] == "acc-7"
    assert record["ttl"] == 3600
    assert record["identity"]["vaultAuth"] == "apps/default"


def test_every_flipped_byte_of_the_record_or_mac_is_rejected() -> None:
    secret = sealed()
    for field in ("record", "mac"):
        raw = base64.b64decode(secret["data"][field])
        for i in range(len(raw)):
            flipped = bytearray(raw)
            flipped[i] ^= 0x01
            data = dict(secret["data"], **{field: base64.b64encode(bytes(flipped)).decode()})
            with pytest.raises(RejectedEntry):
                open_entry(HMAC_KEY, KEY, {"data": data})


def test_record_of_another_identity_or_key_is_rejected() -> None:
    other = replace(KEY, consumer_namespace="other")
    assert other.secret_name() != KEY.secret_name()
    # Copied into another identity's Secret: the MAC binds the Secret name.
    with pytest.raises(RejectedEntry, match="MAC mismatch"):
        open_entry(HMAC_KEY, other, sealed())
    # Sealed for the right name but carrying another identity.
    forged = token_record(other, token(3600))
    forged["token"] = "x"
    with pytest.raises(RejectedEntry, match="another identity"):
        open_entry(HMAC_KEY, KEY, {"data": seal_entry(HMAC_KEY, KEY, forged)})
    with pytest.raises(RejectedEntry, match="MAC mismatch"):
        open_entry(b"z" * 32, KEY, sealed())


def test_malformed_entries_are_rejected_without_showing_their_content() -> None:
    with pytest.raises(RejectedEntry, match="missing"):
        open_entry(HMAC_KEY, KEY, {"data": {}})
    with pytest.raises(RejectedEntry, match="base64"):
        open_entry(HMAC_KEY, KEY, {"data": {"record": "!!", "mac": "!!"}})
    with pytest.raises(RejectedEntry, match="no token"):
        open_entry(HMAC_KEY, KEY, sealed(ciphertext="vault:v1:abc"))
    try:
        open_entry(b"z" * 32, KEY, sealed())
    except RejectedEntry as exc:
        assert "tok-7" not in str(exc)


def test_secret_name_is_stable_and_independent_of_store_options() -> None:
    assert KEY.secret_name() == replace(KEY, encryption=("transit", "k")).secret_name()
    assert KEY.secret_name() != replace(KEY, auth_generation=4).secret_name()
    assert KEY.secret_name().startswith("vaultbridge-token-")
    assert len(KEY.secret_name()) == len("vaultbridge-token-") + 16
    assert json.dumps(KEY.identity())  # plain strings only


# --- the cache with a store ----------------------------------------------------------------------


class FakeStore:
    def __init__(self, restored: Restored | None = None) -> None:
        self.restored = restored
        self.loads = 0
        self.saved: list[AuthToken] = []
        self.fail_load: Exception | None = None
        self.fail_save: Exception | None = None

    async def load(self, key: Hashable, client: VaultClient, login: LoginFn) -> Restored | None:
        self.loads += 1
        assert not client.has_token
        if self.fail_load is not None:
            raise self.fail_load
        return self.restored

    async def save(self, key: Hashable, token: AuthToken, client: VaultClient) -> None:
        if self.fail_save is not None:
            raise self.fail_save
        self.saved.append(token)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    yield t
    await t.close()


def cache_with(
    transport: Transport, store: FakeStore, clock: Clock, renew: FakeRenew | None = None
) -> ClientCache:
    return ClientCache(
        transport,
        clock=clock,
        renew=renew or FakeRenew(),  # type: ignore[arg-type]
        store=store,
    )


def aged(tok: AuthToken, seconds: float) -> AuthToken:
    return replace(tok, obtained_at=datetime.now(UTC) - timedelta(seconds=seconds))


async def test_restored_token_is_used_without_a_login(transport: Transport) -> None:
    store = FakeStore(Restored(aged(token(3600, n=9), 60)))
    login = FakeLogin()
    events: list[str] = []
    cache = cache_with(transport, store, Clock())
    cache.on_event = events.append
    client = await cache.get("k", login, SETTINGS, None)
    assert repr(client).endswith("token=<set>)")
    assert (login.calls, cache.logins, cache.restores, store.loads) == (0, 0, 1, 1)
    assert store.saved == []  # nothing changed: no write
    assert events == ["restored"]


async def test_miss_logs_in_and_saves_and_store_is_asked_once_per_key(
    transport: Transport,
) -> None:
    store = FakeStore()
    login = FakeLogin(ttl=300)
    cache = cache_with(transport, store, Clock())
    await cache.get("k", login, SETTINGS, None)
    assert (login.calls, store.loads, len(store.saved)) == (1, 1, 1)
    assert store.saved[0].client_token == "tok-1" and store.saved[0].lease_duration == 300
    cache.invalidate("k")  # e.g. a 403: the persisted token is the bad one, don't reload it
    await cache.get("k", login, SETTINGS, None)
    assert (login.calls, store.loads, len(store.saved)) == (2, 1, 2)


async def test_restored_token_past_its_renewal_point_is_renewed_at_once(
    transport: Transport,
) -> None:
    clock = Clock()
    renew = FakeRenew(ttl=3600)
    store = FakeStore(Restored(aged(token(3600, n=9), 3000)))  # renewal point was at 2400 s
    login = FakeLogin()
    cache = cache_with(transport, store, clock, renew)
    await cache.get("k", login, SETTINGS, None)
    assert (login.calls, len(renew.calls), cache.restores) == (0, 1, 1)
    assert len(store.saved) == 1 and store.saved[0].lease_duration == 3600
    # Fresh TTL period: no refresh due for a while.
    clock.now += 2000
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert (login.calls, len(renew.calls)) == (0, 1)


async def test_restored_token_that_cannot_be_renewed_before_expiry_means_a_login(
    transport: Transport,
) -> None:
    renew = FakeRenew()
    renew.fail_with = RuntimeError("token not renewable any more")
    store = FakeStore(Restored(aged(token(3600, n=9), 3500)))  # past the 90 % hard limit
    login = FakeLogin()
    cache = cache_with(transport, store, Clock(), renew)
    await cache.get("k", login, SETTINGS, None)
    assert (login.calls, cache.restores, len(store.saved)) == (1, 0, 1)


async def test_store_that_cannot_answer_blocks_the_login_and_is_asked_again(
    transport: Transport,
) -> None:
    store = FakeStore()
    store.fail_load = TokenStoreUnavailable("api server unreachable")
    login = FakeLogin()
    cache = cache_with(transport, store, Clock())
    with pytest.raises(TokenStoreUnavailable):
        await cache.get("k", login, SETTINGS, None)
    assert login.calls == 0
    store.fail_load = None
    await cache.get("k", login, SETTINGS, None)
    assert (store.loads, login.calls) == (2, 1)


async def test_failed_save_does_not_fail_the_login(transport: Transport) -> None:
    store = FakeStore()
    store.fail_save = RuntimeError("forbidden")
    events: list[str] = []
    cache = cache_with(transport, store, Clock())
    cache.on_event = events.append
    client = await cache.get("k", FakeLogin(), SETTINGS, None)
    assert client.has_token
    assert events == ["login", "save_failed"]


async def test_fresh_token_from_the_store_is_saved_and_renewals_are_saved(
    transport: Transport,
) -> None:
    clock = Clock()
    renew = FakeRenew(ttl=300)
    store = FakeStore(Restored(token(300, n=5), fresh=True))
    login = FakeLogin()
    cache = cache_with(transport, store, clock, renew)
    await cache.get("k", login, SETTINGS, None)
    assert [t.client_token for t in store.saved] == ["tok-5"]
    assert cache.restores == 0
    clock.now += 250  # past 2/3 of 300 s: a background renewal, which is saved too
    await cache.get("k", login, SETTINGS, None)
    await settle()
    assert len(renew.calls) == 1
    assert [t.client_token for t in store.saved] == ["tok-5", "tok-5"]
    assert login.calls == 0
