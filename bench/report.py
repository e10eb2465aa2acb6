"""The printed table (metric, value, target, verdict) and the JSON results file."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _waited(op: dict[str, Any], fl: dict[str, Any]) -> str:
    """`; waited for a core 3.1 s, preempted 4,210 times (floor ...)` (results before
    2026-12-01: nothing)."""
    if "runqueue_wait_seconds" not in op or "runqueue_wait_seconds" not in fl:
        return ""
    return (
        f"; waited for a core {op['runqueue_wait_seconds']:.1f} s, preempted "
        f"{op['preempted']:,} times (floor {fl['runqueue_wait_seconds']:.1f} s, "
        f"{fl['preempted']:,})"
    )


def _no_object_reads(op: dict[str, Any]) -> bool:
    """No read of a synced object; results before 2026-12-01 have only the total (<= 5 then)."""
    if "kube_object_reads" in op:
        return bool(op["kube_object_reads"] == 0)
    return bool(op["kube_reads"] <= 5)


def _reads(op: dict[str, Any]) -> str:
    """`, 0 of the synced objects: 2 get secrets, ...` (results before 2026-12-01: nothing)."""
    if "kube_reads_by_resource" not in op or not op["kube_reads"]:
        return ""
    by = ", ".join(f"{v} {k}" for k, v in op["kube_reads_by_resource"].items())
    return f", {op['kube_object_reads']} of the synced objects: {by}"


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for c in sorted(r.get("cold_sync", []), key=lambda c: int(c["n"])):
        op, fl = c["operator"], c["floor"]
        n = int(c["n"])
        out.append(
            (
                f"cold sync N={n}",
                f"{op['seconds']:.2f}s ({op['per_second']:.0f}/s, {op['cpu_seconds']:.1f} CPU s)"
                f" vs floor {fl['seconds']:.2f}s ({fl['cpu_seconds']:.1f} CPU s): "
                f"{c['ratio']:.2f}x",
                "<= 1.15x floor",
                _verdict(c["ratio"] <= 1.15),
            )
        )
        out.append(
            (
                f"cold sync N={n} CPU per resource",
                f"{op['cpu_seconds'] / n * 1000:.2f} ms "
                f"(floor {fl['cpu_seconds'] / n * 1000:.2f} ms){_waited(op, fl)}",
                "<= 2.5 ms",
                _verdict(op["cpu_seconds"] / n * 1000 <= 2.5),
            )
        )
        if "kube_writes" in op:
            by = ", ".join(f"{v} {k}" for k, v in op["kube_writes_by_resource"].items())
            out.append(
                (
                    f"cold sync N={n} Kubernetes requests",
                    f"{(op['kube_writes'] + op['kube_reads']) / n:.2f} per resource "
                    f"({op['kube_reads']} reads{_reads(op)}; writes: {by}); "
                    f"{op['vault_reads']} Vault reads, {op['vault_logins']} logins",
                    "2 writes (+ sampled events), 0 reads per resource",
                    # A few reads and writes are the start-up's (HMAC key, login, status of
                    # the VaultAuth/VaultConnection), not the resources': no read of a synced
                    # object counts (runs before 2026-12-01 recorded only a total, <= 5).
                    # Fewer writes than Secrets means the audit window missed requests.
                    _verdict(
                        None
                        if op["kube_writes"] < n
                        else _no_object_reads(op)
                        and op["kube_writes"]
                        - op["kube_writes_by_resource"].get("create events", 0)
                        <= 2 * n + 5
                    ),
                )
            )
    s = r.get("scaling")
    if s:
        per = ", ".join(f"{n}: {v:.2f}" for n, v in s["ms_per_resource"].items())
        dev = s["max_deviation_percent"]
        out.append(
            (
                "scaling ms/resource",
                f"{per} (max deviation from the median {dev:.0f}%)",
                "±20%",
                _verdict(dev <= 20),
            )
        )
    new = r.get("new_under_load")
    if new:
        out.append(
            (
                f"new resource under load ({new['background']} @30s)",
                f"p50 {new['p50_ms']:.0f} / p95 {new['p95_ms']:.0f} / p99 {new['p99_ms']:.0f} ms",
                "p99 <= 1000 ms",
                _verdict(new["p99_ms"] <= 1000),
            )
        )
    v = r.get("vault_change")
    if v:
        rate = v.get("reads_per_resource_per_minute")
        out.append(
            (
                f"Vault change latency ({v['resources']} @5s)",
                f"p50 {v['p50_ms']:.0f} / p99 {v['p99_ms']:.0f} ms; "
                f"{_fmt(rate)} reads/resource/min",
                "follows refreshAfter",
                _verdict(v["p99_ms"] <= 5000 * 1.2),
            )
        )
    ic = r.get("instant_change")
    if ic and "p99_ms" in ic:
        out.append(
            (
                f"instant updates ({ic['changes']} writes, {ic['resources']} @1h)",
                f"p50 {ic['p50_ms']:.0f} / p99 {ic['p99_ms']:.0f} ms; "
                f"{_fmt(ic.get('reads_in_quiet_window'))} reads in "
                f"{_fmt(ic.get('quiet_window_seconds'))}s quiet, "
                f"{_fmt(ic.get('reads_during_changes'))} reads for the writes",
                "p99 <= 1000 ms, 0 reads between changes",
                _verdict(ic["p99_ms"] <= 1000 and not ic.get("reads_in_quiet_window")),
            )
        )
    i = r.get("idle")
    if i:
        writes = i.get("kube_writes")
        out.append(
            (
                f"idle {i['seconds']:.0f}s ({i['resources']} @1h)",
                f"{_fmt(writes)} kube writes, {_fmt(i.get('vault_reads'))} Vault reads, "
                f"{i['cpu_percent']:.2f}% CPU",
                "0 writes, 0 reads, < 2%",
                _verdict(
                    None
                    if writes is None
                    else writes == 0 and i.get("vault_reads") == 0 and i["cpu_percent"] < 2
                ),
            )
        )
    for m in r.get("memory", []):
        # Issue #13: <= 80 MiB at 2,000 objects, <= 150 MiB at 10,000.
        limit = 80 if m["n"] <= 2000 else 150
        steady = m.get("steady_rss_mib", m["rss_mib"])
        out.append(
            (
                f"memory N={m['n']}",
                f"peak {m['peak_mib']:.1f} MiB, steady {steady:.1f} MiB",
                f"<= {limit} MiB",
                _verdict(m["peak_mib"] <= limit),
            )
        )
    rs = r.get("restart")
    if rs:
        writes = rs.get("kube_writes")
        out.append(
            (
                f"restart ({rs['resources']} synced)",
                f"{rs['seconds_to_all_confirmed']:.1f}s; {_fmt(rs.get('vault_logins'))} logins, "
                f"{_fmt(rs.get('vault_reads'))} reads, {_fmt(writes)} kube writes",
                "0 writes, <= 1 login per identity (here 1)",
                _verdict(
                    None if writes is None else writes == 0 and (rs.get("vault_logins") or 0) <= 1
                ),
            )
        )
    f = r.get("fairness")
    if f:
        for mode in ("fair", "unfair"):
            m = f[mode]
            out.append(
                (
                    f"quiet namespace vs {f['noisy_resources']} noisy @1s "
                    f"(--fair-queuing={'true' if mode == 'fair' else 'false'})",
                    f"alone max {max(m['alone_s']):.2f}s, under noise max {max(m['noisy_s']):.2f}s",
                    f"<= 1.5x alone + 0.5s ({m['bound_s']:.2f}s)",
                    _verdict(m["within_bound"]) if mode == "fair" else "(reference)",
                )
            )
    return out


def with_previous(
    r: dict[str, Any], previous: dict[str, Any] | None
) -> list[tuple[str, str, str, str, str]]:
    """`rows(r)`, each with what the previous run measured for the same scenario (same
    name, so the same N): a regression shows next to the number it concerns."""
    before = {name: measured for name, measured, _t, _v in rows(previous)} if previous else {}
    return [(a, b, before.get(a, "-"), c, d) for a, b, c, d in rows(r)]


def table(r: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    data = [("scenario", "measured", "previous run", "target", ""), *with_previous(r, previous)]
    widths = [max(len(row[i]) for row in data) for i in range(5)]
    lines = []
    for k, row in enumerate(data):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(r: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The same rows as a Markdown table, for docs/performance.md."""
    lines = [
        "| scenario | measured | previous run | target | verdict |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {p} | {c} | {d} |" for a, b, p, c, d in with_previous(r, previous)]
    return "\n".join(lines)


