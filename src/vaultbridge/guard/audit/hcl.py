"""The subset of Vault's policy HCL the audit needs: `path "x" { capabilities = [...] }`.

Vault policies may hold more (`allowed_parameters`, `min_wrapping_ttl`, comments, ...). Those
are skipped, not rejected: the audit is about which paths a policy can read, and a parser that
gives up on an unknown attribute would hide exactly the broad policy it should report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PathRule:
    path: str
    capabilities: tuple[str, ...]

    @property
    def denies(self) -> bool:
        return "deny" in self.capabilities

    @property
    def reads(self) -> bool:
        """Whether the rule lets a token read secrets under the path."""
        return not self.denies and bool({"read", "list", "sudo"} & set(self.capabilities))


class HCLError(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<heredoc><<-?(?P<tag>[A-Za-z_]+)\n.*?\n\s*(?P=tag))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.-]*)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>[{}\[\]=,:])
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise HCLError(f"unexpected character {text[pos]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind in ("ws", "comment"):
            continue
        if kind == "tag":  # pragma: no cover - inner group of heredoc
            kind = "heredoc"
        value = m.group(0)
        if kind == "string":
            value = bytes(value[1:-1], "utf-8").decode("unicode_escape")
        out.append((kind if kind != "heredoc" else "string", value))
    return out


def parse_policy(text: str) -> list[PathRule]:
    """Every `path` block with its capabilities (a block without capabilities gets none)."""
    toks = _tokens(text)
    rules: list[PathRule] = []
    i = 0

    def skip_value(j: int) -> int:
        """Index after the value starting at j (string, number, ident, list or object)."""
        kind, value = toks[j]
        if kind == "punct" and value in ("[", "{"):
            close = "]" if value == "[" else "}"
            depth = 0
            while j < len(toks):
                v = toks[j][1] if toks[j][0] == "punct" else ""
                if v == value:
                    depth += 1
                elif v == close:
                    depth -= 1
                    if depth == 0:
                        return j + 1
                j += 1
            raise HCLError(f"unclosed {value}")
        return j + 1

    while i < len(toks):
        kind, value = toks[i]
        if kind == "ident" and value == "path" and i + 2 < len(toks) and toks[i + 1][0] == "string":
            path = toks[i + 1][1]
            j = i + 2
            if toks[j] == ("punct", "="):
                j += 1
            if toks[j] != ("punct", "{"):
                raise HCLError(f"path {path!r}: expected '{{'")
            j += 1
            caps: list[str] = []
            while j < len(toks) and toks[j] != ("punct", "}"):
                if toks[j][0] in ("ident", "string") and j + 1 < len(toks):
                    attr = toks[j][1]
                    j += 1
                    if toks[j][1] in ("=", ":"):
                        j += 1
                    if attr == "capabilities" and toks[j] == ("punct", "["):
                        j += 1
                        while toks[j] != ("punct", "]"):
                            if toks[j][0] == "string":
                                caps.append(toks[j][1])
                            j += 1
                        j += 1
                    else:
                        j = skip_value(j)
                elif toks[j] == ("punct", ","):
                    j += 1
                else:
                    raise HCLError(f"path {path!r}: unexpected {toks[j][1]!r}")
            if j >= len(toks):
                raise HCLError(f"path {path!r}: unclosed block")
            rules.append(PathRule(path, tuple(caps)))
            i = j + 1
            continue
        i += 1
    return rules


def vault_glob_matches(pattern: str, path: str) -> bool:
    """Vault's own policy path semantics: `+` is exactly one segment, a trailing `*` is a
    prefix match, anything else is literal."""
    prefix = pattern.endswith("*")
    body = pattern[:-1] if prefix else pattern
    regex = "".join("[^/]+" if c == "+" else re.escape(c) for c in body)
    return re.fullmatch(regex + (".*" if prefix else ""), path, re.DOTALL) is not None
