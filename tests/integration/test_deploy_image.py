"""What the container image is made of, tested without a container engine (none runs here).

The Dockerfile builds a wheel and installs it into a virtualenv that the final stage copies;
this test does the same steps on the host: `pip wheel` into a temp dir, a fresh virtualenv,
and the `vaultbridge` entrypoint from it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from vaultbridge import __version__

from .operator_harness import REPO

pytestmark = pytest.mark.integration


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # As the Dockerfile does: no resolution, the locked hatchling of this venv builds it.
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        wheels,
        REPO,
    )
    (wheel,) = wheels.glob("vaultbridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "vaultbridge/py.typed" in names
    assert "vaultbridge/operator.py" in names
    assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    # Dependencies come from this interpreter's site-packages, appended *after* the fresh
    # venv's own: `vaultbridge` must resolve to the installed wheel, not the source tree.
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    where = _run(python, "-c", "import vaultbridge; print(vaultbridge.__file__)").strip()
    assert where.startswith(str(venv)), where
    entrypoint = venv / "bin" / "vaultbridge"
    assert _run(entrypoint, "version").strip() == __version__
    help_text = _run(entrypoint, "run", "--help")
    for flag in ("--leader-elect", "--resource-selector", "--metrics-bind-address", "--vault-qps"):
        assert flag in help_text


def test_dockerfile_is_multi_stage_non_root_without_build_tools() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert len(stages) >= 2, "multi-stage build expected"
    final = stages[-1]
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim AS final", final)
    user = re.search(r"^USER (\S+)", final, re.MULTILINE)
    assert user is not None and user.group(1).split(":")[0] not in ("0", "root")
    assert "COPY --from=build /opt/vaultbridge /opt/vaultbridge" in final
    for tool in ("gcc", "build-essential", "pip install", "apt-get install"):
        assert tool not in final, f"{tool} in the final stage"
    assert re.search(r'^ENTRYPOINT \["vaultbridge"\]', final, re.MULTILINE)
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!src/"]
