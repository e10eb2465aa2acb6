"""The pod-file delivery target: one object's built data written into its directory.

Guarantees, stated up front:

- **Atomic as a set**: the files live in a version directory (`.vaultbridge-v-*`), and the
  directory holds, per name, a symlink `name -> .vaultbridge-data/name` and one symlink
  `.vaultbridge-data -> <current version>`. An update writes a whole new version directory
  (fsynced), then renames a new `.vaultbridge-data` link over the old one: one rename switches
  every file at once, as Kubernetes' own projected and Secret volumes do with `..data`. A
  reader sees each file old or new, never partial; a reader that resolves `.vaultbridge-data`
  once (or reads one file, or reads after the link's rename event) sees one consistent set:
  never a new username with an old password. Two plain opens may still straddle a switch, as
  with any Kubernetes volume.
- **Only on change**: when no content changed nothing is touched (no new version, no inotify
  event). When one file changes, the others are hard links to their previous inode (the same
  file, not rewritten) where the filesystem allows it, else written again with the same bytes.
- **Contained**: a name that could leave the directory (empty, `.`, `..`, `/`, `\\`, NUL) is
  refused before anything is written; so are names starting with `.vaultbridge` (the agent's
  own version directories, links, temporary and state files).
- **Complete**: names that disappeared from the data lose their link after the switch (with
  `template`, only the rendered file is kept). The version before the current one is kept
  until the next switch, so a reader that resolved the old link a moment before the switch
  still finds its files; older versions and leftovers of an interrupted write are removed.
- Values never reach a log or an exception: errors name keys and paths only.

Blocking file I/O: the agent calls `write_files` through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RESERVED_PREFIX = ".vaultbridge"
"""Names the agent keeps for itself (versions, links, temporary and state files)."""
DATA_LINK = f"{RESERVED_PREFIX}-data"
"""The one symlink whose rename switches the whole set: `.vaultbridge-data -> <version>`."""
VERSION_PREFIX = f"{RESERVED_PREFIX}-v-"
"""Version directories holding the files themselves."""
_TMP_PREFIX = f"{RESERVED_PREFIX}-tmp-"


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
    """Names whose content changed (or that are new)."""
    removed: tuple[str, ...]
    """Names removed (their key disappeared)."""

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


_written: dict[tuple[Path, str], bytes] = {}
"""Digest of what this process last wrote per (directory, name): after a chown to the pod's
user the agent may no longer read its own 0400 files, yet must not rewrite them on every
refresh."""


def _digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def _link_target(name: str) -> str:
    # Relative, so the link resolves wherever the volume is mounted (the app's mount path is
    # not the agent's).
    return f"{DATA_LINK}/{name}"


def _is_our_link(directory: Path, name: str) -> bool:
    """Whether `name` is already the link into the switched set (not missing, not a plain file
    of an older layout)."""
    try:
        return os.readlink(directory / name) == _link_target(name)
    except OSError:
        return False


def _current_version(directory: Path) -> Path | None:
    try:
        target = os.readlink(directory / DATA_LINK)
    except OSError:
        return None
    version = directory / target
    return version if version.is_dir() else None


def _same_content(directory: Path, version: Path | None, name: str, content: bytes) -> bool:
    """Whether `name` already reads `content` through its link in the current version."""
    if version is None or not _is_our_link(directory, name):
        return False
    try:
        size = (version / name).stat().st_size
    except OSError:
        return False
    if size != len(content):
        return False
    if _written.get((directory, name)) == _digest(content):
        return True
    try:
        with (version / name).open("rb") as f:
            return f.read(len(content) + 1) == content
    except OSError:
        return False


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


def _write(path: Path, content: bytes, mode: int, owner: int | None, shown_as: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fchmod(f.fileno(), mode)
        if owner is not None:
            _chown(f.fileno(), owner, shown_as)
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_with_symlink(path: Path, target: str) -> None:
    """Make `path` a symlink to `target` in one rename (whatever `path` was before)."""
    tmp = path.parent / f"{_TMP_PREFIX}link-{os.urandom(6).hex()}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _build_version(
    directory: Path,
    files: Mapping[str, bytes],
    current: Path | None,
    unchanged: set[str],
    *,
    mode: int,
    owner: int | None,
) -> Path:
    """A complete, fsynced, not yet visible version directory holding `files`."""
    version = Path(tempfile.mkdtemp(dir=directory, prefix=VERSION_PREFIX))
    try:
        # Traversable by the app's user; the files themselves carry `mode` (0400 by default).
        os.chmod(version, 0o755)  # noqa: S103 - a directory; the app's user must traverse it
        for name, content in files.items():
            if current is not None and name in unchanged:
                with contextlib.suppress(OSError):
                    # The same inode: an unchanged file is not rewritten (its mtime stays).
                    os.link(current / name, version / name)
                    continue
            _write(version / name, content, mode, owner, directory / name)
        _fsync_dir(version)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    return version


def _remove_stale(directory: Path, keep: set[str]) -> None:
    """Drop version directories and temporary entries but `keep` (current and previous)."""
    for entry in os.listdir(directory):
        path = directory / entry
        if entry.startswith(VERSION_PREFIX) and entry not in keep:
            shutil.rmtree(path, ignore_errors=True)
        elif entry.startswith(_TMP_PREFIX):  # a link an interrupted switch left behind
            with contextlib.suppress(OSError):
                path.unlink()


def write_files(
    directory: Path,
    files: Mapping[str, bytes],
    *,
    mode: int = 0o400,
    owner: int | None = None,
) -> WriteResult:
    """Make `directory` show exactly `files` (name → content) besides the agent's own entries.

    All names are checked before the first write, so a bad name changes nothing.
    """
    for name in files:
        check_name(name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    current = _current_version(directory)
    unchanged = {n for n, c in files.items() if _same_content(directory, current, n, c)}
    vanished = sorted(
        entry
        for entry in os.listdir(directory)
        if entry not in files
        and not entry.startswith(RESERVED_PREFIX)
        and ((directory / entry).is_symlink() or (directory / entry).is_file())
    )
    if len(unchanged) == len(files) and not vanished:
        return WriteResult((), ())

    version = _build_version(directory, files, current, unchanged, mode=mode, owner=owner)
    # The switch: from here every link resolves into the new version, all names at once.
    _replace_with_symlink(directory / DATA_LINK, version.name)
    for name in files:
        # A changed file whose link is already in place needs nothing more: the switch above
        # was its update. Only a new name (or a plain file of an older layout) gets its link.
        if name not in unchanged and not _is_our_link(directory, name):
            _replace_with_symlink(directory / name, _link_target(name))
        _written[(directory, name)] = _digest(files[name])
    for name in vanished:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
        _written.pop((directory, name), None)
    keep = {version.name} | ({current.name} if current is not None else set())
    _remove_stale(directory, keep)
    _fsync_dir(directory)
    return WriteResult(tuple(n for n in files if n not in unchanged), tuple(vanished))
