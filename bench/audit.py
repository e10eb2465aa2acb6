"""Counting requests from the audit logs: the API server's (by user) and the Vault server's
(OpenBao or HashiCorp Vault) file audit device.

Both logs are JSON lines, so a window is a byte offset taken at its start; the API server
writes its log in batches (at most 1 s late), hence `settle`. The API server also *rotates* its
log at 100 MB (renamed with a timestamp, a new file started — a cold sync of 10,000 writes more
than that): a window remembers its file's inode and, once the path is a new file, reads the
rest of its own (renamed) file and the new one from the start.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class Cursor:
    def __init__(self, path: Path) -> None:
        self.path = path
        st = _stat(path)
        self.offset = st.st_size if st else 0
        self.inode = st.st_ino if st else None

    def entries(self) -> list[dict[str, Any]]:
        return _parse(self._appended()[0])

    def _appended(self) -> tuple[bytes, int | None, int]:
        """The complete lines written since the cursor, and the (inode, offset) after them."""
        st = _stat(self.path)
        if st is None:
            return b"", self.inode, self.offset
        if self.inode is None or st.st_ino == self.inode:
            raw = _complete(_read(self.path, self.offset))
            return raw, st.st_ino, self.offset + len(raw)
        # Rotated: the rest of our own file (complete: rotation happens between batches),
        # then the new file.
        rotated = _rotated(self.path, self.inode)
        head = _complete(_read(rotated, self.offset)) if rotated else b""
        tail = _complete(_read(self.path, 0))
        return head + tail, st.st_ino, len(tail)


class Tail(Cursor):
    """Like Cursor, but each call returns only what was appended since the previous one."""

    def new_entries(self) -> list[dict[str, Any]]:
        raw, self.inode, self.offset = self._appended()
        return _parse(raw)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _read(path: Path, offset: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read()


def _complete(raw: bytes) -> bytes:
    # A batch may be half written: only complete lines count.
    return raw[: raw.rfind(b"\n") + 1]


def _parse(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def _rotated(path: Path, inode: int) -> Path | None:
    """The renamed file that was `path` (same inode), e.g. `audit-2026-12-01T06-41-06.396.log`."""
    for entry in os.scandir(path.parent):
        if entry.is_file() and entry.inode() == inode:
            return Path(entry.path)
    return None


async def settle() -> None:
    await asyncio.sleep(2.5)


@dataclass
class KubeCounts:
    writes: int = 0
    reads: int = 0
    token_requests: int = 0
    writes_by_resource: dict[str, int] = field(default_factory=dict)
    reads_by_resource: dict[str, int] = field(default_factory=dict)
    #: Reads of the synced objects themselves (Secrets and VaultStaticSecrets of the measured
    #: namespace): a read per object would be one on the critical path. The others are the
    #: start-up's (the HMAC key, the VaultAuth's login: its persisted token, ServiceAccount,
    #: the issuer's discovery document) and do not grow with N.
    object_reads: int = 0


_OBJECT_RESOURCES = frozenset({"secrets", "vaultstaticsecrets"})


def kube_requests(
    entries: list[dict[str, Any]], user: str, namespace: str | None = None
) -> KubeCounts:
    counts = KubeCounts()
    by_resource: Counter[str] = Counter()
    reads: Counter[str] = Counter()
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
            reads[f"{verb} {ref.get('resource') or e.get('requestURI', '?')}"] += 1
            if ref.get("namespace") == namespace and ref.get("resource") in _OBJECT_RESOURCES:
                counts.object_reads += 1
    counts.writes_by_resource = dict(sorted(by_resource.items()))
    counts.reads_by_resource = dict(sorted(reads.items()))
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
