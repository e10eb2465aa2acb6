"""Key filters: `includes` / `excludes` regular expressions over Secret keys.

Semantics (kept compatible with VSO, which uses Go's `regexp.MatchString`):

- patterns use RE2 syntax, the syntax of Go's `regexp` (so a pattern VSO accepts is accepted
  here, and one Go refuses — backreferences, lookarounds, conditionals — is refused here);
- a pattern matches a key when it is found anywhere in the key; anchor with `^`/`$` to match
  whole keys;
- `excludes` are applied first: a key matching any exclude is dropped;
- then, if `includes` is not empty, only keys matching at least one include are kept.

Why RE2 and not Python's `re`: `re` backtracks, so the time a pattern takes depends on its
shape and on the machine (`a*a*a*c` on a 253-character key takes tenths of a second on a slow
core, `(a*)*b` hours). A wall-clock budget then decides whether a spec syncs, and the same
accepted spec syncs on one machine and is refused on a busier one. RE2 (the `google-re2`
package) matches in time linear in the key's length for every pattern it accepts, so every
limit here is a count, and nothing is timed:

- at most `MAX_PATTERN_LENGTH` characters and `MAX_PATTERNS` patterns per list;
- RE2's own bound on the compiled program (`MAX_PROGRAM_MEMORY` bytes per pattern), which
  refuses patterns such as `((a{100}){100}){100}` whose expansion would be huge;
- keys are Kubernetes Secret keys (at most 253 characters), so a match costs at most a few
  hundred steps of the automaton per pattern.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from vaultbridge.secrets.errors import InvalidRegexError, TransformationError

MAX_PATTERN_LENGTH = 512
MAX_PATTERNS = 64
MAX_PROGRAM_MEMORY = 1 << 20
"""RE2's `max_mem` per pattern: bounds the compiled automaton, not the time to match."""

V = TypeVar("V")


class Pattern(Protocol):
    """The part of a compiled RE2 pattern the filters use."""

    pattern: str

    def search(self, text: str) -> Any: ...


@functools.cache
def _re2() -> Any:
    """RE2 and its options, loaded with the first pattern (most specs have none; the agent
    in a pod should not pay for RE2 unless a spec filters keys)."""
    import re2  # type: ignore[import-untyped]

    return re2, _options(re2)


def _options(re2: Any) -> Any:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_MEMORY
    # RE2 logs every refused pattern to stderr by default; errors are reported on the object.
    options.log_errors = False
    return options


# RE2's messages name the construct; these say why it is refused in the terms of the CRD docs.
_REFUSED = (
    (re.compile(r"invalid escape sequence: \\[1-9]"), "backreferences are not supported"),
    (re.compile(r"invalid perl operator: \(\?\("), "conditional groups are not supported"),
    (
        re.compile(r"invalid perl operator: \(\?(=|!|<=|<!)"),
        "lookahead/lookbehind assertions are not supported",
    ),
)
# `(?P<name>...)` or `(?<name>...)`; Go's regexp refuses a name used twice, RE2 does not.
_GROUP_NAME = re.compile(r"\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>")


@dataclass(frozen=True)
class KeyFilter:
    """Compiled, checked includes/excludes, ready to apply to any number of Secrets."""

    includes: tuple[Pattern, ...] = ()
    excludes: tuple[Pattern, ...] = ()

    def keeps(self, key: str) -> bool:
        if any(p.search(key) for p in self.excludes):
            return False
        return not self.includes or any(p.search(key) for p in self.includes)

    def apply(self, data: Mapping[str, V]) -> dict[str, V]:
        """The entries of `data` whose keys pass the filter, in their original order."""
        if not self.includes and not self.excludes:
            return dict(data)
        return {key: value for key, value in data.items() if self.keeps(key)}


def _refusal(message: str) -> str:
    for shape, why in _REFUSED:
        if shape.search(message):
            return why
    return f"does not compile: {message}"


def compile_pattern(pattern: str) -> Pattern:
    """Compile one key pattern (RE2 syntax), or raise `InvalidRegexError` naming it."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidRegexError(str(pattern), "patterns must be non-empty strings")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidRegexError(pattern, f"longer than {MAX_PATTERN_LENGTH} characters")
    if "\x00" in pattern:
        raise InvalidRegexError(pattern, "does not compile: NUL characters are not supported")
    duplicated = [n for n, count in Counter(_GROUP_NAME.findall(pattern)).items() if count > 1]
    if duplicated:
        raise InvalidRegexError(
            pattern, f"does not compile: group name {duplicated[0]!r} is used twice"
        )
    re2, options = _re2()
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as exc:
        text = exc.args[0] if exc.args else exc
        message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        raise InvalidRegexError(pattern, _refusal(message)) from None
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise InvalidRegexError(pattern, "too complex") from None
    return compiled


def compile_patterns(patterns: Sequence[str], *, what: str = "patterns") -> list[Pattern]:
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
