"""Properties of the includes/excludes key filters (`vaultbridge.secrets.filters`)."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultbridge.secrets.errors import DataError, InvalidRegexError
from vaultbridge.secrets.filters import compile_pattern, filter_keys

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.text("abcdefxyz0129-_.", min_size=1, max_size=20)
fragments = st.text("abcxyz019", min_size=1, max_size=3)
patterns = st.one_of(
    fragments.map(re.escape),
    fragments.map(lambda f: "^" + re.escape(f)),
    fragments.map(lambda f: re.escape(f) + "$"),
    fragments.map(lambda f: f"^{re.escape(f)}.*$"),
    st.sampled_from(["[0-9]+", "^[a-c]", "x{2}", "_", "\\."]),
)


@FAST
@given(
    st.dictionaries(keys, st.integers(), max_size=12),
    st.lists(patterns, max_size=3),
    st.lists(patterns, max_size=3),
)
def test_excludes_first_then_includes(
    data: dict[str, int], includes: list[str], excludes: list[str]
) -> None:
    kept = filter_keys(data, includes=includes, excludes=excludes)

    def wanted(key: str) -> bool:
        if any(re.search(p, key) for p in excludes):
            return False
        return not includes or any(re.search(p, key) for p in includes)

    assert kept == {k: v for k, v in data.items() if wanted(k)}


@FAST
@given(st.dictionaries(keys, st.integers(), max_size=12), st.lists(patterns, max_size=3))
def test_filtering_is_idempotent(data: dict[str, int], excludes: list[str]) -> None:
    once = filter_keys(data, excludes=excludes)
    assert filter_keys(once, excludes=excludes) == once


@FAST
@given(st.text(max_size=40))
def test_any_pattern_text_compiles_or_is_refused_cleanly(pattern: str) -> None:
    # Whatever a user types, the result is a compiled pattern or a DataError naming it:
    # never an unexpected exception that would crash a reconcile.
    try:
        compiled = compile_pattern(pattern)
    except InvalidRegexError as exc:
        assert str(exc).startswith("pattern ")
    except DataError:
        pass
    else:
        compiled.search("a" * 253)


@FAST
@given(
    st.sampled_from(["(a+)+", "(a*)*b", "(a|aa)*", "(x+x+)+y", "(\\w+)*$"]),
    fragments,
    st.lists(st.text("abxy019", max_size=12), max_size=8),
)
def test_backtracking_shapes_are_accepted_and_agree_with_re(
    shape: str, suffix: str, keys: list[str]
) -> None:
    # RE2 accepts what Go's regexp accepts and searches with the same meaning as `re`; on
    # short keys (cheap even for a backtracker) both engines must agree exactly.
    pattern = shape + re.escape(suffix)
    compiled = compile_pattern(pattern)
    for key in keys:
        assert bool(compiled.search(key)) == bool(re.search(pattern, key)), (pattern, key)
