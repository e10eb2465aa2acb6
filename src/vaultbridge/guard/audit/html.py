"""A self-contained HTML page: summary, findings, and the namespace → role → policy → path graph
as inline SVG laid out here (four columns, one node per distinct name, curved edges). No
scripts or styles from elsewhere: the page must open from a file on an air-gapped laptop.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .model import AccessRow, Report, severity_rank

COLUMNS = ("namespace", "role", "policy", "path")
COL_X = (20, 290, 560, 830)
NODE_W = 240
NODE_H = 28
GAP = 12
TOP = 50
COLORS = {"critical": "#b00020", "high": "#d32f2f", "medium": "#f57c00", "low": "#0288d1"}


@dataclass(frozen=True)
class _Node:
    column: int
    label: str
    index: int

    @property
    def x(self) -> int:
        return COL_X[self.column]

    @property
    def y(self) -> int:
        return TOP + self.index * (NODE_H + GAP)

    @property
    def node_id(self) -> str:
        safe = "".join(c if c.isalnum() else "-" for c in self.label)
        return f"{COLUMNS[self.column]}-{safe}"


def _flagged(report: Report) -> dict[tuple[int, str], str]:
    """(column, label) → worst severity of the findings naming that node."""
    worst: dict[tuple[int, str], str] = {}

    def mark(column: int, label: str, severity: str) -> None:
        old = worst.get((column, label))
        if old is None or severity_rank(severity) > severity_rank(old):
            worst[(column, label)] = severity

    for f in report.findings:
        if f.code.startswith("ROLE_"):
            for r in f.roles:
                mark(1, r, f.severity)
        elif f.code == "POLICY_SPANS_ENVIRONMENTS":
            for p in f.policies:
                mark(2, p, f.severity)
        elif f.code == "CROSS_NAMESPACE_READ" and f.namespaces:
            mark(0, f.namespaces[0], f.severity)
    return worst


def _graph(rows: list[AccessRow], flagged: dict[tuple[int, str], str]) -> str:
    labels: list[list[str]] = [[], [], [], []]
    edges: set[tuple[tuple[int, str], tuple[int, str]]] = set()
    for row in rows:
        chain = (row.namespace, row.role, row.policy, row.path)
        for col, label in enumerate(chain):
            if label not in labels[col]:
                labels[col].append(label)
        for col in range(3):
            edges.add(((col, chain[col]), (col + 1, chain[col + 1])))
    nodes = {
        (col, label): _Node(col, label, i)
        for col, names in enumerate(labels)
        for i, label in enumerate(sorted(names))
    }
    height = TOP + max((len(n) for n in labels), default=1) * (NODE_H + GAP) + 20
    width = COL_X[-1] + NODE_W + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="namespace to path graph">'
    ]
    for col, title in enumerate(("Namespace", "Vault role", "Vault policy", "Vault path")):
        out.append(f'<text class="col" x="{COL_X[col]}" y="28">{title}</text>')
    for src, dst in sorted(edges):
        a, b = nodes[src], nodes[dst]
        x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
        x2, y2 = b.x, b.y + NODE_H // 2
        mid = (x1 + x2) // 2
        hot = src in flagged or dst in flagged
        out.append(
            f'<path class="edge{" hot" if hot else ""}" '
            f'd="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>'
        )
    for key, node in sorted(nodes.items()):
        severity = flagged.get(key)
        cls = f"node {COLUMNS[node.column]}" + (f" finding {severity}" if severity else "")
        color = COLORS.get(severity or "", "#455a64")
        label = node.label if len(node.label) <= 34 else node.label[:31] + "..."
        title = node.label + (f" ({severity} finding)" if severity else "")
        out.append(
            f'<g class="{cls}" id="{html.escape(node.node_id)}" '
            f'data-label="{html.escape(node.label)}">'
            f"<title>{html.escape(title)}</title>"
            f'<rect x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="{"#ffebee" if severity else "#eceff1"}" stroke="{color}" '
            f'stroke-width="{3 if severity else 1}"/>'
            f'<text x="{node.x + 8}" y="{node.y + 18}">{html.escape(label)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#212121}
h1{font-size:22px} h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #cfd8dc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eceff1}
.sev{font-weight:bold;color:#fff;padding:2px 6px;border-radius:4px}
.critical{background:#b00020}.high{background:#d32f2f}.medium{background:#f57c00}
.low{background:#0288d1}
svg text{font-size:12px;font-family:monospace} svg text.col{font-size:14px;font-weight:bold}
svg .edge{fill:none;stroke:#90a4ae;stroke-width:1.2} svg .edge.hot{stroke:#d32f2f;stroke-width:2}
svg g.finding text{fill:#b00020;font-weight:bold}
"""


def render_html(report: Report, title: str = "vaultbridge audit") -> str:
    flagged = _flagged(report)
    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in COLORS}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    rows = "".join(
        f'<tr class="finding-row" data-code="{html.escape(f.code)}">'
        f'<td><span class="sev {f.severity}">{f.severity}</span></td>'
        f"<td>{html.escape(f.code)}</td><td>{html.escape(f.subject)}</td>"
        f"<td>{html.escape(f.message)}</td><td>{html.escape(f.fix)}</td></tr>"
        for f in report.findings
    )
    access = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(v)}</td>"
            for v in (a.namespace, a.service_account, a.role, a.policy, a.path)
        )
        + f"<td>{html.escape(', '.join(a.capabilities))}</td></tr>"
        for a in report.access
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
    injected = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(v)}</td>"
            for v in (i.namespace, i.kind, i.name, str(i.pods), ", ".join(i.paths))
        )
        + "</tr>"
        for i in report.injected
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p id="summary">{len(report.findings)} findings: {html.escape(summary)}. '
        f"Namespaces: {html.escape(', '.join(report.namespaces) or '-')}</p>"
        '<h2>Findings</h2><table id="findings"><tr><th>severity</th><th>finding</th>'
        "<th>subject</th><th>details</th><th>fix</th></tr>"
        f"{rows}</table>"
        "<h2>Namespace → role → policy → path</h2>"
        f"{_graph(report.access, flagged)}"
        '<h2>Blast radius</h2><table id="access"><tr><th>namespace</th>'
        "<th>service account</th><th>role</th><th>policy</th><th>path</th>"
        f"<th>capabilities</th></tr>{access}</table>"
        + (
            "<h2>Delivered into pods (delivery inject: no Secret; one Vault login per pod)</h2>"
            '<table id="injected"><tr><th>namespace</th><th>kind</th><th>name</th>'
            f"<th>pods</th><th>paths</th></tr>{injected}</table>"
            if injected
            else ""
        )
        + (f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + "</body></html>\n"
    )
