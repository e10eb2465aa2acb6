"""Build kube-apiserver, kube-controller-manager, kubectl and etcd from upstream Go modules.

The versions are pinned by the committed Go module in `devenv/controlplane` (go.mod + go.sum).
Binaries are cached under `~/.cache/vaultbridge/k8s-<version>-<pin hash>/`, so a change of
any pin produces a new directory and a rebuild, while unchanged pins reuse the binaries.
A cold build takes several minutes on 2 cores; progress (packages done/total and an
estimate) is printed while it runs. `build_go_packages` and `ensure_go_binaries` are the
shared helpers the other Go builds of the dev environment (Helm, Prometheus) use too.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    if shutil.which("go") is None:
        raise DevEnvError(
            "control-plane build",
            "the Go toolchain (`go`, 1.26 or newer) is not on PATH; it is needed once to build "
            f"Kubernetes {K8S_VERSION} and etcd {ETCD_VERSION} from their Go modules",
        )
    return ensure_go_binaries(
        what=f"Kubernetes {K8S_VERSION} and etcd {ETCD_VERSION}",
        module_dir=module_dir,
        target=target,
        binaries=list(BINARIES),
        builds=_builds,
        say=say,
    )


def _builds(target: Path) -> list[GoBuild]:
    k8s = [pkg for name, pkg in BINARIES.items() if name != "etcd"]
    # `go build -o DIR/` names each binary after its package directory, which for etcd's
    # module root is "v3": etcd gets an explicit output file instead.
    return [
        GoBuild(k8s, str(target) + os.sep, _ldflags()),
        GoBuild([BINARIES["etcd"]], str(target / "etcd"), _ldflags()),
    ]


# -- building Go packages with progress -----------------------------------------------------
#
# The one helper every Go build of the dev environment goes through (control plane, Helm,
# Prometheus, ...): it counts up front how many packages `go build` will compile, then prints
# "done/total" and an estimate while it runs, so a cold build on 2 cores says how far it is.


@dataclass(frozen=True)
class GoBuild:
    """One `go build` command: these packages, linked into ``output``.

    ``output`` is a file for one main package, or a directory ending in ``os.sep`` for several
    (each binary is then named after its package directory).
    """

    packages: list[str]
    output: str
    ldflags: str = "-s -w"
    tags: str = ""

    def flags(self) -> list[str]:
        flags = ["-trimpath", "-ldflags", self.ldflags]
        return [*flags, "-tags", self.tags] if self.tags else flags


def build_go_packages(
    go: str,
    module_dir: Path,
    builds: Sequence[GoBuild],
    *,
    log_file: Path,
    what: str,
    say: Callable[[str], None],
    interval: float = 20.0,
) -> None:
    """Run ``builds`` in ``module_dir`` (GOFLAGS=-mod=readonly), printing progress every
    ``interval`` seconds: packages compiled out of the packages to compile, and an estimate.

    Raises ``DevEnvError`` (with the log) when a build fails.
    """
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=readonly")
    # A package two builds share is compiled once (the Go build cache): count the union.
    total = len(set().union(*(packages_to_build(go, module_dir, b, env) for b in builds)))
    say(
        f"Building {what} from Go modules: {total} packages to compile "
        f"(log: {log_file}). A cold build takes minutes on 2 cores."
    )
    started = time.monotonic()
    jobs = str(max(1, os.cpu_count() or 1))
    rc = 0
    with log_file.open("w") as out:
        stop = threading.Event()

        def progress() -> None:
            while not stop.wait(interval):
                # `go build -v` prints one line per package it compiles (and we one per command).
                done = max(0, log_file.read_text(errors="replace").count("\n") - len(builds))
                say("  ... " + progress_line(done, total, time.monotonic() - started))

        ticker = threading.Thread(target=progress, daemon=True)
        ticker.start()
        try:
            for build in builds:
                cmd = [go, "build", "-v", "-p", jobs, *build.flags(), "-o", build.output]
                cmd += build.packages
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
    if rc != 0:
        raise DevEnvError(f"{what} build", f"`go build` exited with {rc}", log_file)
    say(f"Built {what} in {(time.monotonic() - started) / 60:.1f} min.")


def packages_to_build(go: str, module_dir: Path, build: GoBuild, env: dict[str, str]) -> set[str]:
    """The packages `go build` will compile for ``build``: the stale ones among its
    dependencies (`go list -deps`, same flags), so a warm Go build cache counts as done.

    Empty when `go list` fails; the build then reports the error itself.
    """
    cmd = [go, "list", "-deps", *build.flags(), "-f", "{{if .Stale}}{{.ImportPath}}{{end}}"]
    proc = subprocess.run(
        [*cmd, *build.packages],
        cwd=module_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return set()
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def progress_line(done: int, total: int, elapsed: float) -> str:
    """``"312/1212 packages (26%), 3.1 min, about 8.9 min left"``: pure, for the ticker."""
    minutes = elapsed / 60
    if total <= 0:
        return f"{done} packages compiled, {minutes:.1f} min"
    done = min(done, total)
    text = f"{done}/{total} packages ({100 * done // total}%), {minutes:.1f} min"
    if done == 0 or done >= total:
        return text
    left = (total - done) * elapsed / done / 60
    return f"{text}, about {left:.1f} min left"


def ensure_go_binaries(
    *,
    what: str,
    module_dir: Path,
    target: Path,
    binaries: Sequence[str],
    builds: Callable[[Path], Sequence[GoBuild]],
    say: Callable[[str], None],
) -> Path:
    """Return ``target`` holding ``binaries``, building them first unless a completed build is
    cached there. ``builds(target)`` says what to build. A file lock keeps two sessions from
    building into one directory at once; the one that waited reuses the other's result.
    """

    def complete() -> bool:
        return (target / _MARKER).exists() and all((target / b).exists() for b in binaries)

    if complete():
        return target
    if not (module_dir / "go.mod").exists():
        raise DevEnvError(
            f"{what} build",
            f"the Go module pinning {what} was not found at {module_dir}; run from a "
            "vaultbridge checkout",
        )
    go = shutil.which("go")
    if go is None:
        raise DevEnvError(
            f"{what} build",
            f"the Go toolchain (`go`) is not on PATH; it is needed once to build {what}",
        )
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():
            return target
        build_go_packages(
            go, module_dir, builds(target), log_file=target / "build.log", what=what, say=say
        )
        missing = [b for b in binaries if not (target / b).exists()]
        if missing:
            raise DevEnvError(
                f"{what} build",
                f"`go build` succeeded but {missing} are missing",
                target / "build.log",
            )
        (target / _MARKER).write_text(what + "\n")
    return target