#: The last full run's results, committed (docs/performance.md): the next run's "previous".
#: Quick runs (`make test`) keep theirs in the git-ignored bench/results/ instead, so a test
#: run never changes the working tree.
LAST_RUN = Path(__file__).resolve().parents[1] / "docs" / "results" / "last-run.json"
LAST_QUICK_RUN = RESULTS_DIR / "last-quick-run.json"


#: The same for `--vault-server both` (results of both servers in one file).
LAST_RUN_BOTH = LAST_RUN.with_name("last-run-both.json")
LAST_QUICK_RUN_BOTH = RESULTS_DIR / "last-quick-run-both.json"


def last_run_path(quick: bool, both: bool = False) -> Path:
    if both:
        return LAST_QUICK_RUN_BOTH if quick else LAST_RUN_BOTH
    return LAST_QUICK_RUN if quick else LAST_RUN


def load_previous(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.splitlines()
                if "model name" in line
            ),
            "?",
        )
        info["cpu"] = model
        info["cores"] = cpuinfo.count("processor\t:")
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 1024 / 1024, 1)
        info["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    return info


def write_json(r: dict[str, Any], out: str = "") -> Path:
    if out:
        path = Path(out)
    else:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(json.dumps(r, indent=2, default=str))
    return path


# --- `--vault-server both`: one run against each server, side by side ----------------------
#
# The combined results are {"vault_servers": [...], "runs": {server: results}, ...}, each
# `results` what a single-server run writes (or {"error": ..., "vault_server": {...}} when
# that server's run failed). Seconds of two runs back to back on a shared machine are not
# comparable; each ratio is to the floor measured against the same server in the same run.


def server_label(r: dict[str, Any]) -> str:
    s = r.get("vault_server") or {}
    return f"{s.get('product') or s.get('server') or '?'} {s.get('version') or ''}".strip()


def previous_for(previous: dict[str, Any] | None, server: str) -> dict[str, Any] | None:
    """What a `--previous` file measured against `server`: its run of that server if it is a
    combined file, else the file itself if it ran against that server (results written
    before `vault_server` was recorded ran against OpenBao)."""
    if previous is None:
        return None
    if "runs" in previous:
        run = (previous.get("runs") or {}).get(server)
        return run if isinstance(run, dict) and "error" not in run else None
    ran = (previous.get("vault_server") or {}).get("server") or "openbao"
    return previous if ran == server else None


def main_cold_sync(r: dict[str, Any]) -> dict[str, Any] | None:
    """The cold sync at the main N (`--n`), else the largest one measured."""
    cold = r.get("cold_sync") or []
    if not cold:
        return None
    n = (r.get("options") or {}).get("n")
    match: list[dict[str, Any]] = [c for c in cold if c["n"] == n]
    return match[0] if match else max(cold, key=lambda c: int(c["n"]))


def key_figures(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline figures of one server's run: cold sync and its ratio to the same-run
    floor, CPU and requests per resource, the restart; and the load it ran under."""
    if "error" in r:
        return [("run", f"failed: {r['error']}")]
    out: list[tuple[str, str]] = []
    start = r.get("loadavg_at_start")
    end = (r.get("machine") or {}).get("loadavg_at_end")
    if start is not None or end is not None:
        out.append(
            (
                "load average (1 min), start → end",
                f"{_fmt(start[0] if start else None)} → {end[0] if end else 'n/a'}",
            )
        )
    c = main_cold_sync(r)
    if c:
        op, fl, n = c["operator"], c["floor"], int(c["n"])
        out.append(
            (
                f"cold sync N={n}",
                f"{op['seconds']:.2f} s ({op['per_second']:.0f}/s, {op['cpu_seconds']:.1f} CPU s)"
                f" vs floor {fl['seconds']:.2f} s ({fl['cpu_seconds']:.1f} CPU s): "
                f"**{c['ratio']:.2f}x**",
            )
        )
        out.append(
            (
                "CPU per resource",
                f"{op['cpu_seconds'] / n * 1000:.1f} ms (floor {fl['cpu_seconds'] / n * 1000:.1f}"
                f" ms)",
            )
        )
        if "kube_writes" in op:
            out.append(
                (
                    "requests per resource",
                    f"{(op['kube_writes'] + op['kube_reads']) / n:.2f} Kubernetes "
                    f"({op['kube_reads']} reads), {op['vault_reads'] / n:.2f} Vault reads, "
                    f"{op['vault_logins']} login(s)",
                )
            )
        else:
            out.append(("requests per resource", "n/a (environment without audit logs)"))
    rs = r.get("restart")
    if rs:
        out.append(
            (
                f"restart with {rs['resources']} synced",
                f"{rs['seconds_to_all_confirmed']:.1f} s to all confirmed; "
                f"{_fmt(rs.get('vault_logins'))} logins, {_fmt(rs.get('vault_reads'))} reads, "
                f"{_fmt(rs.get('kube_writes'))} Kubernetes writes",
            )
        )
    wrong = (r.get("final_check") or {}).get("wrong")
    if wrong:
        out.append(("final check", f"{len(wrong)} Secrets wrong"))
    return out


def _side_by_side(
    runs: list[dict[str, Any]],
    cells: list[list[tuple[str, str]]],
    first: str,
    targets: dict[str, str] | None = None,
) -> str:
    """One Markdown row per label (in order of first appearance), one column per run ("-"
    where a run has no such row), and a target column if `targets` is given."""
    labels: list[str] = []
    for figures in cells:
        labels += [label for label, _ in figures if label not in labels]
    by_run = [dict(figures) for figures in cells]
    head = [first, *(server_label(r) for r in runs)]
    if targets is not None:
        head.append("target")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        row = [label, *(b.get(label, "-") for b in by_run)]
        if targets is not None:
            row.append(targets.get(label, ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def both_summary(combined: dict[str, Any]) -> str:
    """The headline figures of every server, side by side (Markdown)."""
    runs = [combined["runs"][s] for s in combined["vault_servers"]]
    return _side_by_side(runs, [key_figures(r) for r in runs], "")


def both_markdown(combined: dict[str, Any]) -> str:
    """The headline table, then every scenario row of every server side by side, each with
    its verdict (Markdown, for docs/performance.md)."""
    runs = [combined["runs"][s] for s in combined["vault_servers"]]
    targets: dict[str, str] = {}
    cells: list[list[tuple[str, str]]] = []
    for r in runs:
        measured = [] if "error" in r else rows(r)
        for name, _m, target, _v in measured:
            targets.setdefault(name, target)
        cells.append([(name, f"{m} ({v})") for name, m, _t, v in measured])
    return both_summary(combined) + "\n\n" + _side_by_side(runs, cells, "scenario", targets)
