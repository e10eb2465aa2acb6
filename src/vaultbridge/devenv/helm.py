"""Build the Helm CLI from its upstream Go module, for the chart tests.

The Helm release is pinned by the committed Go module in `devenv/helm` (go.mod + go.sum), the
same way `devenv/controlplane` pins Kubernetes: the binary is cached under
`~/.cache/vaultbridge/helm-<version>-<pin hash>/`, so changing a pin rebuilds and unchanged
pins reuse it. Nothing is downloaded except Go modules through the module proxy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import DevEnvError
from .gomodule import build_once, cache_dir, find_module_dir, go_binary, required_version

HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"


def helm_module_dir() -> Path:
    """The Go module that pins Helm (committed in the repo beside `devenv/controlplane`)."""
    return find_module_dir("helm", "VAULTBRIDGE_HELM_MODULE_DIR")


def helm_version(module_dir: Path) -> str:
    """The pinned Helm release, read from the module's `require` line."""
    return required_version(module_dir, "helm.sh/helm/v3", "helm build")


def helm_dir(module_dir: Path | None = None) -> Path:
    module_dir = module_dir or helm_module_dir()
    return cache_dir("helm", helm_version(module_dir), module_dir)


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
    target = helm_dir(module_dir)
    version = helm_version(module_dir)

    def build() -> None:
        go = go_binary("helm build", "once to build Helm")
        _build(go, module_dir, target / "helm", version, say)

    build_once("helm build", target, ("helm",), version + "\n", build)
    return target / "helm"


def _client_go_minor(module_dir: Path) -> str:
    match = re.search(r"k8s\.io/client-go v0\.(\d+)\.", (module_dir / "go.mod").read_text())
    if match is None:
        raise DevEnvError("helm build", "no k8s.io/client-go version in the Helm module")
    return match.group(1)


def _build(
    go: str, module_dir: Path, binary: Path, version: str, say: Callable[[str], None]
) -> None:
    log_file = binary.parent / "build.log"
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=readonly")
    # As Helm's own Makefile does: the release for `helm version`, and the Kubernetes minor
    # of its client-go as the default `.Capabilities.KubeVersion` (else it says v1.20).
    minor = _client_go_minor(module_dir)
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={version}"]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
    ldflags = " ".join(flags)
    cmd = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(binary), HELM_PACKAGE]
    say(f"Building Helm {version} from its Go module into {binary.parent} (log: {log_file})")
    started = time.monotonic()
    with log_file.open("w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        rc = subprocess.run(
            cmd, cwd=module_dir, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    if rc != 0 or not binary.exists():
        raise DevEnvError("helm build", f"`go build` exited with {rc}", log_file)
    say(f"Built Helm in {(time.monotonic() - started) / 60:.1f} min.")
