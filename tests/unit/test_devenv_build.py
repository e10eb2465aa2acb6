"""Progress of the Go builds of the dev environment: done/total and an estimate (pure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vaultbridge.devenv.build import GoBuild, ensure_go_binaries, progress_line
from vaultbridge.devenv.errors import DevEnvError
from vaultbridge.devenv.prometheus import release


def test_progress_says_how_far_and_how_long() -> None:
    assert progress_line(300, 1200, 180.0) == (
        "300/1200 packages (25%), 3.0 min, about 9.0 min left"
    )


def test_progress_without_a_rate_or_a_total() -> None:
    assert progress_line(0, 1200, 30.0) == "0/1200 packages (0%), 0.5 min"
    assert progress_line(1300, 1200, 600.0) == "1200/1200 packages (100%), 10.0 min"
    assert progress_line(42, 0, 60.0) == "42 packages compiled, 1.0 min"


def test_go_build_flags() -> None:
    build = GoBuild(["example.com/cmd/a"], str(Path("/out")) + os.sep, "-s -w", tags="netgo")
    assert build.flags() == ["-trimpath", "-ldflags", "-s -w", "-tags", "netgo"]
    assert GoBuild(["x"], "/out/x").flags() == ["-trimpath", "-ldflags", "-s -w"]


def test_prometheus_release_of_its_module_version() -> None:
    assert release("v0.316.0") == "3.16.0"
    assert release("v0.305.12") == "3.5.12"
    assert release("v2.55.1") == "2.55.1"


def test_a_completed_build_is_reused_without_go(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    for name in ("prometheus", "promtool", ".complete"):
        (target / name).write_text("")

    def never(_target: Path) -> list[GoBuild]:
        raise AssertionError("no build expected")

    found = ensure_go_binaries(
        what="Prometheus",
        module_dir=tmp_path / "no-module",
        target=target,
        binaries=["prometheus", "promtool"],
        builds=never,
        say=lambda _m: None,
    )
    assert found == target


def test_a_missing_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DevEnvError, match="Go module pinning Prometheus was not found"):
        ensure_go_binaries(
            what="Prometheus",
            module_dir=tmp_path / "no-module",
            target=tmp_path / "cache",
            binaries=["prometheus"],
            builds=lambda _t: [],
            say=lambda _m: None,
        )
