"""HMAC of Secret data: canonical, unambiguous, stable across releases, keyed."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from vaultbridge.secrets.hmac import KEY_BYTES, compute_mac, generate_key, verify_mac
from vaultbridge.secrets.redact import SecretData

KEY = bytes(range(32))


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def test_known_vector_freezes_the_stored_format() -> None:
    # These MACs live in the status of every object; a change here would make every Secret
    # look modified after an upgrade.
    assert compute_mac(KEY, {"password": b"hunter2", "user": b"admin"}) == (
        "hmac-sha256:ab571916e9a643f4a7ad2a3421272acb2155dad960cedc20b6be89b35ac1caac"
    )
    assert compute_mac(KEY, {}, extra={"type": "Opaque"}) == (
        "hmac-sha256:8c63fb3e7c2af1735cd92543217732f0944687efb7012a1b7acea521466002ef"
    )


def test_encoding_matches_the_documented_layout() -> None:
    data = {"b": b"2", "a": b"1"}
    message = b"vaultbridge/secret-data/v1\x00" + _u64(2)
    for key, value in ((b"a", b"1"), (b"b", b"2")):
        message += _u64(len(key)) + key + _u64(len(value)) + value
    message += b"\x00extra\x00" + _u64(1) + _u64(4) + b"type" + _u64(6) + b"Opaque"
    expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert compute_mac(KEY, data, extra={"type": "Opaque"}) == f"hmac-sha256:{expected}"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"a": b"bc"}, {"ab": b"c"}),
        ({"a": b"b", "c": b"d"}, {"a": b"bc", "": b"d"}),
        ({"a": b""}, {}),
        ({"a": b"\x00"}, {"a": b""}),
        ({"k": b"v"}, {"k": b"V"}),
        ({"a": b"1", "b": b"2"}, {"a": b"2", "b": b"1"}),
    ],
)
def test_different_data_gives_different_macs(
    first: dict[str, bytes], second: dict[str, bytes]
) -> None:
    assert compute_mac(KEY, first) != compute_mac(KEY, second)


def test_data_and_extra_do_not_blend() -> None:
    assert compute_mac(KEY, {"type": b"Opaque"}) != compute_mac(KEY, {}, extra={"type": "Opaque"})


def test_order_of_keys_does_not_matter() -> None:
    items = [(f"k{i}", bytes([i])) for i in range(20)]
    assert compute_mac(KEY, dict(items)) == compute_mac(KEY, dict(reversed(items)))


def test_no_extra_equals_empty_extra() -> None:
    assert compute_mac(KEY, {"a": b"1"}) == compute_mac(KEY, {"a": b"1"}, extra={})


def test_extra_is_bound() -> None:
    base = compute_mac(KEY, {"a": b"1"}, extra={"type": "Opaque"})
    assert base != compute_mac(KEY, {"a": b"1"}, extra={"type": "kubernetes.io/tls"})


def test_unicode_keys_are_encoded_as_utf8() -> None:
    assert compute_mac(KEY, {"clé": b"v"}) != compute_mac(KEY, {"cle": b"v"})


def test_key_matters_and_mac_reveals_nothing_plain() -> None:
    data = {"password": b"hunter2"}
    assert compute_mac(KEY, data) != compute_mac(bytes(32), data)
    mac = compute_mac(KEY, data)
    assert mac.startswith("hmac-sha256:")
    assert len(mac) == len("hmac-sha256:") + 64
    assert hashlib.sha256(b"hunter2").hexdigest() not in mac


def test_works_on_secret_data() -> None:
    data = {"a": b"1"}
    assert compute_mac(KEY, SecretData(data)) == compute_mac(KEY, data)


def test_verify() -> None:
    data = {"a": b"1"}
    mac = compute_mac(KEY, data, extra={"x": "y"})
    assert verify_mac(KEY, data, mac, extra={"x": "y"})
    assert not verify_mac(KEY, data, mac)
    assert not verify_mac(KEY, {"a": b"2"}, mac, extra={"x": "y"})
    assert not verify_mac(generate_key(), data, mac, extra={"x": "y"})
    assert not verify_mac(KEY, data, None)
    assert not verify_mac(KEY, data, "")
    assert not verify_mac(KEY, data, "sha256:" + mac.split(":", 1)[1])
    assert not verify_mac(KEY, data, mac.upper())
    assert not verify_mac(KEY, data, "hmac-sha256:ü")


def test_generate_key() -> None:
    first, second = generate_key(), generate_key()
    assert len(first) == KEY_BYTES == 32
    assert first != second


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        compute_mac(b"short", {})


def test_non_bytes_values_are_refused() -> None:
    with pytest.raises(TypeError):
        compute_mac(KEY, {"a": "text"})  # type: ignore[dict-item]
