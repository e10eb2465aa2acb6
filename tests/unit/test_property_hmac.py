"""Properties of the status MAC (`vaultbridge.secrets.hmac`)."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vaultbridge.secrets.hmac import compute_mac, verify_mac

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

mac_keys = st.binary(min_size=16, max_size=48)
data = st.dictionaries(st.text(min_size=1, max_size=12), st.binary(max_size=24), max_size=6)
MAC_FORMAT = re.compile(r"hmac-sha256:[0-9a-f]{64}")


@FAST
@given(mac_keys, data, st.randoms(use_true_random=False))
def test_deterministic_and_independent_of_key_order(
    key: bytes, d: dict[str, bytes], rnd: object
) -> None:
    items = list(d.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    mac = compute_mac(key, d)
    assert MAC_FORMAT.fullmatch(mac)
    assert compute_mac(key, dict(items)) == mac
    assert verify_mac(key, dict(items), mac)


@FAST
@given(mac_keys, data, data)
def test_different_data_different_mac(key: bytes, a: dict[str, bytes], b: dict[str, bytes]) -> None:
    assume(a != b)
    assert compute_mac(key, a) != compute_mac(key, b)
    assert not verify_mac(key, b, compute_mac(key, a))


@FAST
@given(
    mac_keys, st.text(min_size=1, max_size=8), st.binary(min_size=1, max_size=8), st.integers(1, 7)
)
def test_encoding_has_no_ambiguous_boundaries(key: bytes, k: str, v: bytes, cut: int) -> None:
    # Moving bytes between a key and its value, or splitting one entry in two, changes the MAC.
    joined = k.encode() + v
    cut = min(cut, len(joined) - 1)
    left, right = joined[:cut], joined[cut:]
    try:
        shifted = {left.decode(): right}
    except UnicodeDecodeError:
        return
    if shifted != {k: v}:
        assert compute_mac(key, shifted) != compute_mac(key, {k: v})


@FAST
@given(mac_keys, mac_keys, data)
def test_the_key_matters(k1: bytes, k2: bytes, d: dict[str, bytes]) -> None:
    assume(k1 != k2)
    assert compute_mac(k1, d) != compute_mac(k2, d)


@FAST
@given(
    mac_keys,
    data,
    st.dictionaries(st.text(max_size=6), st.text(max_size=6), min_size=1, max_size=3),
)
def test_extra_inputs_are_bound(key: bytes, d: dict[str, bytes], extra: dict[str, str]) -> None:
    assert compute_mac(key, d, extra=extra) != compute_mac(key, d)
    assert compute_mac(key, d, extra={}) == compute_mac(key, d)


@FAST
@given(mac_keys, data, st.text(max_size=80))
def test_anything_else_does_not_verify(key: bytes, d: dict[str, bytes], forged: str) -> None:
    assume(forged != compute_mac(key, d))
    assert not verify_mac(key, d, forged)
    assert not verify_mac(key, d, None)
