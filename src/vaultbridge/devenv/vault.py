"""Build HashiCorp Vault Community Edition from its Go module, for `--vault-server hashicorp`.

Vault CE is pinned by the committed wrapper module in `devenv/vault` (go.mod + go.sum), built
like the control plane and Helm (`build.ensure_go_binaries`): once, into
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
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .build import GoBuild, ensure_go_binaries, pin_hash
from .errors import DevEnvError
from .paths import cache_root

VAULT_MODULE = "github.com/hashicorp/vault"
_COMPONENT = "vault build"


def vault_module_dir() -> Path:
    """The Go module that pins Vault (`devenv/vault`, or `$VAULTBRIDGE_VAULT_MODULE_DIR`)."""
    override = os.environ.get("VAULTBRIDGE_VAULT_MODULE_DIR")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "devenv" / "vault" / "go.mod"
        if candidate.exists():
            return candidate.parent
    return Path.cwd() / "devenv" / "vault"


def vault_version(module_dir: Path | None = None) -> str:
    """The pinned Vault release, e.g. `v1.21.0`, read from the module's `require` line."""
    module_dir = module_dir or vault_module_dir()
    text = (module_dir / "go.mod").read_text()
    pattern = rf"^\s*(?:require\s+)?{re.escape(VAULT_MODULE)}\s+(v\S+)"
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise DevEnvError(_COMPONENT, f"no {VAULT_MODULE} requirement in {module_dir / 'go.mod'}")
    return match.group(1)


def vault_dir(module_dir: Path | None = None) -> Path:
    """Where the pinned build lives (or will): `<cache>/vault-<version>-<pin hash>/`."""
    module_dir = module_dir or vault_module_dir()
    return cache_root() / f"vault-{vault_version(module_dir)}-{pin_hash(module_dir)}"


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
    target = ensure_go_binaries(
        what=f"HashiCorp Vault {version}",
        module_dir=module_dir,
        target=vault_dir(module_dir),
        binaries=["vault"],
        # A static binary: no C toolchain needed, and nothing of Vault needs cgo on Linux.
        builds=lambda t: [GoBuild([VAULT_MODULE], str(t / "vault"), env=(("CGO_ENABLED", "0"),))],
        say=say,
    )
    return target / "vault"


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
