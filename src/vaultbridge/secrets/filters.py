"""Key filters: `includes` / `excludes` regular expressions over Secret keys.

Semantics (kept compatible with VSO, whose Go `regexp.MatchString` searches):

- a pattern matches a key when `re.search` finds it anywhere in the key; anchor with `^`/`$`
  to match whole keys;
- `excludes` are applied first: a key matching any exclude is dropped;
- then, if `includes` is not empty, only keys matching at least one include are kept.

Python's `re` backtracks, unlike Go's RE2, so a hostile pattern such as `(a*)*b` could pin a
CPU for hours on a 253-character key. Every pattern is therefore checked before use:

- at most `MAX_PATTERN_LENGTH` characters and `MAX_PATTERNS` patterns per list;
- no backreferences, lookarounds or conditionals (RE2, and so VSO, has none either);
- a repeated part (`*`, `+`, `{m,n}` with n > 1) may only repeat a single character, a
  character class or a fixed sequence of those: no nested repetition, no alternation under
  repetition (`(a|ab)*` must be written differently, `[ab]*` is fine);
- at most `MAX_OPEN_REPEATS` repeats whose range is wide (unbounded or more than 8).

With those rules a match on a key of at most 253 characters costs at most milliseconds; the
whole filtering step also runs under a wall-clock budget as a last resort.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from vaultbridge.secrets.errors import InvalidRegexError, TransformationError

MAX_PATTERN_LENGTH = 512
MAX_PATTERNS = 64
MAX_OPEN_REPEATS = 3
_WIDE_REPEAT = 8
FILTER_TIME_BUDGET_SECONDS = 1.0

# The parser behind `re` is the only exact way to see a pattern's structure. It is a private
# module, so it is reached dynamically and treated as untyped.
_sre_parser: Any = importlib.import_module("re._parser")
_MAXREPEAT: Any = importlib.import_module("re._constants").MAXREPEAT

_SINGLE_CHAR_OPS = {"LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY", "RANGE", "NEGATE"}
_REPEAT_OPS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_FORBIDDEN_OPS = {
    "GROUPREF": "backreferences are not supported",
    "GROUPREF_EXISTS": "conditional groups are not supported",
    "GROUPREF_IGNORE": "backreferences are not supported",
    "ASSERT": "lookahead/lookbehind assertions are not supported",
    "ASSERT_NOT": "lookahead/lookbehind assertions are not supported",
}

V = TypeVar("V")


@dataclass(frozen=True)
class KeyFilter:
    """Compiled, checked includes/excludes, ready to apply to any number of Secrets."""

    includes: tuple[re.Pattern[str], ...] = ()
    excludes: tuple[re.Pattern[str], ...] = ()

    def keeps(self, key: str) -> bool:
        if any(p.search(key) for p in self.excludes):
            return False
        return not self.includes or any(p.search(key) for p in self.includes)

    def apply(
        self, data: Mapping[str, V], *, time_budget: float = FILTER_TIME_BUDGET_SECONDS
    ) -> dict[str, V]:
        """The entries of `data` whose keys pass the filter, in their original order."""
        if not self.includes and not self.excludes:
            return dict(data)
        deadline = time.monotonic() + time_budget
        kept: dict[str, V] = {}
        for key, value in data.items():
            if time.monotonic() > deadline:
                raise TransformationError(
                    f"the includes/excludes patterns took more than {time_budget:g}s; simplify them"
                )
            if self.keeps(key):
                kept[key] = value
        return kept


def _walk(items: Iterable[tuple[Any, Any]], pattern: str, state: list[int]) -> None:
    for op, arg in items:
        name = str(op)
        if name in _FORBIDDEN_OPS:
            raise InvalidRegexError(pattern, _FORBIDDEN_OPS[name])
        if name in _REPEAT_OPS:
            low, high, body = arg
            if high is _MAXREPEAT or high - low > _WIDE_REPEAT:
                state[0] += 1
                if state[0] > MAX_OPEN_REPEATS:
                    raise InvalidRegexError(
                        pattern,
                        f"more than {MAX_OPEN_REPEATS} open-ended repetitions "
                        "(each *, + or wide {m,n} counts)",
                    )
            if high is _MAXREPEAT or high > 1:
                _check_repeat_body(body, pattern)
            _walk(body, pattern, state)
        elif name == "SUBPATTERN":
            _walk(arg[-1], pattern, state)
        elif name == "ATOMIC_GROUP":
            _walk(arg, pattern, state)
        elif name == "BRANCH":
            for alternative in arg[1]:
                _walk(alternative, pattern, state)


def _check_repeat_body(body: Iterable[tuple[Any, Any]], pattern: str) -> None:
    for op, arg in body:
        name = str(op)
        if name in _SINGLE_CHAR_OPS or name == "AT":
            continue
        if name == "SUBPATTERN":
            _check_repeat_body(arg[-1], pattern)
            continue
        if name in _REPEAT_OPS:
            low, high, _inner = arg
            if high is not _MAXREPEAT and high == low:
                _check_repeat_body(_inner, pattern)  # a fixed count, like (ab){3}
                continue
            raise InvalidRegexError(
                pattern, "a repetition inside a repetition can take exponential time"
            )
        if name == "BRANCH":
            raise InvalidRegexError(
                pattern,
                "an alternation inside a repetition can take exponential time; "
                "use a character class such as [ab]* instead",
            )
        raise InvalidRegexError(pattern, f"{name.lower()} inside a repetition is not supported")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile one key pattern, or raise `InvalidRegexError` naming it."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidRegexError(str(pattern), "patterns must be non-empty strings")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidRegexError(pattern, f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        parsed = _sre_parser.parse(pattern)
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidRegexError(pattern, f"does not compile: {exc}") from None
    except (OverflowError, RecursionError):
        raise InvalidRegexError(pattern, "too complex") from None
    _walk(parsed.data, pattern, [0])
    return compiled


def compile_patterns(patterns: Sequence[str], *, what: str = "patterns") -> list[re.Pattern[str]]:
    if len(patterns) > MAX_PATTERNS:
        raise TransformationError(f"too many {what}: {len(patterns)} (at most {MAX_PATTERNS})")
    return [compile_pattern(p) for p in patterns]


def compile_filter(includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> KeyFilter:
    """Check and compile includes/excludes (see the module docstring for what is refused)."""
    return KeyFilter(
        includes=tuple(compile_patterns(includes, what="includes")),
        excludes=tuple(compile_patterns(excludes, what="excludes")),
    )


def filter_keys(
    data: Mapping[str, V], *, includes: Sequence[str] = (), excludes: Sequence[str] = ()
) -> dict[str, V]:
    """Excludes first, then includes (when any); see the module docstring."""
    return compile_filter(includes, excludes).apply(data)
