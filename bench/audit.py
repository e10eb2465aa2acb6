"""Counting requests from the audit logs: the API server's (by user) and the Vault server's
(OpenBao or HashiCorp Vault) file audit device.

Both logs are JSON lines that only grow during a run, so a window is a byte offset taken at
its start; the API server writes its log in batches (at most 1 s late), hence `settle`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class Cursor:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            raw = fh.read()
        # A batch may be half written: only complete lines count.
        complete = raw[: raw.rfind(b"\n") + 1]
        out = []
        for line in complete.splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out


class Tail(Cursor):
    """Like Cursor, but each call returns only what was appended since the previous one."""

    def new_entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            raw = fh.read()
        complete = raw[: raw.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


async def settle() -> None:
    await asyncio.sleep(2.5)


@dataclass
class KubeCounts:
    writes: int = 0
    reads: int = 0
    token_requests: int = 0
    writes_by_resource: dict[str, int] = field(default_factory=dict)


def kube_requests(entries: list[dict[str, Any]], user: str) -> KubeCounts:
    counts = KubeCounts()
    by_resource: Counter[str] = Counter()
    for e in entries:
        if e.get("stage") != "ResponseComplete" or (e.get("user") or {}).get("username") != user:
            continue
        verb = e.get("verb", "")
        ref = e.get("objectRef") or {}
        if verb == "create" and ref.get("subresource") == "token":
            # A TokenRequest (for a Vault login) changes nothing stored in the cluster.
            counts.token_requests += 1
        elif verb in WRITE_VERBS:
            counts.writes += 1
            res = ref.get("resource", "?")
            if ref.get("subresource"):
                res += "/" + ref["subresource"]
            by_resource[f"{verb} {res}"] += 1
        elif verb in ("get", "list"):
            counts.reads += 1
    counts.writes_by_resource = dict(sorted(by_resource.items()))
    return counts


@dataclass
class VaultCounts:
    logins: int = 0
    reads: int = 0
    other: int = 0
    read_paths: Counter[str] = field(default_factory=Counter)


def vault_requests(entries: list[dict[str, Any]]) -> VaultCounts:
    """Requests not made with the root token (the bench's own set-up writes use it)."""
    counts = VaultCounts()
    for e in entries:
        if e.get("type") != "request":
            continue
        auth = e.get("auth") or {}
        if auth.get("display_name") == "root":
            continue
        req = e.get("request") or {}
        path = str(req.get("path", ""))
        if (path.startswith("auth/") and path.endswith("/login")) or "/login/" in path:
            counts.logins += 1
        elif req.get("operation") == "read" and path.startswith("secret/data/"):
            counts.reads += 1
            counts.read_paths[path] += 1
        else:
            counts.other += 1
    return counts
