"""Reading the migration's input: YAML files, directories, stdin, or a live cluster.

A broken document never stops the others: the stream is split at document markers first and
each document is parsed on its own, so a typo in one object yields one report line. Parse errors
are described by line and problem only; YAML's own messages quote the offending text, which
may be a secret value of a passed-through Secret.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_DOC_START = re.compile(r"^---(?:[ \t].*)?$")
_DOC_END = re.compile(r"^\.\.\.[ \t]*$")
YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Document:
    """One input document: parsed `body`, or `error` when it could not be read or parsed."""

    source: str
    body: Any = None
    error: str | None = None


def split_documents(text: str) -> list[tuple[int, str]]:
    """The documents of a YAML stream as (first line number, text), empty ones left out."""
    docs: list[tuple[int, str]] = []
    current: list[str] = []
    start = 1
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        stripped = line.rstrip("\r\n")
        if _DOC_START.match(stripped) or _DOC_END.match(stripped):
            docs.append((start, "".join(current)))
            current = []
            start = lineno + 1
            rest = stripped[3:].strip() if stripped.startswith("---") else ""
            if rest:  # `--- {inline: doc}`
                current.append(rest + "\n")
                start = lineno
            continue
        current.append(line)
    docs.append((start, "".join(current)))
    return [(n, d) for n, d in docs if d.strip() and not _only_comments(d)]


def _only_comments(text: str) -> bool:
    return all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines())


def parse_stream(text: str, name: str) -> Iterator[Document]:
    """Parse every document of `text`; `name` labels them (`name#index`)."""
    for index, (first_line, chunk) in enumerate(split_documents(text), start=1):
        source = f"{name}#{index}"
        try:
            body = yaml.safe_load(chunk)
        except yaml.YAMLError as exc:
            yield Document(source, error=describe_yaml_error(exc, first_line))
            continue
        except RecursionError:
            yield Document(source, error="broken YAML: nested too deeply")
            continue
        if body is None:
            continue
        yield from _expand_list(body, source)


def _expand_list(body: Any, source: str) -> Iterator[Document]:
    """`kind: List` (and `FooList`, as `kubectl get -o yaml` prints) become their items."""
    if (
        isinstance(body, dict)
        and isinstance(body.get("kind"), str)
        and body["kind"].endswith("List")
        and isinstance(body.get("items"), list)
    ):
        for i, item in enumerate(body["items"]):
            yield Document(f"{source}.items[{i}]", body=item)
        return
    yield Document(source, body=body)


def describe_yaml_error(exc: yaml.YAMLError, first_line: int) -> str:
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"broken YAML: {problem} at line {first_line + mark.line}"
    return f"broken YAML: {problem}"


def read_inputs(paths: list[str]) -> Iterator[Document]:
    """Documents of every path: a file, a directory (its YAML/JSON files, recursively, in name
    order) or `-` for stdin."""
    for raw in paths:
        if raw == "-":
            yield from parse_stream(sys.stdin.read(), "<stdin>")
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in YAML_SUFFIXES
            )
            for file in files:
                yield from _read_file(file)
        else:
            yield from _read_file(path)


def _read_file(path: Path) -> Iterator[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        yield Document(str(path), error=f"cannot read: {reason}")
        return
    yield from parse_stream(text, str(path))
