"""What every pinned Go-module build of the dev environment shares (Kubernetes, Helm, Vault).

A tool is pinned by a small wrapper Go module committed under `devenv/<name>/` (go.mod +
go.sum) and built once into `~/.cache/vaultbridge/<name>-<version>-<pin hash>/`: changing any
pin changes the hash, so it builds into a new directory, while unchanged pins reuse the
binaries. A `.complete` marker is written only after a successful build, and an exclusive
`flock` on `.lock` in that directory makes a second process (another test session, `make
demo`) wait for the first build instead of building into the same directory.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .build import pin_hash
from .errors import DevEnvError
from .paths import cache_root

MARKER = ".complete"


def find_module_dir(name: str, override_env: str) -> Path:
    """`devenv/<name>` of this checkout (or `$<override_env>`), found from this file upward."""
    override = os.environ.get(override_env)
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "devenv" / name / "go.mod"
        if candidate.exists():
            return candidate.parent
    return Path.cwd() / "devenv" / name


def required_version(module_dir: Path, module_path: str, component: str) -> str:
    """The version the wrapper module's go.mod requires of `module_path` (e.g. `v1.21.0`)."""
    text = (module_dir / "go.mod").read_text()
    pattern = rf"^\s*(?:require\s+)?{re.escape(module_path)}\s+(v\S+)"
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise DevEnvError(component, f"no {module_path} requirement in {module_dir / 'go.mod'}")
    return match.group(1)


def cache_dir(prefix: str, version: str, module_dir: Path) -> Path:
    return cache_root() / f"{prefix}-{version}-{pin_hash(module_dir)}"


def go_binary(component: str, why: str) -> str:
    go = shutil.which("go")
    if go is None:
        raise DevEnvError(component, f"the Go toolchain (`go`) is not on PATH; it is needed {why}")
    return go


def is_complete(target: Path, names: tuple[str, ...]) -> bool:
    return (target / MARKER).exists() and all((target / n).exists() for n in names)


def build_once(
    component: str,
    target: Path,
    names: tuple[str, ...],
    marker_text: str,
    build: Callable[[], None],
) -> None:
    """Run `build` unless `target` already holds `names`; serialised by a lock in `target`."""
    if is_complete(target, names):
        return
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(target, names):  # another process built it while we waited
            return
        build()
        missing = [n for n in names if not (target / n).exists()]
        if missing:
            raise DevEnvError(
                component, f"`go build` succeeded but {missing} are missing", target / "build.log"
            )
        (target / MARKER).write_text(marker_text)
