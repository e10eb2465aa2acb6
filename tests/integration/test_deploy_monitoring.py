"""The chart's monitoring objects, rendered by the real `helm`: the PrometheusRule and the
Grafana dashboard ConfigMap appear only when enabled and carry exactly the files in deploy/."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from .deploy_support import CHART, helm, render_chart
from .operator_harness import REPO

pytestmark = pytest.mark.integration

RULES = REPO / "deploy" / "prometheus" / "vaultbridge-rules.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "vaultbridge-dashboard.json"
ENABLED = {
    "metrics": {
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "grafanaDashboard": {"enabled": True, "folder": "Platform"},
    }
}


def test_off_by_default(helm_bin: str) -> None:
    objs = render_chart(helm_bin, "vaultbridge", "vaultbridge-system", {})
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert not [k for k in kinds if k[0] == "PrometheusRule"]
    assert ("ConfigMap", "vaultbridge-dashboard") not in kinds


def test_prometheus_rule_is_the_rules_file(helm_bin: str) -> None:
    objs = render_chart(helm_bin, "vaultbridge", "vaultbridge-system", ENABLED)
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "vaultbridge-system"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "vaultbridge"
    # Alert templates such as {{ $labels.name }} pass through helm untouched.
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    text = json.dumps(rule)
    assert "{{ $labels.kind }}" in text


def test_dashboard_configmap_for_the_grafana_sidecar(helm_bin: str) -> None:
    objs = render_chart(helm_bin, "vaultbridge", "vaultbridge-system", ENABLED)
    cm = next(
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("dashboard")
    )
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Platform"
    assert json.loads(cm["data"]["vaultbridge-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    other = render_chart(
        helm_bin,
        "vaultbridge",
        "vaultbridge-system",
        {
            "metrics": {
                "grafanaDashboard": {
                    "enabled": True,
                    "label": "dashboards.example.com/grafana",
                    "labelValue": "yes",
                    "namespace": "monitoring",
                }
            }
        },
    )
    cm = next(o for o in other if o["kind"] == "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["dashboards.example.com/grafana"] == "yes"
    assert "annotations" not in cm["metadata"]


def test_lints_strict_when_enabled_and_schema_rejects_unknown_keys(helm_bin: str) -> None:
    out = helm(
        helm_bin,
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true",
    )
    assert "0 chart(s) failed" in out
    done = subprocess.run(
        [helm_bin, "template", "x", str(CHART), "--set", "metrics.prometheusRule.bogus=1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "bogus" in done.stderr, done.stderr
