"""Vault data -> Secret data: value encoding, `_raw`, key validation, merge, size budget."""

from __future__ import annotations

import json

import pytest

from vaultbridge.secrets.data import (
    MAX_SECRET_DATA_BYTES,
    RAW_KEY,
    check_size,
    merge_sources,
    secret_data_size,
    validate_key,
    value_to_bytes,
    vault_data_to_secret_data,
)
from vaultbridge.secrets.errors import (
    DataError,
    InvalidKeyError,
    KeyCollisionError,
    SecretTooLargeError,
    TransformationError,
)

CANARY = "canary-d41d8cd9-secret"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", b"plain"),
        ("", b""),
        ("ünïcødé ✓ 秘密", "ünïcødé ✓ 秘密".encode()),
        ("line1\nline2\ttab", b"line1\nline2\ttab"),
        ("\x00\x01 control", b"\x00\x01 control"),
        (42, b"42"),
        (-7, b"-7"),
        (3.5, b"3.5"),
        (1e21, b"1e+21"),
        (True, b"true"),
        (False, b"false"),
        (None, b"null"),
        ([], b"[]"),
        ([1, "two", None, True], b'[1,"two",null,true]'),
        ({}, b"{}"),
        ({"b": 1, "a": {"z": [1, 2], "y": "é"}}, '{"a":{"y":"é","z":[1,2]},"b":1}'.encode()),
    ],
)
def test_value_encoding(value: object, expected: bytes) -> None:
    assert value_to_bytes(value) == expected


def test_strings_that_look_like_json_stay_strings() -> None:
    # A string "true" is stored as the 4 bytes, not re-encoded as JSON "\"true\"".
    assert value_to_bytes("true") == b"true"
    assert value_to_bytes('{"a":1}') == b'{"a":1}'


def test_every_top_level_key_plus_raw() -> None:
    data = {"username": "admin", "port": 5432, "tls": True, "tags": ["a", "b"], "extra": None}
    result = vault_data_to_secret_data(data)
    assert result == {
        "username": b"admin",
        "port": b"5432",
        "tls": b"true",
        "tags": b'["a","b"]',
        "extra": b"null",
        RAW_KEY: json.dumps(data, separators=(",", ":"), sort_keys=True).encode(),
    }
    assert json.loads(result[RAW_KEY]) == data


def test_raw_uses_the_full_response_when_given() -> None:
    data = {"password": "p"}
    raw = {"data": data, "metadata": {"version": 4}}
    result = vault_data_to_secret_data(data, raw=raw)
    assert json.loads(result[RAW_KEY]) == raw
    assert result["password"] == b"p"


def test_exclude_raw() -> None:
    assert vault_data_to_secret_data({"a": "1"}, exclude_raw=True) == {"a": b"1"}


def test_raw_is_stable_whatever_the_key_order() -> None:
    first = vault_data_to_secret_data({"a": 1, "b": {"y": 1, "x": 2}})
    second = vault_data_to_secret_data({"b": {"x": 2, "y": 1}, "a": 1})
    assert first == second
    assert list(first) == ["a", "b", RAW_KEY]


def test_empty_data_still_has_raw() -> None:
    assert vault_data_to_secret_data({}) == {RAW_KEY: b"{}"}


def test_vault_key_named_raw_collides_unless_excluded() -> None:
    with pytest.raises(KeyCollisionError) as info:
        vault_data_to_secret_data({"_raw": "mine"})
    assert "excludeRaw" in str(info.value)
    assert vault_data_to_secret_data({"_raw": "mine"}, exclude_raw=True) == {"_raw": b"mine"}


def test_non_finite_numbers_are_a_transformation_error() -> None:
    with pytest.raises(TransformationError):
        vault_data_to_secret_data({"x": float("nan")})


@pytest.mark.parametrize("key", ["a", "A-b_c.d", "0", ".dotfile", "x" * 253, "a..b", "-"])
def test_valid_keys(key: str) -> None:
    validate_key(key)


