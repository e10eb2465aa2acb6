"""The one error type the dev environment raises: a paragraph a person can act on."""

from __future__ import annotations

from pathlib import Path


class DevEnvError(Exception):
    """A component failed; the message names it, its log file and the log's last lines."""

    def __init__(self, component: str, problem: str, log_file: Path | None = None) -> None:
        self.component = component
        self.log_file = log_file
        parts = [f"{component}: {problem}"]
        if log_file is not None:
            parts.append(f"Log: {log_file}")
            tail = tail_lines(log_file, 15)
            if tail:
                parts.append("Last lines of the log:\n" + tail)
        super().__init__("\n".join(parts))


def tail_lines(path: Path, count: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = data.splitlines()[-count:]
    return "\n".join("    " + line for line in lines)
