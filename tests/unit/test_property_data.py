"""Properties of destination-data building (`vaultbridge.secrets.data`), checked by hypothesis.

Examples prove what the authors thought of; these generate Vault-shaped data (nested JSON,
unicode, odd keys) and check the rules hold for all of it: conversion is lossless and
independent of key order, merges never overwrite silently, the size check counts exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultbridge.secrets.data import (
    RAW_KEY,
    check_size,
    merge_sources,
    secret_data_size,
    validate_key,
    vault_data_to_secret_data,
)
from vaultbridge.secrets.errors import InvalidKeyError, KeyCollisionError, SecretTooLargeError

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
keys = st.text(KEY_ALPHABET, min_size=1, max_size=40).filter(
    lambda k: k not in (".", RAW_KEY) and not k.startswith("..")
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
vault_data = st.dictionaries(keys, json_values, max_size=8)


@FAST
@given(vault_data)
def test_conversion_is_lossless(data: dict[str, Any]) -> None:
    out = vault_data_to_secret_data(data)
    assert set(out) == set(data) | {RAW_KEY}
    for key, value in data.items():
        if isinstance(value, str):
            assert out[key] == value.encode("utf-8")
        else:
            assert json.loads(out[key]) == value
    assert json.loads(out[RAW_KEY]) == data


@FAST
@given(vault_data, st.randoms(use_true_random=False))
def test_conversion_ignores_the_order_vault_sent_the_keys_in(
    data: dict[str, Any], rnd: Any
) -> None:
    items = list(data.items())
    rnd.shuffle(items)
    assert vault_data_to_secret_data(dict(items)) == vault_data_to_secret_data(data)


@FAST
@given(vault_data)
def test_exclude_raw_drops_only_raw(data: dict[str, Any]) -> None:
    with_raw = vault_data_to_secret_data(data)
    without = vault_data_to_secret_data(data, exclude_raw=True)
    assert without == {k: v for k, v in with_raw.items() if k != RAW_KEY}


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from(["a_", "b_", "c_", "d_"]), vault_data),
        max_size=4,
        unique_by=lambda t: t[0],
    )
)
def test_merge_with_distinct_prefixes_keeps_every_key(
    sources: list[tuple[str, dict[str, Any]]],
) -> None:
    converted = [(p, vault_data_to_secret_data(d, exclude_raw=True)) for p, d in sources]
    merged = merge_sources(converted)
    assert len(merged) == sum(len(d) for _, d in converted)
    for prefix, data in converted:
        for key, value in data.items():
            assert merged[prefix + key] == value


@FAST
@given(vault_data.filter(bool), vault_data)
def test_merge_never_overwrites_a_key(first: dict[str, Any], second: dict[str, Any]) -> None:
    shared = next(iter(first))
    second = {**second, shared: "other"}
    a = vault_data_to_secret_data(first, exclude_raw=True)
    b = vault_data_to_secret_data(second, exclude_raw=True)
    with pytest.raises(KeyCollisionError) as exc:
        merge_sources([("", a), ("", b)])
    assert exc.value.key in set(a) & set(b)


@FAST
@given(st.dictionaries(keys, st.binary(max_size=64), max_size=10), st.integers(0, 2000))
def test_size_check_counts_keys_and_values_exactly(data: dict[str, bytes], limit: int) -> None:
    size = sum(len(k.encode()) + len(v) for k, v in data.items())
    assert secret_data_size(data) == size
    if size > limit:
        with pytest.raises(SecretTooLargeError):
            check_size(data, limit)
    else:
        assert check_size(data, limit) == size


VALID_KEY = re.compile(r"[-._a-zA-Z0-9]+")


@FAST
@given(st.text(max_size=260))
def test_key_validation_matches_the_kubernetes_rule(key: str) -> None:
    expected = (
        bool(VALID_KEY.fullmatch(key))
        and len(key) <= 253
        and key not in (".", "..")
        and not key.startswith("..")
    )
    try:
        validate_key(key)
    except InvalidKeyError as exc:
        assert not expected
        assert "not a valid Secret data key" in str(exc)
    else:
        assert expected
