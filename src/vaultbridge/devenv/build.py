"""Build kube-apiserver, kube-controller-manager, kubectl and etcd from upstream Go modules.

The versions are pinned by the committed Go module in `devenv/controlplane` (go.mod + go.sum).
Binaries are cached under `~/.cache/vaultbridge/k8s-<version>-<pin hash>/`, so a change of
any pin produces a new directory and a rebuild, while unchanged pins reuse the binaries.
A cold build takes several minutes on 2 cores; progress is printed while it runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import DevEnvError
from .paths import ETCD_VERSION, K8S_VERSION, cache_root, controlplane_module_dir

BINARIES: dict[str, str] = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    # etcd's server module root is its `main` package.
    "etcd": "go.etcd.io/etcd/server/v3",
}

_MARKER = ".complete"


def _ldflags() -> str:
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={K8S_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def pin_hash(module_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module_dir / name).read_bytes())
    return digest.hexdigest()[:12]


def bin_dir(module_dir: Path | None = None) -> Path:
    module_dir = module_dir or controlplane_module_dir()
    return cache_root() / f"k8s-{K8S_VERSION}-{pin_hash(module_dir)}"


def binaries_present(directory: Path) -> bool:
    return (directory / _MARKER).exists() and all((directory / b).exists() for b in BINARIES)


def ensure_binaries(log: Callable[[str], None] | None = None) -> Path:
    """Return the directory with the four binaries, building them first if needed."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    module_dir = controlplane_module_dir()
    if not (module_dir / "go.mod").exists():
        raise DevEnvError(
            "control-plane build",
            f"the Go module pinning Kubernetes was not found at {module_dir}; run from a "
            "vaultbridge checkout or set VAULTBRIDGE_CONTROLPLANE_DIR",
        )
    target = bin_dir(module_dir)
    if binaries_present(target):
        return target
    go = shutil.which("go")
    if go is None:
        raise DevEnvError(
            "control-plane build",
            "the Go toolchain (`go`, 1.26 or newer) is not on PATH; it is needed once to build "
            f"Kubernetes {K8S_VERSION} and etcd {ETCD_VERSION} from their Go modules",
        )
    target.mkdir(parents=True, exist_ok=True)
    lock_path = target / ".lock"
    with lock_path.open("w") as lock:
        # Two test sessions (or a test run and `make demo`) must not build into one directory.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binaries_present(target):
            return target
        _build(go, module_dir, target, say)
        missing = [b for b in BINARIES if not (target / b).exists()]
        if missing:
            raise DevEnvError(
                "control-plane build",
                f"`go build` succeeded but {missing} are missing",
                target / "build.log",
            )
        (target / _MARKER).write_text(f"{K8S_VERSION} etcd {ETCD_VERSION}\n")
    return target


def _build(go: str, module_dir: Path, target: Path, say: Callable[[str], None]) -> None:
    log_file = target / "build.log"
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=readonly")
    say(
        f"Building Kubernetes {K8S_VERSION} (kube-apiserver, kube-controller-manager, kubectl) "
        f"and etcd {ETCD_VERSION} from Go modules into {target}.\n"
        f"This takes several minutes on a cold cache; log: {log_file}"
    )
    started = time.monotonic()
    jobs = str(max(1, os.cpu_count() or 1))
    common = [go, "build", "-v", "-p", jobs, "-trimpath", "-ldflags", _ldflags()]
    k8s = [pkg for name, pkg in BINARIES.items() if name != "etcd"]
    # `go build -o DIR/` names each binary after its package directory, which for etcd's
    # module root is "v3": etcd gets an explicit output file instead.
    commands = [
        [*common, "-o", str(target) + os.sep, *k8s],
        [*common, "-o", str(target / "etcd"), BINARIES["etcd"]],
    ]
    rc = run_go_commands(commands, module_dir, env, log_file, say)
    if rc != 0:
        raise DevEnvError("control-plane build", f"`go build` exited with {rc}", log_file)
    say(f"Built the control plane in {(time.monotonic() - started) / 60:.1f} min.")


def run_go_commands(
    commands: list[list[str]],
    module_dir: Path,
    env: dict[str, str],
    log_file: Path,
    say: Callable[[str], None],
) -> int:
    """Run `go build -v` commands one after another into `log_file`, printing progress.

    Shared by every pinned Go-module build (control plane, Vault). Returns the first non-zero
    exit code, or 0.
    """
    started = time.monotonic()
    rc = 0
    with log_file.open("w") as out:
        stop = threading.Event()

        def progress() -> None:
            while not stop.wait(20):
                lines = log_file.read_text(errors="replace").count("\n")
                minutes = (time.monotonic() - started) / 60
                say(f"  ... still building: {lines} packages compiled, {minutes:.1f} min")

        ticker = threading.Thread(target=progress, daemon=True)
        ticker.start()
        try:
            for cmd in commands:
                out.write("$ " + " ".join(cmd) + "\n")
                out.flush()
                proc = subprocess.Popen(
                    cmd, cwd=module_dir, env=env, stdout=out, stderr=subprocess.STDOUT
                )
                rc = proc.wait()
                if rc != 0:
                    break
        finally:
            stop.set()
    return rc
