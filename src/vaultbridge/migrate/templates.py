"""Translate the simple forms of VSO's Go templates into vaultbridge's Jinja2 templates.

VSO renders `text/template` (Go); vaultbridge renders a sandboxed Jinja2. The two languages
differ everywhere except in the commonest use: pasting values of the secret into text, such as
`postgresql://{{ get .Secrets "username" }}:{{ get .Secrets "password" }}@db:5432/app`.
Exactly those lookups are translated; any other action (`range`, `if`, pipelines, functions) makes
the template untranslatable, and the migration reports it for a rewrite by hand rather than
guessing. Guessing wrong would put a wrong credential in a Secret.

Translated forms (with or without Go's `{{-` / `-}}` trim markers, which Jinja2 shares):

- `{{ .Secrets.key }}`, `{{ get .Secrets "key" }}`, `{{ index .Secrets "key" }}` become
  `{{ secrets["key"] }}`;
- the same with `.Labels` / `.Annotations` become `{{ labels["key"] }}` /
  `{{ annotations["key"] }}`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_VARS = {"Secrets": "secrets", "Labels": "labels", "Annotations": "annotations"}

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_FIELD = re.compile(r"^\.(Secrets|Labels|Annotations)\.([A-Za-z_][A-Za-z0-9_]*)$")
_LOOKUP = re.compile(r'^(?:get|index)\s+\.(Secrets|Labels|Annotations)\s+("(?:[^"\\]|\\.)*")$')
# Jinja2 syntax that Go treats as literal text; such text would need escaping, so it is refused.
_JINJA_SYNTAX = re.compile(r"\{%|\{#|%\}|#\}")


@dataclass(frozen=True)
class Translation:
    """Result of translating one template: `text` when it worked, else `problem`."""

    text: str | None
    problem: str | None = None


def translate(go_text: str) -> Translation:
    """The Jinja2 equivalent of `go_text`, or why there is none (never echoes the text)."""
    out: list[str] = []
    pos = 0
    for match in _ACTION.finditer(go_text):
        literal = go_text[pos : match.start()]
        if _JINJA_SYNTAX.search(literal) or "}}" in literal:
            return Translation(None, "the literal text contains Jinja2 syntax ({%, {#)")
        out.append(literal)
        left, body, right = match.group(1), match.group(2).strip(), match.group(3)
        expr = _expression(body)
        if expr is None:
            return Translation(
                None,
                "uses Go template actions other than plain lookups of .Secrets, .Labels or "
                ".Annotations (range, if, pipelines, functions): rewrite it in Jinja2",
            )
        out.append("{{" + left + " " + expr + " " + right + "}}")
        pos = match.end()
    tail = go_text[pos:]
    if _JINJA_SYNTAX.search(tail) or "{{" in tail or "}}" in tail:
        return Translation(None, "the literal text contains Jinja2 syntax ({%, {#) or '{{'")
    out.append(tail)
    return Translation("".join(out))


def _expression(body: str) -> str | None:
    m = _FIELD.match(body)
    if m:
        return f"{_VARS[m.group(1)]}[{json.dumps(m.group(2))}]"
    m = _LOOKUP.match(body)
    if m:
        try:
            key = json.loads(m.group(2))
        except ValueError:
            return None
        if not isinstance(key, str):
            return None
        return f"{_VARS[m.group(1)]}[{json.dumps(key)}]"
    return None
