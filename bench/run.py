"""The scenarios, in the order that lets later ones reuse what earlier ones built.

cold sync (each N of the scaling run, floor then operator; the main N last, and kept) →
memory at N → idle → restart → new resources under load → Vault change latency →
instant updates (audit stream) → memory at a larger N. Every number comes with what it was
measured under.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultbridge.settings import Settings

from . import audit
from .clients import Kube, Vault, tls_context
from .fairness import fairness
from .procs import FloorRun, OperatorRun, Usage
from .setup import GROUP_PATH, OPERATOR_USER, BenchEnv
from .workload import (
    SecretObserver,
    clear_bench_namespaces,
    create_auth,
    create_vss,
    patch_instant,
    patch_refresh,
    put_values,
    values,
    wrong_secrets,
)

KIND = "VaultStaticSecret"


@dataclass
class Options:
    n: int = 2000
    scaling: list[int] = field(default_factory=list)
    quick: bool = False
    idle_seconds: float = 300
    new_count: int = 50
    change_count: int = 50
    read_rate_seconds: float = 30
    memory_n: int = 0
    #: The operator's own defaults unless given: the headline numbers are what users run.
    workers: int = Settings.workers
    vault_qps: float | None = None  # None: not passed, the operator's default applies
    vault_burst: int | None = None
    profile: str = ""
    keep: bool = False
    out: str = ""
    cold_only: bool = False
    #: "openbao" | "hashicorp"; None: `$VAULTBRIDGE_VAULT_SERVER`, else the running one's;
    #: "both": one run per server (bench/__main__.py `run_both`), each with this set to it.
    vault_server: str | None = None
    fairness_noisy: int = 1000  # scenario 7 (bench/fairness.py); 0 skips it
    previous: str = ""  # results JSON shown as "previous run" (default: the last run's)
    record: bool = True  # keep these results as the next run's previous
    #: more `vaultbridge run` flags for the main operator, e.g. ["--fair-queuing=false"]
    #: (an A/B comparison of one setting, back to back on the same machine)
    operator_args: list[str] = field(default_factory=list)

    @classmethod
    def quick_mode(cls) -> Options:
        return cls(
            n=100,
            quick=True,
            idle_seconds=10,
            new_count=10,
            change_count=10,
            read_rate_seconds=8,
            fairness_noisy=0,
        )


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (with 50 samples, p99 is the maximum)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def names_for(n: int, start: int = 0) -> list[str]:
    return [f"s{i:05d}" for i in range(start, n)]


class Bench:
    def __init__(self, env: BenchEnv, opts: Options, log: Any = print) -> None:
        self.env = env
        self.opts = opts
        self.log = log
        self.kube = Kube(
            env.state.api_url,
            tls_context(env.certs.ca_cert, env.certs.admin_cert, env.certs.admin_key),
        )
        self.root = Vault(env.state.vault_addr, env.state.vault_root_token)
        self.op: OperatorRun | None = None
        self.results: dict[str, Any] = {"options": vars(opts).copy()}
        # What the operator ran with, defaults resolved (None in options = not passed).
        self.results["operator_flags"] = {
            "workers": opts.workers,
            "vault_qps": Settings.vault_qps if opts.vault_qps is None else opts.vault_qps,
            "vault_burst": Settings.vault_burst if opts.vault_burst is None else opts.vault_burst,
        }
        self.main_ns = f"bench-op-{opts.n}"
        self.expected: dict[str, dict[str, str]] = {}
        self.checkpoint_path: Path | None = None

    async def close(self) -> None:
        if self.op is not None:
            await asyncio.to_thread(self.op.stop)
            self.op = None
        await self.kube.close()
        await self.root.close()

    # --- the whole run -------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        opts = self.opts
        await clear_bench_namespaces(self.kube)
        largest = max([opts.n, *opts.scaling, opts.memory_n, opts.fairness_noisy])
        self.log(f"writing {largest} + {opts.new_count} Vault paths")
        await put_values(self.root, names_for(largest))
        await put_values(self.root, self._new_names())
        steps = [*sorted({*opts.scaling} - {opts.n}), opts.n]
        cold: list[dict[str, Any]] = []
        self.results["cold_sync"] = cold
        for n in steps:
            cold.append(await self.cold_sync(n, keep=n == opts.n))
            self.checkpoint()
        self.results["scaling"] = _scaling(cold) if len(cold) > 1 else None
        self.results["memory"] = [self.memory_point(opts.n)]
        if opts.cold_only:
            return await self._finish()
        self.results["idle"] = await self.idle()
        self.checkpoint()
        self.results["restart"] = await self.restart()
        self.checkpoint()
        self.results["new_under_load"] = await self.new_under_load()
        self.checkpoint()
        self.results["vault_change"] = await self.vault_change()
        self.checkpoint()
        self.results["instant_change"] = await self.instant_change()
        self.checkpoint()
        if opts.memory_n > opts.n:
            self.results["memory"].append(await self.memory_at(opts.memory_n))
            self.checkpoint()
        return await self._finish(with_fairness=opts.fairness_noisy > 0)

    async def _finish(self, with_fairness: bool = False) -> dict[str, Any]:
        opts = self.opts
        wrong = await wrong_secrets(self.kube, self.main_ns, self.expected)
        self.results["final_check"] = {"secrets": len(self.expected), "wrong": wrong[:20]}
        if self.op is not None:
            self.results["operator_exit_code"] = await asyncio.to_thread(self.op.stop)
            self.op = None
        if with_fairness:
            # Last, on an empty cluster: its operators would otherwise reconcile the main
            # namespace too, and that load would be in its "alone" baseline.
            await clear_bench_namespaces(self.kube)
            self.results["fairness"] = await fairness(self)
            self.checkpoint()
        if not opts.keep:
            await clear_bench_namespaces(self.kube)
        return self.results

    def checkpoint(self) -> None:
        """Write what is measured so far: a long run cut short still leaves its numbers."""
        if self.checkpoint_path is not None:
            self.checkpoint_path.write_text(json.dumps(self.results, indent=2, default=str))

    def _new_names(self) -> list[str]:
        return [f"new-{j:03d}" for j in range(self.opts.new_count)]

    def _operator_run(self) -> OperatorRun:
        """The measured operator, with the options of this run (cold sync and restart)."""
        return OperatorRun(
            self.env,
            self.opts.workers,
            self.opts.vault_qps,
            self.opts.profile,
            vault_burst=self.opts.vault_burst,
            extra=self.opts.operator_args,
        )

    def _timeout(self, n: int) -> float:
        return max(180.0, n * 0.3)

    # --- 1 + 2: cold sync, floor and operator ---------------------------------------------

    async def cold_sync(self, n: int, keep: bool) -> dict[str, Any]:
        names = names_for(n)
        self.log(f"cold sync N={n}: floor")
        floor_ns = f"bench-floor-{n}"
        await self.kube.ensure_namespace(floor_ns)
        floor = FloorRun(self.env, floor_ns, self.opts.workers)
        await floor.start()
        try:
            floor_result = await self._timed_sync(floor_ns, names, floor.usage)
        finally:
            await asyncio.to_thread(floor.stop)
        await self.kube.delete_namespace(floor_ns)

        self.log(f"cold sync N={n}: operator")
        ns = f"bench-op-{n}"
        await self.kube.ensure_namespace(ns)
        await create_auth(self.kube, ns)
        self.op = self._operator_run()
        await self.op.start()
        started = self.op.usage()
        kc, vc = (
            audit.Cursor(self.env.state.audit_log),
            audit.Cursor(self.env.state.vault_audit_log),
        )
        op_result = await self._timed_sync(ns, names, self.op.usage)
        op_result["rss_at_ready_mib"] = started.rss_mib
        # The operator's requests for the cold sync (its Event and status writes trail the
        # last Secret: the settle in `_audit_counts` lets most of them land).
        await self._audit_counts(op_result, kc, vc, ns)
        wrong = await wrong_secrets(self.kube, ns, {name: values(name) for name in names})
        if wrong:
            raise AssertionError(f"{len(wrong)} Secrets wrong after cold sync: {wrong[:5]}")
        result = {
            "n": n,
            "loadavg_1m_after": os.getloadavg()[0],
            "floor": floor_result,
            "operator": op_result,
            "ratio": op_result["seconds"] / floor_result["seconds"],
            "cpu_ratio": op_result["cpu_seconds"] / max(floor_result["cpu_seconds"], 0.01),
        }
        self.log(
            f"  N={n}: operator {op_result['seconds']:.2f}s, floor "
            f"{floor_result['seconds']:.2f}s, ratio {result['ratio']:.2f}"
        )
        if keep:
            self.expected.update({name: values(name) for name in names})
        else:
            await asyncio.to_thread(self.op.stop)
            self.op = None
            await self.kube.delete_namespace(ns)
        return result

    async def _timed_sync(self, ns: str, names: list[str], usage: Any) -> dict[str, Any]:
        observer = SecretObserver(self.kube, ns)
        for name in names:
            observer.expect(name, values(name))
        await observer.start()
        try:
            u0: Usage = usage()
            t0 = time.monotonic()
            await create_vss(self.kube, ns, names, "1h")
            created = time.monotonic() - t0
            arrived = await observer.wait(names, self._timeout(len(names)))
            u1: Usage = usage()
        finally:
            await observer.stop()
        seconds = max(arrived.values()) - t0
        offsets = [t - t0 for t in arrived.values()]
        return {
            "seconds": seconds,
            # When half, 90 % and 99 % of the Secrets were there: a long tail shows here.
            "arrived_p50_s": percentile(offsets, 50),
            "arrived_p90_s": percentile(offsets, 90),
            "arrived_p99_s": percentile(offsets, 99),
            "per_second": len(names) / seconds,
            "ms_per_resource": seconds / len(names) * 1000,
            "create_seconds": created,
            "cpu_seconds": u1.cpu_seconds - u0.cpu_seconds,
            "runqueue_wait_seconds": u1.runqueue_wait_seconds - u0.runqueue_wait_seconds,
            "preempted": u1.preempted - u0.preempted,
            "rss_mib": u1.rss_mib,
            "hwm_mib": u1.hwm_mib,
        }

    # --- 6: memory -----------------------------------------------------------------------

    def memory_point(self, n: int) -> dict[str, Any]:
        assert self.op is not None
        u = self.op.usage()
        cold = next(c for c in self.results["cold_sync"] if c["n"] == n)
        return {
            "n": n,
            "peak_mib": u.hwm_mib,
            "rss_mib": u.rss_mib,
            "rss_at_ready_mib": cold["operator"]["rss_at_ready_mib"],
            "when": "after cold sync",
        }

    async def memory_at(self, total: int) -> dict[str, Any]:
        assert self.op is not None
        names = names_for(total, start=self.opts.n)
        self.log(f"memory: adding {len(names)} resources (total {total})")
        observer = SecretObserver(self.kube, self.main_ns)
        for name in names:
            observer.expect(name, values(name))
        await observer.start()
        try:
            t0 = time.monotonic()
            await create_vss(self.kube, self.main_ns, names, "1h")
            arrived = await observer.wait(names, self._timeout(len(names)))
        finally:
            await observer.stop()
        self.expected.update({name: values(name) for name in names})
        synced = max(arrived.values()) - t0
        await asyncio.sleep(5 if self.opts.quick else 30)
        u = self.op.usage()
        return {
            "n": total,
            "peak_mib": u.hwm_mib,
            "rss_mib": u.rss_mib,
            "when": f"{len(names)} added to a running operator; 30 s after sync",
            "sync_seconds_for_added": synced,
        }

    # --- 5: idle -------------------------------------------------------------------------

    async def idle(self) -> dict[str, Any]:
        assert self.op is not None
        await asyncio.sleep(3 if self.opts.quick else 15)  # events and status writes drain
        seconds = self.opts.idle_seconds
        self.log(f"idle: {seconds:.0f}s")
        kc, vc = (
            audit.Cursor(self.env.state.audit_log),
            audit.Cursor(self.env.state.vault_audit_log),
        )
        u0 = self.op.usage()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        u1 = self.op.usage()
        wall = time.monotonic() - t0
        result: dict[str, Any] = {
            "seconds": wall,
            "resources": len(self.expected),
            "cpu_percent": (u1.cpu_seconds - u0.cpu_seconds) / wall * 100,
            "rss_mib": u1.rss_mib,
        }
        self.results["memory"][0]["steady_rss_mib"] = u1.rss_mib
        await self._audit_counts(result, kc, vc)
        return result

    async def _audit_counts(
        self,
        result: dict[str, Any],
        kc: audit.Cursor,
        vc: audit.Cursor,
        namespace: str | None = None,
    ) -> None:
        if not self.env.audited:
            result["audit"] = "unavailable (environment started without --audit)"
            return
        await audit.settle()
        k = audit.kube_requests(kc.entries(), OPERATOR_USER, namespace)
        v = audit.vault_requests(vc.entries())
        result["kube_writes"] = k.writes
        result["kube_writes_by_resource"] = k.writes_by_resource
        result["kube_reads"] = k.reads
        result["kube_reads_by_resource"] = k.reads_by_resource
        result["kube_object_reads"] = k.object_reads
        result["kube_token_requests"] = k.token_requests
        result["vault_logins"] = v.logins
        result["vault_reads"] = v.reads
        result["vault_other"] = v.other

    # --- 7: restart ----------------------------------------------------------------------

    async def restart(self) -> dict[str, Any]:
        assert self.op is not None
        total = len(self.expected)
        self.log(f"restart with {total} synced resources")
        await asyncio.to_thread(self.op.stop)
        kc, vc = (
            audit.Cursor(self.env.state.audit_log),
            audit.Cursor(self.env.state.vault_audit_log),
        )
        t0 = time.monotonic()
        self.op = self._operator_run()
        await self.op.start()
        ready = time.monotonic() - t0
        deadline = t0 + self._timeout(total)
        if self.env.audited:
            # Scraping /metrics every 100 ms would itself cost the operator CPU (it renders
            # two series per resource): the Vault audit log says when every path was read.
            tail = audit.Tail(self.env.state.vault_audit_log)
            tail.offset = vc.offset
            reads = 0
            while reads < total:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"restart: {reads} of {total} read from Vault")
                reads += audit.vault_requests(tail.new_entries()).reads
                await asyncio.sleep(0.05)
        all_read = time.monotonic() - t0
        while await self._reconciled() < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"restart: not all {total} reconciled")
            await asyncio.sleep(0.1)
        confirmed = time.monotonic() - t0
        result: dict[str, Any] = {
            "resources": total,
            "seconds_to_ready": ready,
            "seconds_to_all_read": all_read,
            "seconds_to_all_confirmed": confirmed,
            "cpu_seconds": self.op.usage().cpu_seconds,
            "logins_metric": await self.op.metric("vaultbridge_vault_logins_total"),
            "secret_writes_metric": await self.op.metric("vaultbridge_secret_writes_total"),
        }
        await self._audit_counts(result, kc, vc)
        return result

    async def _reconciled(self) -> float:
        assert self.op is not None
        try:
            return await self.op.metric("vaultbridge_reconciles_total", kind=KIND)
        except OSError:
            return 0.0

    # --- 3: new resource under load ------------------------------------------------------

    async def new_under_load(self) -> dict[str, Any]:
        assert self.op is not None
        names = list(self.expected)
        self.log(f"under load: {len(names)} resources → refreshAfter 30s")
        before = await self._reconciled()
        await patch_refresh(self.kube, self.main_ns, names, "30s")
        deadline = time.monotonic() + self._timeout(len(names))
        while await self._reconciled() < before + len(names):
            if time.monotonic() > deadline:
                raise TimeoutError("under load: the refreshAfter change never settled")
            await asyncio.sleep(2)
        observer = SecretObserver(self.kube, self.main_ns)
        await observer.start()
        latencies = []
        u0 = self.op.usage()
        t_start = time.monotonic()
        try:
            for name in self._new_names():
                observer.expect(name, values(name))
                t0 = time.monotonic()
                await create_vss(self.kube, self.main_ns, [name], "5s")
                arrived = await observer.wait([name], 120)
                latencies.append(arrived[name] - t0)
                self.expected[name] = values(name)
        finally:
            await observer.stop()
        u1 = self.op.usage()
        wall = time.monotonic() - t_start
        return {
            "background": len(names),
            "created": len(latencies),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p95_ms": percentile(latencies, 95) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies) * 1000,
            "operator_cpu_percent": (u1.cpu_seconds - u0.cpu_seconds) / wall * 100,
        }

    # --- 4: Vault change latency ---------------------------------------------------------

    async def vault_change(self) -> dict[str, Any]:
        assert self.op is not None
        names = self._new_names()[: self.opts.change_count]
        window = self.opts.read_rate_seconds
        self.log(f"vault change: read rate over {window:.0f}s, then {len(names)} new values")
        vc = audit.Cursor(self.env.state.vault_audit_log)
        await asyncio.sleep(window)
        result: dict[str, Any] = {"resources": len(names), "refresh_after": "5s"}
        if self.env.audited:
            counts = audit.vault_requests(vc.entries())
            paths = {f"secret/data/bench/{n}" for n in names}
            reads = sum(c for p, c in counts.read_paths.items() if p in paths)
            result["reads_per_resource_per_second"] = reads / len(names) / window
            result["reads_per_resource_per_minute"] = reads / len(names) / window * 60
        observer = SecretObserver(self.kube, self.main_ns)
        for name in names:
            observer.expect(name, values(name, 2))
        await observer.start()
        try:
            written = await put_values(self.root, names, generation=2)
            arrived = await observer.wait(names, 120)
        finally:
            await observer.stop()
        latencies = [arrived[n] - written[n] for n in names]
        for name in names:
            self.expected[name] = values(name, 2)
        result.update(
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=max(latencies) * 1000,
        )
        return result

    async def _generation_synced(self, names: list[str]) -> bool:
        listed = await self.kube.request(
            "GET", f"{GROUP_PATH}/namespaces/{self.main_ns}/vaultstaticsecrets"
        )
        synced = {
            o["metadata"]["name"]
            for o in listed.get("items", [])
            if (o.get("status") or {}).get("lastGeneration") == o["metadata"].get("generation")
        }
        return all(n in synced for n in names)

    # --- 5: instant updates (audit stream) ----------------------------------------------

    async def instant_change(self) -> dict[str, Any]:
        """Every resource at refreshAfter 1h with syncConfig.instantUpdates; a quiet window
        (0 reads expected), then change_count Vault writes, each followed through the audit
        stream (the dev OpenBao's UDP socket device)."""
        assert self.op is not None
        if "audit-stream" not in self.env.state.ports:
            return {"skipped": "dev environment without an audit stream"}
        names = list(self.expected)
        self.log(f"instant updates: {len(names)} resources → refreshAfter 1h + instantUpdates")
        await patch_instant(self.kube, self.main_ns, names)
        deadline = time.monotonic() + self._timeout(len(names))
        # Settled when every object's new generation was synced: its reconcile replaced the
        # refresh timer of the previous phase with 1h (a count of reconciles is not enough,
        # the previous phase's refreshes add to it).
        while not await self._generation_synced(names):
            if time.monotonic() > deadline:
                raise TimeoutError("instant updates: the spec change never settled")
            await asyncio.sleep(2)
        while await self.op.metric("vaultbridge_audit_stream_live") < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("instant updates: the audit stream never became live")
            await asyncio.sleep(1)
        paths = {f"secret/data/bench/{n}" for n in names}
        window = self.opts.read_rate_seconds
        vc = audit.Cursor(self.env.state.vault_audit_log)
        await asyncio.sleep(window)
        result: dict[str, Any] = {"resources": len(names), "refresh_after": "1h"}
        if self.env.audited:
            counts = audit.vault_requests(vc.entries())
            result["quiet_window_seconds"] = window
            result["reads_in_quiet_window"] = sum(
                c for p, c in counts.read_paths.items() if p in paths
            )
        changed = names[: self.opts.change_count]
        observer = SecretObserver(self.kube, self.main_ns)
        for name in changed:
            observer.expect(name, values(name, 3))
        await observer.start()
        vc = audit.Cursor(self.env.state.vault_audit_log)
        try:
            written = await put_values(self.root, changed, generation=3)
            arrived = await observer.wait(changed, 120)
        finally:
            await observer.stop()
        latencies = [arrived[n] - written[n] for n in changed]
        for name in changed:
            self.expected[name] = values(name, 3)
        await asyncio.sleep(5)  # late reads (drift checks) land in the count
        if self.env.audited:
            counts = audit.vault_requests(vc.entries())
            result["reads_during_changes"] = sum(
                c for p, c in counts.read_paths.items() if p in paths
            )
        result.update(
            changes=len(changed),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=max(latencies) * 1000,
            resyncs=await self.op.metric("vaultbridge_audit_stream_entries_total", result="resync"),
            dropped=await self.op.metric(
                "vaultbridge_audit_stream_entries_total", result="dropped"
            ),
        )
        return result


def _scaling(cold: list[dict[str, Any]]) -> dict[str, Any]:
    cold = sorted(cold, key=lambda c: int(c["n"]))
    per = {c["n"]: c["operator"]["ms_per_resource"] for c in cold}
    floor = {c["n"]: c["floor"]["ms_per_resource"] for c in cold}
    # Linear means a constant time per resource; the median is the reference, so one noisy
    # point does not move the band.
    center = sorted(per.values())[len(per) // 2]
    return {
        "ms_per_resource": per,
        "floor_ms_per_resource": floor,
        "ratio_to_floor": {c["n"]: c["ratio"] for c in cold},
        "relative_to_median": {n: v / center for n, v in per.items()},
        "max_deviation_percent": max(abs(v / center - 1) for v in per.values()) * 100,
    }
