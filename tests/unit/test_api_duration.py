import re

import pytest
from pydantic import BaseModel, ValidationError

from vaultbridge.api.duration import (
    DURATION_PATTERN,
    Duration,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2m0.5s", 120.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),  # micro sign U+00B5
        ("250μs", 0.00025),  # Greek mu U+03BC, also accepted by Go
        ("100ns", 1e-7),
        ("1m1m", 120.0),  # Go adds repeated units
        ("720h", 2_592_000.0),
    ],
)
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "30", "s", "1d", "1 h", " 1h", "1h ", "-5m", "+5m", ".5s", "1.s", "1h-30m", "5M", "1e3s"],
)
def test_parse_duration_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_rejects_overflow_of_go_int64() -> None:
    assert parse_duration("2562047h") == 2562047 * 3600.0  # just under Go's limit
    with pytest.raises(ValueError, match="292 years"):
        parse_duration("2562048h")


def test_schema_pattern_and_parser_agree() -> None:
    pattern = re.compile(DURATION_PATTERN)
    for text in ["0", "1h30m", "500ms", "1.5h", "250µs"]:
        assert pattern.match(text)
    for text in ["1d", "-1s", "30", "1h "]:
        assert not pattern.match(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (45, "45s"), (90, "1m30s"), (5400, "1h30m"), (3661.5, "1h1m1.5s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)


class _Holder(BaseModel):
    timeout: Duration


def test_duration_field_keeps_the_string_and_rejects_junk() -> None:
    assert _Holder.model_validate({"timeout": "1h30m"}).timeout == "1h30m"
    with pytest.raises(ValidationError):
        _Holder.model_validate({"timeout": "90 minutes"})
    with pytest.raises(ValidationError):
        _Holder.model_validate({"timeout": "2562048h"})
