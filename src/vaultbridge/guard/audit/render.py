"""Terminal table (rich) and JSON output of an audit report."""

from __future__ import annotations

import json
from typing import IO

from .model import Report

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
}


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n"


def render_table(report: Report, out: IO[str], *, width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if width is None and not out.isatty():
        width = 200  # piped or redirected: wide enough that codes and paths stay whole
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    access = Table(title="Blast radius: who can read which Vault paths", show_lines=False)
    for col in ("namespace", "service account", "role", "policy", "path", "capabilities"):
        access.add_column(col, overflow="fold")
    for row in report.access:
        access.add_row(
            row.namespace,
            row.service_account,
            row.role,
            row.policy,
            row.path,
            ", ".join(row.capabilities),
        )
    if not report.access:
        access.add_row("-", "-", "-", "-", "(no Vault role reaches these namespaces)", "-")
    console.print(access)

    findings = Table(title=f"Findings ({len(report.findings)})", show_lines=True)
    findings.add_column("severity")
    findings.add_column("finding", overflow="fold")
    findings.add_column("subject", overflow="fold")
    findings.add_column("details", overflow="fold", ratio=3)
    findings.add_column("fix", overflow="fold", ratio=2)
    for f in report.findings:
        findings.add_row(
            f"[{SEVERITY_STYLE[f.severity]}]{f.severity}[/]", f.code, f.subject, f.message, f.fix
        )
    console.print(findings)
    if not report.findings:
        console.print("[green]No findings.[/]")
    if report.injected:
        injected = Table(
            title="Delivered into pods (delivery inject: no Secret; one Vault login per pod)"
        )
        for col in ("namespace", "kind", "name", "pods", "paths"):
            injected.add_column(col, overflow="fold")
        for i in report.injected:
            injected.add_row(i.namespace, i.kind, i.name, str(i.pods), ", ".join(i.paths))
        console.print(injected)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", markup=True)
