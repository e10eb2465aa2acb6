"""includes/excludes: search semantics, order, pattern checks against catastrophic backtracking."""

from __future__ import annotations

import pytest

from vaultbridge.secrets.errors import InvalidRegexError, TransformationError
from vaultbridge.secrets.filters import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    KeyFilter,
    compile_filter,
    compile_pattern,
    filter_keys,
)

DATA = {
    "username": 1,
    "password": 2,
    "db_password": 3,
    "api_key": 4,
    "_raw": 5,
    "tls.crt": 6,
}


def test_no_patterns_keep_everything() -> None:
    assert filter_keys(DATA) == DATA


def test_patterns_search_anywhere_in_the_key() -> None:
    # Go's regexp.MatchString semantics: unanchored.
    assert list(filter_keys(DATA, includes=["pass"])) == ["password", "db_password"]


def test_anchors_restrict_to_whole_key() -> None:
    assert list(filter_keys(DATA, includes=["^password$"])) == ["password"]
    assert list(filter_keys(DATA, includes=["^db_"])) == ["db_password"]


def test_excludes_drop_matching_keys() -> None:
    assert list(filter_keys(DATA, excludes=["^_raw$", r"\.crt$"])) == [
        "username",
        "password",
        "db_password",
        "api_key",
    ]


def test_excludes_apply_before_includes_and_win() -> None:
    kept = filter_keys(DATA, includes=["password", "user"], excludes=["^db_"])
    assert list(kept) == ["username", "password"]
    # A key both included and excluded is dropped.
    assert filter_keys(DATA, includes=["api"], excludes=["key"]) == {}


def test_multiple_includes_are_ored() -> None:
    assert list(filter_keys(DATA, includes=["^api", "^tls"])) == ["api_key", "tls.crt"]


def test_exclude_everything() -> None:
    assert filter_keys(DATA, excludes=[".*"]) == {}


def test_order_is_preserved() -> None:
    data = {"z": 1, "a": 2, "m": 3}
    assert list(filter_keys(data, excludes=["^a$"])) == ["z", "m"]


def test_dot_is_a_regex_dot() -> None:
    assert list(filter_keys({"tls.crt": 1, "tlsXcrt": 2}, includes=[r"^tls\.crt$"])) == ["tls.crt"]
    assert len(filter_keys({"tls.crt": 1, "tlsXcrt": 2}, includes=["^tls.crt$"])) == 2


def test_key_filter_object_is_reusable() -> None:
    key_filter = compile_filter(["a"], ["b"])
    assert isinstance(key_filter, KeyFilter)
    assert key_filter.keeps("a")
    assert not key_filter.keeps("ab")
    assert not key_filter.keeps("c")
    assert key_filter.apply({"a": 1, "ab": 2}) == {"a": 1}


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x", "a{2,1}", "(?P<n>a)(?P<n>b)"])
def test_invalid_regex_names_the_pattern(pattern: str) -> None:
    with pytest.raises(InvalidRegexError) as info:
        compile_filter(includes=[pattern])
    assert info.value.pattern == pattern
    assert repr(pattern) in str(info.value)
    assert info.value.reason == "InvalidRegex"


def test_empty_pattern_is_rejected() -> None:
    with pytest.raises(InvalidRegexError):
        compile_pattern("")


def test_pattern_length_is_limited() -> None:
    compile_pattern("a" * MAX_PATTERN_LENGTH)
    with pytest.raises(InvalidRegexError, match="longer than"):
        compile_pattern("a" * (MAX_PATTERN_LENGTH + 1))


def test_pattern_count_is_limited() -> None:
    compile_filter(includes=["a"] * MAX_PATTERNS)
    with pytest.raises(TransformationError, match="too many includes"):
        compile_filter(includes=["a"] * (MAX_PATTERNS + 1))


# Shapes that make a backtracking engine (Python's `re`) take exponential time on these keys.
# RE2 runs them in linear time and Go's regexp (VSO) accepts them, so they are accepted and
# give the right answer on what used to be the worst case (answers worked out by hand).
A, X, AB = "a" * 253, "x" * 253, "ab" * 126
WORST_KEYS = {A: 1, X: 2, AB: 3}


@pytest.mark.parametrize(
    ("pattern", "kept"),
    [
        ("(a*)*b", {AB}),
        ("(a+)+$", {A}),
        ("(?:a*)*c", set()),
        ("(a|a)*c", set()),
        ("(a|ab)+c", set()),
        ("(x+x+)+y", set()),
        ("(a{1,20}){1,20}$", {A}),
        ("a*a*a*a*c", set()),
        (".*.*.*c", set()),
    ],
)
def test_backtracking_bombs_are_plain_patterns_under_re2(pattern: str, kept: set[str]) -> None:
    assert set(compile_filter(includes=[pattern]).apply(WORST_KEYS)) == kept
    assert set(compile_filter(excludes=[pattern]).apply(WORST_KEYS)) == set(WORST_KEYS) - kept


def test_patterns_are_compiled_by_re2() -> None:
    # The guarantee that matters (time linear in the key) comes from the engine, not from
    # a clock: check that the engine is RE2.
    assert type(compile_pattern("a*b")).__module__.startswith("re2")


def test_program_size_is_bounded() -> None:
    with pytest.raises(InvalidRegexError, match="does not compile"):
        compile_pattern("((a{100}){100}){100}")


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "backreferences"),
        ("a(?=b)", "lookahead"),
        ("(?<!x)a", "lookahead/lookbehind"),
        ("(?P<x>a)?(?(x)b|c)", "conditional"),
        ("(?>a)", "does not compile"),
        ("a++", "does not compile"),
    ],
)
def test_constructs_without_re2_equivalent_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(InvalidRegexError, match=why):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "^password$",
        ".*_key$",
        "^(db|api)_.*",
        "[a-z]+_[0-9]{2,4}",
        "(ab){3}c",
        "(foo|bar)?baz",
        r"^tls\.(crt|key)$",
        "(?i)^USER",
        "x[ab]*y",
        "(?:[a-z][0-9])+",
        "[[:alpha:]]+",
        r"\pL",
    ],
)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    compile_pattern(pattern)


def test_worst_case_keys_filter_correctly() -> None:
    key_filter = compile_filter(includes=["a*a*a*c", ".*.*.*c", "[ab]*[ab]*c"])
    keys = {"a" * 253: 1, "ab" * 126: 2, "a" * 252 + "c": 3}
    assert key_filter.apply(keys) == {"a" * 252 + "c": 3}
