"""Build Prometheus and promtool from their upstream Go module, for the alerting tests.

The release is pinned by the committed Go module in `devenv/prometheus` (go.mod + go.sum), like
`devenv/helm` pins Helm: the binaries are cached under
`~/.cache/vaultbridge/prometheus-<version>-<pin hash>/`, so changing a pin rebuilds and
unchanged pins reuse them. Nothing is downloaded except Go modules through the module proxy.

Built with Prometheus' own `remove_all_sd` tag (no cloud service discovery: the tests scrape
static targets) — that drops the largest packages (cloud SDKs) from the build — and without
`builtinassets`: the web UI is not embedded (the module ships no built UI); the tests use the
HTTP API only.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .build import GoBuild, ensure_go_binaries, pin_hash
from .errors import DevEnvError
from .paths import cache_root

MODULE = "github.com/prometheus/prometheus"
TAGS = "remove_all_sd"
PACKAGES = {"prometheus": f"{MODULE}/cmd/prometheus", "promtool": f"{MODULE}/cmd/promtool"}


def prometheus_module_dir() -> Path:
    """The Go module that pins Prometheus (committed in the repo beside `devenv/helm`)."""
    override = os.environ.get("VAULTBRIDGE_PROMETHEUS_MODULE_DIR")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "devenv" / "prometheus" / "go.mod"
        if candidate.exists():
            return candidate.parent
    return Path.cwd() / "devenv" / "prometheus"


def module_version(module_dir: Path) -> str:
    """The pinned module version (v0.316.0 is Prometheus 3.16.0)."""
    text = (module_dir / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?github\.com/prometheus/prometheus\s+(v\S+)", text, re.M)
    if match is None:
        raise DevEnvError("prometheus build", f"no {MODULE} requirement in {module_dir}/go.mod")
    return match.group(1)


def release(module_version: str) -> str:
    """Prometheus' release number for its Go module version: v0.316.0 → 3.16.0."""
    match = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)", module_version)
    if match is None:
        return module_version.lstrip("v")
    return f"{match.group(1)}.{int(match.group(2))}.{match.group(3)}"


def prometheus_dir(module_dir: Path | None = None) -> Path:
    module_dir = module_dir or prometheus_module_dir()
    return cache_root() / f"prometheus-{module_version(module_dir)}-{pin_hash(module_dir)}"


def _ldflags(version: str) -> str:
    pkg = "github.com/prometheus/common/version"
    return " ".join(["-s", "-w", f"-X {pkg}.Version={version}", f"-X {pkg}.Branch=vaultbridge"])


def ensure_prometheus(log: Callable[[str], None] | None = None) -> Path:
    """Return the directory holding the pinned `prometheus` and `promtool`, building them
    first if needed (blocking: call it at test-session set-up or from a thread)."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    module_dir = prometheus_module_dir()
    if not (module_dir / "go.mod").exists():
        raise DevEnvError(
            "prometheus build",
            f"the Go module pinning Prometheus was not found at {module_dir}; run from a "
            "vaultbridge checkout or set VAULTBRIDGE_PROMETHEUS_MODULE_DIR",
        )
    version = release(module_version(module_dir))
    return ensure_go_binaries(
        what=f"Prometheus {version}",
        module_dir=module_dir,
        target=prometheus_dir(module_dir),
        binaries=list(PACKAGES),
        builds=lambda target: [
            GoBuild(list(PACKAGES.values()), str(target) + os.sep, _ldflags(version), TAGS)
        ],
        say=say,
    )


def built_prometheus() -> Path | None:
    """The cached build of the pinned release, or None when it was not built yet (no build)."""
    module_dir = prometheus_module_dir()
    if not (module_dir / "go.mod").exists():
        return None
    target = prometheus_dir(module_dir)
    complete = (target / ".complete").exists() and all((target / b).exists() for b in PACKAGES)
    return target if complete else None


if __name__ == "__main__":  # `make test` builds it up front, with progress on the terminal
    print(f"Prometheus and promtool: {ensure_prometheus()}", file=sys.stderr)
