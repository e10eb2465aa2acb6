"""Build HashiCorp Vault Community Edition from its Go module, for `--vault-server hashicorp`.

Vault CE is pinned by the committed wrapper module in `devenv/vault` (go.mod + go.sum), built
like the control plane (see `gomodule`): once, into
`~/.cache/vaultbridge/vault-<version>-<pin hash>/vault`. Vault's own go.mod points `api/`,
`api/auth/*` and `sdk/` at directories of its repository, which a wrapper module ignores: the
build uses the *published* api and sdk versions Vault's go.mod requires (which is why the pin
is v1.21.0: later 1.21.x require an sdk that is not published for them). `CGO_ENABLED=0` and
`-ldflags '-s -w'` give a static, stripped binary.

A cold build compiles ~2,000 packages: about 20 minutes on 2 busy cores (measured figures in
docs/development.md). With the Go build cache warm, a rebuild is a link, about a minute.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .build import run_go_commands
from .errors import DevEnvError
from .gomodule import build_once, cache_dir, find_module_dir, go_binary, required_version

VAULT_MODULE = "github.com/hashicorp/vault"
_COMPONENT = "vault build"


def vault_module_dir() -> Path:
    """The Go module that pins Vault (`devenv/vault`, or `$VAULTBRIDGE_VAULT_MODULE_DIR`)."""
    return find_module_dir("vault", "VAULTBRIDGE_VAULT_MODULE_DIR")


def vault_version(module_dir: Path | None = None) -> str:
    """The pinned Vault release, e.g. `v1.21.0`."""
    return required_version(module_dir or vault_module_dir(), VAULT_MODULE, _COMPONENT)


def vault_dir(module_dir: Path | None = None) -> Path:
    """Where the pinned build lives (or will): `<cache>/vault-<version>-<pin hash>/`."""
    module_dir = module_dir or vault_module_dir()
    return cache_dir("vault", vault_version(module_dir), module_dir)


def ensure_vault(log: Callable[[str], None] | None = None) -> Path:
    """Return the path of the pinned `vault` binary, building it first if needed.

    Blocking (a cold build takes many minutes): call it from `dev up` or a session fixture.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    module_dir = vault_module_dir()
    if not (module_dir / "go.mod").exists():
        raise DevEnvError(
            _COMPONENT,
            f"the Go module pinning HashiCorp Vault was not found at {module_dir}; run from a "
            "vaultbridge checkout or set VAULTBRIDGE_VAULT_MODULE_DIR",
        )
    version = vault_version(module_dir)
    target = vault_dir(module_dir)

    def build() -> None:
        go = go_binary(_COMPONENT, f"once to build HashiCorp Vault {version}")
        _build(go, module_dir, target, version, say)

    build_once(_COMPONENT, target, ("vault",), f"{version}\n", build)
    return target / "vault"


def _build(
    go: str, module_dir: Path, target: Path, version: str, say: Callable[[str], None]
) -> None:
    log_file = target / "build.log"
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=readonly")
    # A static binary: no C toolchain needed, and nothing of Vault needs cgo on Linux.
    env["CGO_ENABLED"] = "0"
    jobs = str(max(1, os.cpu_count() or 1))
    cmd = [
        go, "build", "-v", "-p", jobs, "-trimpath", "-ldflags", "-s -w",
        "-o", str(target / "vault"), VAULT_MODULE,
    ]  # fmt: skip
    say(
        f"Building HashiCorp Vault {version} (Community Edition) from its Go module into "
        f"{target}.\nThis takes about 20 minutes on 2 cores with a cold Go build cache; "
        f"log: {log_file}"
    )
    started = time.monotonic()
    rc = run_go_commands([cmd], module_dir, env, log_file, say)
    if rc != 0:
        raise DevEnvError(_COMPONENT, f"`go build` exited with {rc}", log_file)
    say(f"Built HashiCorp Vault in {(time.monotonic() - started) / 60:.1f} min.")


def main() -> int:
    """`python -m vaultbridge.devenv.vault`: build (once) and print the binary's path."""
    try:
        print(ensure_vault())
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
