"""Typed errors of the destination-data path.

Every message here is shown to users (status conditions, events), so it names keys, patterns,
template names, line numbers and sizes, never a value read from Vault. `reason` is a
CamelCase word ready for a Kubernetes condition `reason`.
"""

from __future__ import annotations

from typing import ClassVar

#: Longest stretch of user-provided text (key, pattern, name) quoted in a message; keeps
#: conditions readable when a CR holds something huge.
_MAX_QUOTED = 120


def quote(text: str) -> str:
    """Quote user-provided text for a message, shortened so one bad key cannot flood a status."""
    if len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 3] + "..."
    return repr(text)


class DataError(Exception):
    """Base of every error raised while building destination data."""

    reason: ClassVar[str] = "TransformationError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransformationError(DataError):
    """The transformation (templates, references, filters) cannot be applied as written."""

    reason = "TransformationError"


class TemplateError(TransformationError):
    """A template does not compile, fails while rendering, or exceeds its budget.

    `template` is the Secret key the template renders (None when a source template is checked
    on its own); `source_template` is set when the failing line is inside a source template;
    `line` is the template line when known.
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None,
        line: int | None = None,
        source_template: str | None = None,
    ) -> None:
        parts = []
        if template is not None:
            parts.append(f"template {quote(template)}")
        if source_template is not None:
            parts.append(f"{'in ' if parts else ''}source template {quote(source_template)}")
        where = ", ".join(parts) or "template"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {message}")
        self.template = template
        self.line = line
        self.source_template = source_template
        self.detail = message


class KeyCollisionError(DataError):
    """Two sources (or a source and a generated key) produce the same Secret key."""

    reason = "KeyCollision"

    def __init__(self, key: str, first: int, second: int, *, hint: str = "") -> None:
        message = f"key {quote(key)} is produced by source {first} and by source {second}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)
        self.key = key
        self.first = first
        self.second = second


class InvalidKeyError(DataError):
    """A key cannot be a Kubernetes Secret data key."""

    reason = "InvalidKey"

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"key {quote(key)} is not a valid Secret data key: {why}")
        self.key = key


class InvalidRegexError(DataError):
    """An includes/excludes pattern does not compile (RE2 syntax) or is too large."""

    reason = "InvalidRegex"

    def __init__(self, pattern: str, why: str) -> None:
        super().__init__(f"pattern {quote(pattern)} is not usable: {why}")
        self.pattern = pattern


class SecretTooLargeError(DataError):
    """The destination data exceeds the size budget of a Kubernetes Secret."""

    reason = "SecretTooLarge"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the Secret data would be {size} bytes, over the limit of {limit} bytes "
            "(keys plus values)"
        )
        self.size = size
        self.limit = limit
