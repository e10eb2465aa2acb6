"""Go-style duration strings (`30s`, `1h30m`, `500ms`).

VSO manifests and the Kubernetes ecosystem write durations the way Go's `time.ParseDuration`
reads them, so we accept that grammar instead of inventing our own, minus its odd corners
(signs, `.5s`, `1.s`): every value we accept means the same to Go tools. The same regular
expression goes into the CRD schema, so the API server rejects junk before a controller ever
sees it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# Go accepts both the micro sign (U+00B5) and the Greek small letter mu (U+03BC) for
# microseconds. A bare "0" is valid in Go and means zero.
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$"
DURATION_MAX_LENGTH = 64

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_FULL = re.compile(DURATION_PATTERN)
# Longest units first inside the alternation, so "ms" is not read as "m" followed by "s".
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|μs|ms|s|m|h)")

# Go's time.Duration is an int64 of nanoseconds: about 292 years. Anything longer overflows
# in Go-based tools that read the same manifest, so we refuse it too.
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9


def parse_duration(value: str) -> float:
    """Return the number of seconds in a Go-style duration string.

    Raises ValueError for anything `time.ParseDuration` would reject, for negative durations
    (none of our fields has a meaning for them) and for durations that overflow Go's int64
    nanoseconds.
    """
    if not isinstance(value, str) or len(value) > DURATION_MAX_LENGTH or not _FULL.match(value):
        raise ValueError(
            f"invalid duration {value!r}: expected a Go duration such as '30s', '1h30m', '500ms'"
        )
    if value == "0":
        return 0.0
    total = math.fsum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(value))
    if total > MAX_DURATION_SECONDS:
        raise ValueError(f"invalid duration {value!r}: longer than about 292 years")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds as a compact Go-style duration (`1h30m`, `45s`, `250ms`).

    Used where we show a computed delay to users (status messages, logs); parse_duration of the
    result gives back the input to the millisecond.
    """
    if seconds < 0:
        raise ValueError("durations are never negative")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs and millis:
        parts.append(f"{secs}.{millis:03d}".rstrip("0") + "s")
    elif secs:
        parts.append(f"{secs}s")
    elif millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


def _validate(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH),
    AfterValidator(_validate),
]
"""A duration field: kept as the user's string, checked with parse_duration at parse time."""
