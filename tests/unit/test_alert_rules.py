"""The alerting rules and the Grafana dashboard: one source each, real metrics, promtool-checked.

`promtool check rules` and `promtool test rules` (deploy/prometheus/vaultbridge-rules.test.yaml,
at least one firing case per alert) run with the promtool that `make test` builds from the
pinned Go module (`make tools`); tests/integration/test_faults_monitoring.py proves the rules
and every dashboard query against a real Prometheus scraping a running operator.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaultbridge.devenv.prometheus import built_prometheus

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "vaultbridge-rules.yaml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "vaultbridge-rules.test.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "vaultbridge-dashboard.json"
CHART_FILES = REPO / "deploy" / "chart" / "files"
OPERATIONS = REPO / "docs" / "operations.md"


def alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


def documented_metrics() -> set[str]:
    section = OPERATIONS.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(vaultbridge_[a-z_]+)` \|", section, re.MULTILINE))


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(vaultbridge_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def promtool() -> Path:
    built = built_prometheus()
    if built is None:
        pytest.skip("promtool is not built yet: `make tools` (part of `make test`) builds it")
    return built / "promtool"


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{argv[1:]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_chart_embeds_identical_copies() -> None:
    for source in (RULES, DASHBOARD):
        copy = CHART_FILES / source.name
        assert copy.read_bytes() == source.read_bytes(), f"cp {source} {copy}"


def test_every_alert_is_complete_and_uses_exported_metrics() -> None:
    exported = documented_metrics()
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)) >= 15
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        for name in used:
            assert name in exported or f"{name}_total" in exported, (rule["alert"], name)


def test_every_dashboard_query_uses_exported_metrics() -> None:
    exported = documented_metrics()
    queries = dashboard_queries()
    assert len(queries) >= 12
    for expr in queries:
        for name in metric_names(expr):
            assert name in exported or f"{name}_total" in exported, (expr, name)


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    fired = {
        check["alertname"]
        for case in tests["tests"]
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alerts()} <= fired


def test_operations_doc_lists_every_alert() -> None:
    section = OPERATIONS.read_text().split("## Alerts", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(Vaultbridge[A-Za-z]+)` \|", section, re.MULTILINE))
    assert listed == {rule["alert"] for rule in alerts()}


def test_promtool_checks_the_rules() -> None:
    out = run(promtool(), "check", "rules", RULES)
    assert f"SUCCESS: {len(alerts())} rules found" in out, out


def test_promtool_unit_tests_of_every_alert() -> None:
    out = run(promtool(), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert "SUCCESS" in out, out


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Grafana's $__rate_interval becomes 5m; each query then is a recording rule promtool
    parses (offline PromQL syntax check; the integration test runs them for real)."""
    rules = [
        {"record": f"vaultbridge:dashboard_query_{i}", "expr": q.replace("$__rate_interval", "5m")}
        for i, q in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run(promtool(), "check", "rules", path)
    assert f"SUCCESS: {len(rules)} rules found" in out, out
