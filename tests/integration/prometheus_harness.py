"""A real Prometheus (built from its Go module, `vaultbridge.devenv.prometheus`) for the tests.

It scrapes the operator processes the tests start, evaluates the shipped alerting rules and
answers PromQL over its HTTP API. Everything listens on 127.0.0.1; the data directory is the
test's temporary directory.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from vaultbridge.devenv import processes

from .operator_harness import REPO

RULES = REPO / "deploy" / "prometheus" / "vaultbridge-rules.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "vaultbridge-dashboard.json"

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _scale_duration(text: str, factor: float) -> str:
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(text))
    return f"{max(1, round(seconds / factor))}s"


def scaled_rules(text: str, factor: float) -> str:
    """The shipped rules with every ``for:`` and every range selector ``[..]`` divided by
    ``factor`` (5m → 30 s at 10), so a test sees alerts fire and resolve in seconds while the
    expressions, labels and thresholds stay exactly the shipped ones."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scale_duration(rule["for"], factor)
            rule["expr"] = re.sub(
                r"\[([0-9a-z]+)\]",
                lambda m: f"[{_scale_duration(m.group(1), factor)}]",
                rule["expr"],
            )
    return yaml.safe_dump(doc, sort_keys=False)


def dashboard_queries(rate_interval: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, Grafana's $__rate_interval filled in."""
    dash = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", rate_interval))
        for panel in dash["panels"]
        for target in panel["targets"]
    ]


class PrometheusServer:
    """One Prometheus process scraping ``targets`` every second, evaluating ``rules`` (rule-file
    text) every second."""

    def __init__(self, binary_dir: Path, workdir: Path, targets: list[str], rules: str) -> None:
        self.binary = binary_dir / "prometheus"
        self.workdir = workdir
        self.targets = targets
        self.rules = rules
        self.port = processes.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 180) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rules.yaml").write_text(self.rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [
                {
                    "job_name": "vaultbridge",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {ready_timeout}s:\n{self.log()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""
        )

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30) as resp:
            body = json.loads(resp.read())
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query: the result vector (raises on a PromQL error)."""
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) with their labels."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def firing(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts()
            if a["state"] == "firing"
            and a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def active(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        """Pending or firing."""
        return [
            a
            for a in self.alerts()
            if a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]