@pytest.mark.parametrize(
    "key",
    ["", "has space", "slash/key", "colon:key", "ü", ".", "..", "..x", "x" * 254, "tab\t", "a\n"],
)
def test_invalid_keys(key: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        validate_key(key)
    assert info.value.reason == "InvalidKey"
    assert info.value.key == key


def test_invalid_key_error_names_key_not_value() -> None:
    with pytest.raises(InvalidKeyError) as info:
        vault_data_to_secret_data({"bad key": CANARY})
    message = str(info.value)
    assert "'bad key'" in message
    assert CANARY not in message


def test_very_long_bad_key_is_shortened_in_message() -> None:
    with pytest.raises(InvalidKeyError) as info:
        validate_key("!" * 5000)
    assert len(str(info.value)) < 400


def test_merge_applies_prefixes() -> None:
    merged = merge_sources(
        [("db_", {"user": b"u1", "_raw": b"{}"}), ("api_", {"user": b"u2", "_raw": b"[]"})]
    )
    assert merged == {"db_user": b"u1", "db__raw": b"{}", "api_user": b"u2", "api__raw": b"[]"}


def test_merge_without_prefixes_of_disjoint_keys() -> None:
    assert merge_sources([("", {"a": b"1"}), ("", {"b": b"2"})]) == {"a": b"1", "b": b"2"}


def test_merge_collision_names_key_and_both_sources() -> None:
    sources = [("", {"x": b"1"}), ("", {"y": b"2"}), ("", {"x": CANARY.encode()})]
    with pytest.raises(KeyCollisionError) as info:
        merge_sources(sources)
    error = info.value
    assert (error.key, error.first, error.second) == ("x", 0, 2)
    assert error.reason == "KeyCollision"
    assert "source 0" in str(error)
    assert "source 2" in str(error)
    assert CANARY not in str(error)


def test_merge_collision_on_raw_suggests_exclude_raw() -> None:
    sources = [("", {"a": b"1", "_raw": b"{}"}), ("", {"b": b"2", "_raw": b"{}"})]
    with pytest.raises(KeyCollisionError) as info:
        merge_sources(sources)
    assert info.value.key == "_raw"
    assert "excludeRaw" in str(info.value)


def test_merge_collision_created_by_prefix() -> None:
    # "a_" + "b" and "" + "a_b" are the same Secret key.
    with pytest.raises(KeyCollisionError):
        merge_sources([("a_", {"b": b"1"}), ("", {"a_b": b"2"})])


def test_merge_validates_prefixed_keys() -> None:
    with pytest.raises(InvalidKeyError):
        merge_sources([("bad prefix ", {"a": b"1"})])
    with pytest.raises(InvalidKeyError):
        merge_sources([("p" * 250, {"abcd": b"1"})])


def test_size_is_keys_plus_values() -> None:
    data = {"ab": b"123", "é": b"x"}
    assert secret_data_size(data) == 2 + 3 + 2 + 1
    assert check_size(data) == 8


def test_size_limit_reports_size_not_content() -> None:
    value = (CANARY * 100_000).encode()[:MAX_SECRET_DATA_BYTES]
    data = {"big": value}
    with pytest.raises(SecretTooLargeError) as info:
        check_size(data)
    error = info.value
    assert error.size == MAX_SECRET_DATA_BYTES + 3
    assert error.limit == MAX_SECRET_DATA_BYTES
    assert str(error.size) in str(error)
    assert CANARY not in str(error)
    assert error.reason == "SecretTooLarge"
    assert isinstance(error, DataError)


def test_size_exactly_at_limit_passes() -> None:
    check_size({"k": b"x" * (MAX_SECRET_DATA_BYTES - 1)})
    check_size({"k": b"x" * 9}, limit=10)
    with pytest.raises(SecretTooLargeError):
        check_size({"k": b"x" * 10}, limit=10)
