"""Scenario 7, fairness (issue #17): one noisy namespace must not slow a quiet one down.

A quiet namespace holds one VaultStaticSecret at `refreshAfter: 2s`; its change latency is
measured alone, then while another namespace's `noisy` VaultStaticSecrets refresh every
second (1,000 ask for five times the default `--vault-qps` of 200). The operator runs with the
default `--vault-qps` (the contention is the point), once with `--fair-queuing=true` and once
with `false`, each in fresh namespaces. Each write is made a fixed time (`PHASE`) after the
previous reconcile ended, so every sample meets the 2 s refresh at the same phase and the
difference between "alone" and "noisy" is time spent waiting for a worker and for Vault.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from vaultbridge.settings import Settings

from .procs import OperatorRun
from .workload import SecretObserver, create_auth, create_vss, values, vss_body

if TYPE_CHECKING:
    from .run import Bench

PHASE = 1.0
WRITES = 5
QPS = Settings.vault_qps  # the operator's default (100 until 2026-12-01)


def _probe_values(round_: int) -> dict[str, str]:
    return {"username": "quiet", "password": f"pw-quiet-{round_}"}


async def _reconcile_ended(bench: Bench, ns: str, name: str, version: int) -> None:
    """Wait for the status patch that ends the reconcile which delivered `version`: the next
    refresh is due a jittered 2 s after it, so the next write is timed from here."""
    path = f"/apis/vaultbridge.dev/v1beta1/namespaces/{ns}/vaultstaticsecrets/{name}"
    deadline = time.monotonic() + 120
    while (await bench.kube.request("GET", path)).get("status", {}).get("vaultVersion") != version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ns}/{name}: status never reached version {version}")
        await asyncio.sleep(0.02)


async def _latencies(bench: Bench, ns: str, name: str, first_round: int) -> list[float]:
    observer = SecretObserver(bench.kube, ns)
    await observer.start()
    out: list[float] = []
    try:
        for r in range(first_round, first_round + WRITES):
            observer.expect(name, _probe_values(r))
            await asyncio.sleep(PHASE)
            resp = await bench.root.call(
                "POST", f"secret/data/bench/{ns}-{name}", {"data": _probe_values(r)}
            )
            written = time.monotonic()
            arrived = await observer.wait([name], 180)
            out.append(arrived[name] - written)
            await _reconcile_ended(bench, ns, name, int(resp["data"]["version"]))
    finally:
        await observer.stop()
    return out


async def _one_mode(bench: Bench, fair: bool, noisy: int) -> dict[str, Any]:
    tag = "fair" if fair else "unfair"
    quiet_ns, noisy_ns = f"bench-{tag}-quiet", f"bench-{tag}-noisy"
    for ns in (quiet_ns, noisy_ns):
        await bench.kube.ensure_namespace(ns)
        await create_auth(bench.kube, ns)
    op = OperatorRun(
        bench.env,
        bench.opts.workers,
        QPS,
        extra=["--fair-queuing", "true" if fair else "false"],
    )
    await op.start()
    try:
        # The quiet probe, synced, then measured alone.
        probe = "probe"
        first = await bench.root.call(
            "POST", f"secret/data/bench/{quiet_ns}-{probe}", {"data": _probe_values(0)}
        )
        body = vss_body(probe, "2s")
        body["spec"]["path"] = f"bench/{quiet_ns}-{probe}"
        observer = SecretObserver(bench.kube, quiet_ns)
        observer.expect(probe, _probe_values(0))
        await observer.start()
        await bench.kube.request(
            "POST", f"/apis/vaultbridge.dev/v1beta1/namespaces/{quiet_ns}/vaultstaticsecrets", body
        )
        await observer.wait([probe], 120)
        await observer.stop()
        await _reconcile_ended(bench, quiet_ns, probe, int(first["data"]["version"]))
        alone = await _latencies(bench, quiet_ns, probe, 1)

        # The noise: `noisy` objects at 1 s over the Vault paths the cold sync wrote.
        names = [f"s{i:05d}" for i in range(noisy)]  # as run.names_for: written by run()
        watcher = SecretObserver(bench.kube, noisy_ns)
        for n in names:
            watcher.expect(n, values(n))
        await watcher.start()
        bench.log(f"fairness ({tag}): {noisy} noisy resources @1s")
        await create_vss(bench.kube, noisy_ns, names, "1s")
        await watcher.wait(names, max(300.0, noisy * 0.5))
        await watcher.stop()
        await asyncio.sleep(3)  # every noisy object is now on its 1 s cycle
        under_noise = await _latencies(bench, quiet_ns, probe, 1 + WRITES)
        depth = await op.metric("vaultbridge_queue_depth", kind="VaultStaticSecret")
    finally:
        await asyncio.to_thread(op.stop)
    await asyncio.gather(*(bench.kube.delete_namespace(ns) for ns in (quiet_ns, noisy_ns)))
    bound = 1.5 * max(alone) + 0.5
    bench.log(
        f"fairness ({tag}): alone max {max(alone):.2f}s, under noise max "
        f"{max(under_noise):.2f}s (bound {bound:.2f}s)"
    )
    return {
        "alone_s": alone,
        "noisy_s": under_noise,
        "bound_s": bound,
        "within_bound": max(under_noise) <= bound,
        "queue_depth_at_end": depth,
    }


async def fairness(bench: Bench) -> dict[str, Any]:
    noisy = bench.opts.fairness_noisy
    return {
        "noisy_resources": noisy,
        "vault_qps": QPS,
        "fair": await _one_mode(bench, True, noisy),
        "unfair": await _one_mode(bench, False, noisy),
    }
