"""Types that carry secret values without ever printing them, and a text scrubber.

Values read from Vault travel in `Sensitive` / `SecretData`, whose `repr`, `str` and format
output is a placeholder, so a stray log line, f-string or exception argument shows
`<redacted>` instead of the value. `redact_text` is the second line of defence for messages
we do not compose ourselves (Jinja2, Vault, JSON decoders), which may quote a value.

Any vaultbridge package may import this module.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

REDACTED = "<redacted>"

T = TypeVar("T")


class Sensitive(Generic[T]):
    """A value that must not be printed; `.reveal()` is the one explicit way to read it.

    Equality compares the wrapped values (in constant time for str/bytes) so two readings of
    the same secret compare equal without revealing either.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"Sensitive({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sensitive):
            return NotImplemented
        mine, theirs = self._value, other._value
        if isinstance(mine, str) and isinstance(theirs, str):
            return hmac.compare_digest(mine.encode(), theirs.encode())
        if isinstance(mine, bytes) and isinstance(theirs, bytes):
            return hmac.compare_digest(mine, theirs)
        return bool(mine == theirs)

    def __hash__(self) -> int:
        return hash((Sensitive, self._value))

    def __reduce__(self) -> Any:
        # Pickling would write the value somewhere we do not control.
        raise TypeError("Sensitive values cannot be pickled")


SecretValue = Sensitive[bytes]
"""One value of a Secret, as read from Vault or rendered by a template."""


class SecretData(Mapping[str, bytes]):
    """The data of a Kubernetes Secret (key -> raw bytes), immutable, with a redacted repr.

    It is a read-only `Mapping[str, bytes]`, so writers iterate it like a dict; only its own
    representations hide the values. Keys are not secret and are shown.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, bytes] | None = None) -> None:
        copied: dict[str, bytes] = {}
        for key, value in (data or {}).items():
            if not isinstance(key, str):
                raise TypeError(f"SecretData keys must be str, got {type(key).__name__}")
            if not isinstance(value, bytes):
                raise TypeError(
                    f"SecretData value of key {key!r} must be bytes, got {type(value).__name__}"
                )
            copied[key] = value
        self._data = copied

    def __getitem__(self, key: str) -> bytes:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get_sensitive(self, key: str) -> SecretValue:
        """The value of `key` wrapped so that passing it around cannot print it."""
        return Sensitive(self._data[key])

    def reveal(self) -> dict[str, bytes]:
        """A plain, mutable copy of the data (for the Secret writer and the HMAC)."""
        return dict(self._data)

    @property
    def size(self) -> int:
        """Bytes counted against the Kubernetes Secret size limit (keys plus values)."""
        return sum(len(k.encode()) + len(v) for k, v in self._data.items())

    def __repr__(self) -> str:
        return f"SecretData(keys={sorted(self._data)!r}, values={REDACTED})"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("SecretData cannot be pickled")


def _text_forms(value: str) -> Iterator[str]:
    """The ways a string value can show up inside a message."""
    yield value
    # repr() and JSON escape quotes, backslashes and control characters differently, and
    # both forms appear in messages from Jinja2 and the json module.
    yield repr(value)[1:-1]
    yield json.dumps(value)[1:-1]
    yield json.dumps(value, ensure_ascii=False)[1:-1]


def _leaf_strings(value: object, depth: int = 0) -> Iterator[str]:
    if depth > 64:
        return
    if isinstance(value, Sensitive):
        yield from _leaf_strings(value.reveal(), depth + 1)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", errors="replace")
        yield repr(value)[2:-1]
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaf_strings(item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaf_strings(item, depth + 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def secret_strings(values: Iterable[object]) -> list[str]:
    """Every string form of the given values (nested containers walked) worth scrubbing."""
    found: set[str] = set()
    for value in values:
        for leaf in _leaf_strings(value):
            found.update(_text_forms(leaf))
    return sorted(found, key=len, reverse=True)


def redact_text(
    text: str,
    values: Iterable[object],
    *,
    placeholder: str = REDACTED,
    min_length: int = 2,
) -> str:
    """Replace every occurrence of any of `values` in `text` with `placeholder`.

    `values` may hold str, bytes, `Sensitive`, numbers, or containers of those (walked). Their
    repr- and JSON-escaped forms are scrubbed too. Longer values are replaced first so a value
    containing another is removed whole. Values shorter than `min_length` characters are left
    alone: a one-character "secret" cannot be told apart from ordinary message text, and
    scrubbing every "1" or "a" would make messages unreadable without protecting anything.
    """
    candidates = [s for s in secret_strings(values) if len(s) >= min_length]
    if not candidates or not text:
        return text
    pattern = re.compile("|".join(re.escape(s) for s in candidates))
    return pattern.sub(lambda _match: placeholder, text)
