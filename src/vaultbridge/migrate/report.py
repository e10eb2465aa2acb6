"""The migration report: one line per input object, as a rich table or JSON, and the exit code.

It names objects, fields and reasons, never values: the report goes to logs of CI pipelines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

from .convert import Outcome, Verdict

EXIT_OK = 0
EXIT_NOT_CONVERTIBLE = 1
EXIT_CANNOT_RUN = 2


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 when everything converted or passed through, 1 when anything could not be converted."""
    return EXIT_NOT_CONVERTIBLE if any(not o.ok for o in outcomes) else EXIT_OK


def summary(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = Counter(str(o.verdict) for o in outcomes)
    return {str(v): counts.get(str(v), 0) for v in Verdict}


def to_json(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {"objects": [o.to_json() for o in outcomes], "summary": summary(outcomes)}


def render_json(outcomes: Sequence[Outcome], stream: IO[str]) -> None:
    json.dump(to_json(outcomes), stream, indent=2)
    stream.write("\n")


_STYLE = {
    Verdict.AS_IS: "green",
    Verdict.CHANGED: "yellow",
    Verdict.FAILED: "bold red",
    Verdict.PASSTHROUGH: "dim",
    Verdict.ADOPTED: "green",
    Verdict.SKIPPED: "dim",
}


def render_table(outcomes: Sequence[Outcome], stream: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="vaultbridge migrate", show_lines=False)
    table.add_column("Source", overflow="fold")
    table.add_column("Kind")
    table.add_column("Object", overflow="fold")
    table.add_column("Result")
    table.add_column("Details", overflow="fold")
    for o in outcomes:
        obj = f"{o.namespace}/{o.name}" if o.namespace else o.name
        details = "\n".join([*o.problems, *o.changes])
        table.add_row(
            # Text objects: object names and reasons are shown literally, never as markup.
            Text(o.source),
            Text(o.kind),
            Text(obj),
            Text(str(o.verdict), style=_STYLE[o.verdict]),
            Text(details),
        )
    console = Console(file=stream, width=160, soft_wrap=False)
    console.print(table)
    counts = summary(outcomes)
    console.print(Text(", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no objects"))
