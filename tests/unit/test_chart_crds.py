"""The chart ships the generated CRDs unchanged (Helm installs `crds/` on first install)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "deploy" / "crds"
CHART_CRDS = REPO / "deploy" / "chart" / "crds"
FIX = "cp deploy/crds/*.yaml deploy/chart/crds/ (after python -m vaultbridge.api.crdgen)"


def test_chart_crds_are_the_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in GENERATED.glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert generated, "no generated CRDs"
    assert sorted(shipped) == sorted(generated), f"CRD files differ; run: {FIX}"
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert not stale, f"stale chart CRDs {stale}; run: {FIX}"
