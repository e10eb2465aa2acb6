"""Build the Helm CLI from its upstream Go module, for the chart tests.

The Helm release is pinned by the committed Go module in `devenv/helm` (go.mod + go.sum), the
same way `devenv/controlplane` pins Kubernetes: the binary is cached under
`~/.cache/vaultbridge/helm-<version>-<pin hash>/`, so changing a pin rebuilds and unchanged
pins reuse it. Nothing is downloaded except Go modules through the module proxy.
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

HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"


def helm_module_dir() -> Path:
    """The Go module that pins Helm (committed in the repo beside `devenv/controlplane`)."""
    override = os.environ.get("VAULTBRIDGE_HELM_MODULE_DIR")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "devenv" / "helm" / "go.mod"
        if candidate.exists():
            return candidate.parent
    return Path.cwd() / "devenv" / "helm"


def helm_version(module_dir: Path) -> str:
    """The pinned Helm release, read from the module's `require` line."""
    text = (module_dir / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?helm\.sh/helm/v\d+\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise DevEnvError("helm build", f"no helm.sh/helm requirement in {module_dir / 'go.mod'}")
    return match.group(1)


def helm_dir(module_dir: Path | None = None) -> Path:
    module_dir = module_dir or helm_module_dir()
    return cache_root() / f"helm-{helm_version(module_dir)}-{pin_hash(module_dir)}"


def ensure_helm(log: Callable[[str], None] | None = None) -> Path:
    """Return the path of the pinned `helm` binary, building it first if needed.

    Blocking (runs `go build`): call it from a thread or at test-session set-up.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    module_dir = helm_module_dir()
    if not (module_dir / "go.mod").exists():
        raise DevEnvError(
            "helm build",
            f"the Go module pinning Helm was not found at {module_dir}; run from a vaultbridge "
            "checkout or set VAULTBRIDGE_HELM_MODULE_DIR",
        )
    version = helm_version(module_dir)
    target = ensure_go_binaries(
        what=f"Helm {version}",
        module_dir=module_dir,
        target=helm_dir(module_dir),
        binaries=["helm"],
        builds=lambda target: [GoBuild([HELM_PACKAGE], str(target / "helm"), _ldflags(module_dir))],
        say=say,
    )
    return target / "helm"


def _client_go_minor(module_dir: Path) -> str:
    match = re.search(r"k8s\.io/client-go v0\.(\d+)\.", (module_dir / "go.mod").read_text())
    if match is None:
        raise DevEnvError("helm build", "no k8s.io/client-go version in the Helm module")
    return match.group(1)


def _ldflags(module_dir: Path) -> str:
    # As Helm's own Makefile does: the release for `helm version`, and the Kubernetes minor
    # of its client-go as the default `.Capabilities.KubeVersion` (else it says v1.20).
    minor = _client_go_minor(module_dir)
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={helm_version(module_dir)}"]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


if __name__ == "__main__":  # `make test` builds it up front, with progress on the terminal
    print(f"Helm: {ensure_helm()}", file=sys.stderr)
