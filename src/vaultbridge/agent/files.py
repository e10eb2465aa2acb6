"""The pod-file delivery target: one object's built data written into its directory.

Guarantees, stated up front:

- **Atomic per file**: every file is written to a temporary file in the same directory,
  flushed to disk (fsync), given its mode (and owner), then renamed over the old one; a reader
  sees the old content or the new, never a partial file. All changed files are prepared before
  the first rename, so the set changes within a few renames; it is not atomic as a set (an app
  that needs several values consistent uses `file.template`, one file). The directory is
  fsynced after the renames.
- **Only on change**: a file whose content is already what would be written is not touched
  (its mtime stays, no inotify event, no rename).
- **Contained**: a name that could leave the directory (empty, `.`, `..`, `/`, `\\`, NUL) is
  refused before anything is written; so are names starting with `.vaultbridge` (the agent's
  own temporary and state files).
- **Complete**: files of keys that disappeared from the data are removed after the new files
  are in place (with `template`, only the rendered file is kept).
- Values never reach a log or an exception: errors name keys and paths only.

Blocking file I/O: the agent calls `write_files` through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RESERVED_PREFIX = ".vaultbridge"
"""Names the agent keeps for itself (temporary files, the state file)."""


class UnsafeName(ValueError):
    """A file name that could write outside the object's directory."""


def check_name(name: str) -> str:
    """`name` if it is one plain file name, else raise `UnsafeName` (the name is not a value:
    keys are Secret keys, already limited to `[-._a-zA-Z0-9]`; this is the second fence)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise UnsafeName(f"file name {name!r} is not a plain name inside the directory")
    if name.startswith(RESERVED_PREFIX):
        raise UnsafeName(f"file name {name!r} is reserved for the agent ({RESERVED_PREFIX}*)")
    return name


@dataclass(frozen=True)
class WriteResult:
    written: tuple[str, ...]
    """Names rewritten (content changed or new)."""
    removed: tuple[str, ...]
    """Names removed (their key disappeared)."""

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


_written: dict[Path, bytes] = {}
"""Digest of what this process last wrote per path: after a chown to the pod's user the agent
may no longer read its own 0400 files, yet must not rewrite them on every refresh."""


def _digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def _same_content(path: Path, content: bytes) -> bool:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size != len(content):
        return False
    if _written.get(path) == _digest(content):
        return True
    try:
        with path.open("rb") as f:
            return f.read(len(content) + 1) == content
    except OSError:
        return False


def _prepare(path: Path, content: bytes, mode: int, owner: int | None) -> str:
    """A temporary file next to `path` holding `content`, on disk (fsync), with its mode and
    owner: renaming it over `path` is the whole update."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{RESERVED_PREFIX}-tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner is not None:
                _chown(f.fileno(), owner, path)
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


_chown_refused: set[Path] = set()


def _chown(fd: int, owner: int, path: Path) -> None:
    try:
        os.fchown(fd, owner, -1)
    except PermissionError:
        # The agent runs without CAP_CHOWN (the usual, restricted pod security): the files
        # stay the agent's; said once per file, the pod's fsGroup or a shared runAsUser is
        # the fix (docs/security.md).
        if path not in _chown_refused:
            _chown_refused.add(path)
            log.warning("cannot chown %s to uid %d: not permitted; leaving the owner", path, owner)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_files(
    directory: Path,
    files: Mapping[str, bytes],
    *,
    mode: int = 0o400,
    owner: int | None = None,
) -> WriteResult:
    """Make `directory` hold exactly `files` (name → content) besides the agent's own files.

    All names are checked before the first write, so a bad name changes nothing.
    """
    for name in files:
        check_name(name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    # Every new file is written and synced first, then all are renamed in one quick loop: a
    # reader sees each file old or new, and the window in which some files of the set are new
    # and others old is a few renames long, not a few fsyncs (a consistent set across files
    # needs `file.template`: one file).
    prepared: list[tuple[str, str]] = []
    try:
        for name, content in files.items():
            path = directory / name
            if not _same_content(path, content):
                prepared.append((name, _prepare(path, content, mode, owner)))
    except BaseException:
        for _, tmp in prepared:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for name, tmp in prepared:
        os.replace(tmp, directory / name)
        _written[directory / name] = _digest(files[name])
    written = [name for name, _ in prepared]
    removed = []
    for entry in sorted(os.listdir(directory)):
        if entry in files or entry.startswith(RESERVED_PREFIX):
            continue
        path = directory / entry
        if path.is_file() and not path.is_symlink():
            path.unlink()
            _written.pop(path, None)
            removed.append(entry)
    if written or removed:
        _fsync_dir(directory)
    return WriteResult(tuple(written), tuple(removed))
