"""Label selectors in their string form (``kubectl -l``), evaluated locally.

Used for selectors given as operator flags, matched against labels the informers already
hold (no API call). The grammar is Kubernetes': requirements separated by commas, all of
which must hold — ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``
(exists), ``!k`` (does not exist). An empty selector matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

LabelMatcher = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _requirement(text: str) -> LabelMatcher:
    if m := _SET.match(text):
        key, op = m.group(1), m.group(3)
        values = {v.strip() for v in m.group(4).split(",")}
        if not all(re.fullmatch(_VALUE, v) for v in values):
            raise ValueError(f"invalid value in {text.strip()!r}")
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ.match(text):
        key, op, value = m.group(1), m.group(3), m.group(4)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS.match(text):
        negate, key = bool(m.group(1)), m.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise ValueError(f"invalid label selector requirement {text.strip()!r}")


def parse_selector(text: str) -> LabelMatcher:
    """A function telling whether a label set matches ``text``; ``ValueError`` if malformed."""
    if not text.strip():
        return lambda _labels: True
    requirements = [_requirement(part) for part in _split(text)]
    return lambda labels: all(req(labels) for req in requirements)
