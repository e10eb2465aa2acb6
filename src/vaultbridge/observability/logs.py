"""Structured logging: JSON lines (default) or text, with the resource being reconciled.

The resource key travels in a context variable set by the controller worker, so every log
line written during a reconcile names its resource without each call passing it along.
Secret values never reach a logger: they travel in redacted types (`vaultbridge.secrets.redact`).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any

current_resource: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vaultbridge_resource", default=None
)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_second_cache: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC to the millisecond, as ``datetime.isoformat(timespec="milliseconds")``
    writes it; the date and time of the second are formatted once a second."""
    global _second_cache  # noqa: PLW0603 - a one-entry cache
    second = int(created)
    if _second_cache[0] != second:
        text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache = (second, text)
    millis = int((created - second) * 1000)
    return f"{_second_cache[1]}.{millis:03d}+00:00"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        resource = current_resource.get()
        if resource:
            entry["resource"] = resource
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        resource = current_resource.get()
        return f"{line} [{resource}]" if resource else line


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    # No formatter here prints where a call was made, nor thread or process names: logging
    # need not look them up for every record (a stack walk per record; the logging HOWTO's
    # "Optimization" section names these switches). A cold sync logs one line per object.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access and client logs add nothing an operator user needs.
    logging.getLogger("aiohttp").setLevel(max(logging.WARNING, root.level))
