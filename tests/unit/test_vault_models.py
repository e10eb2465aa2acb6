"""Parsing of Vault envelopes and the redaction of everything that may hold a secret."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vaultbridge.vault import (
    AuthToken,
    BadResponse,
    ConnectionSettings,
    HealthStatus,
    KVSecret,
    LeaseInfo,
    VaultClient,
    VaultResponse,
)
from vaultbridge.vault.connection import FrozenHeaders, Transport

SECRET = "hunter2-very-secret"
TOKEN = "s.ABCDEFtokenvalue"


def shown(obj: object) -> str:
    return repr(obj) + str(obj) + f"{obj}" + f"{obj!r}" + repr([obj]) + repr({"k": obj})


def test_auth_token_hides_client_token() -> None:
    tok = AuthToken.from_auth(
        {
            "client_token": TOKEN,
            "accessor": "acc1",
            "token_policies": ["default", "app"],
            "lease_duration": 3600,
            "renewable": True,
            "entity_id": "ent",
            "token_type": "service",
        },
        warnings=["capped"],
    )
    assert tok.client_token == TOKEN
    assert TOKEN not in shown(tok)
    assert "acc1" in repr(tok)
    assert tok.policies == ("default", "app")
    assert tok.lease_duration == 3600
    assert tok.renewable
    assert tok.warnings == ("capped",)
    assert tok.expires_at == tok.obtained_at + timedelta(seconds=3600)


def test_auth_token_without_ttl_never_expires_and_missing_token_is_bad_response() -> None:
    tok = AuthToken.from_lookup(TOKEN, {"accessor": "a", "policies": ["root"], "ttl": 0})
    assert tok.expires_at is None
    assert tok.client_token == TOKEN
    with pytest.raises(BadResponse):
        AuthToken.from_auth({"accessor": "a"})


def test_kv_secret_repr_shows_shape_not_values() -> None:
    s = KVSecret(
        data={"password": SECRET, "user": "admin"},
        metadata={"version": 7, "created_time": "t"},
        raw={"data": {"password": SECRET}, "metadata": {"version": 7}},
    )
    text = shown(s)
    assert SECRET not in text
    assert "admin" not in text
    assert "2 keys" in text
    assert "version=7" in text
    assert s.version == 7
    assert KVSecret(data={}, metadata=None, raw={}).version is None


def test_vault_response_repr_redacts_data_and_auth() -> None:
    r = VaultResponse.from_body(
        {
            "request_id": "req-1",
            "lease_id": "database/creds/app/xyz",
            "lease_duration": 60,
            "renewable": True,
            "data": {"username": "v-app", "password": SECRET},
            "warnings": ["w"],
            "auth": {"client_token": TOKEN},
        }
    )
    text = shown(r)
    assert SECRET not in text
    assert TOKEN not in text
    assert "req-1" in text
    assert "database/creds/app/xyz" in text
    assert r.data == {"username": "v-app", "password": SECRET}
    assert r.warnings == ("w",)


def test_vault_response_tolerates_nulls_and_rejects_non_objects() -> None:
    r = VaultResponse.from_body({"data": None, "warnings": None, "auth": None})
    assert r.data is None
    assert r.auth is None
    assert r.lease_duration == 0
    with pytest.raises(BadResponse):
        VaultResponse.from_body(["not", "an", "object"])


def test_health_status_usable_only_when_initialised_and_unsealed() -> None:
    ok = HealthStatus.from_body(
        {"initialized": True, "sealed": False, "standby": True, "version": "2.7.2"}
    )
    assert ok.usable
    assert ok.standby
    assert ok.version == "2.7.2"
    assert not HealthStatus.from_body({"initialized": True, "sealed": True}).usable
    assert not HealthStatus.from_body({"initialized": False, "sealed": False}).usable


def test_namespaces_unsupported_only_on_vault_community_edition() -> None:
    base = {"initialized": True, "sealed": False}
    openbao = HealthStatus.from_body(base)  # OpenBao: no `enterprise` field
    assert openbao.enterprise is None and openbao.namespaces_supported
    ent = HealthStatus.from_body({**base, "enterprise": True})
    assert ent.namespaces_supported
    ce = HealthStatus.from_body({**base, "enterprise": False})
    assert ce.enterprise is False and not ce.namespaces_supported
    # Anything but a JSON boolean is "unknown", not "Community Edition".
    assert HealthStatus.from_body({**base, "enterprise": "false"}).namespaces_supported


def test_lease_info_from_renew_and_lookup() -> None:
    r = LeaseInfo.from_renew({"lease_id": "l1", "lease_duration": 30, "renewable": True})
    assert (r.lease_id, r.lease_duration, r.renewable) == ("l1", 30, True)
    lk = LeaseInfo.from_lookup(
        {
            "id": "l1",
            "ttl": 12,
            "renewable": False,
            "issue_time": "a",
            "expire_time": "b",
            "last_renewal": None,
        }
    )
    assert (lk.lease_duration, lk.issue_time, lk.expire_time, lk.last_renewal) == (
        12,
        "a",
        "b",
        None,
    )


def test_connection_settings_are_hashable_normalised_and_hide_header_values() -> None:
    a = ConnectionSettings(
        "https://vault.example:8200/", ca_pem=b"PEM", headers={"X-Proxy": SECRET}
    )
    b = ConnectionSettings("https://vault.example:8200", ca_pem=b"PEM", headers={"X-Proxy": SECRET})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a.address == "https://vault.example:8200"
    assert a.headers["X-Proxy"] == SECRET
    assert SECRET not in repr(a)
    assert "X-Proxy" in repr(a)
    assert "<3 bytes>" in repr(a)
    assert a != ConnectionSettings("https://vault.example:8200", headers={"X-Proxy": "other"})
    assert FrozenHeaders({"a": "1"}) == {"a": "1"}


@pytest.mark.parametrize(
    "address", ["vault:8200", "ftp://vault", "https://", "http://v?x=1", "http://v#f"]
)
def test_connection_settings_reject_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        ConnectionSettings(address)


async def test_client_repr_hides_token() -> None:
    transport = Transport()
    c = VaultClient(transport, ConnectionSettings("http://127.0.0.1:8200"), token=TOKEN)
    assert TOKEN not in shown(c)
    assert "<set>" in repr(c)
    await transport.close()
