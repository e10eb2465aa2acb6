"""`python -m bench [--n N] [--quick] [--scaling 250,500,...] ...` (also `make bench`).

`--vault-server both` runs the same options against OpenBao, then HashiCorp Vault, each in a
dev environment of its own (`<VAULTBRIDGE_DEV_HOME>-openbao`, `-hashicorp`, stopped when its
run is done), and prints and writes one combined result."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from vaultbridge.devenv import environment, paths
from vaultbridge.devenv.vaultserver import PRODUCT, SERVERS

from .report import (
    RESULTS_DIR,
    both_markdown,
    last_run_path,
    load_previous,
    machine,
    markdown,
    previous_for,
    server_label,
    table,
    write_json,
)
from .run import Bench, Options
from .setup import prepare

BOTH = "both"


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--n", type=int, help="resources for the main run (default 2000)")
    p.add_argument("--quick", action="store_true", help="N=100, short windows (< 2 minutes)")
    p.add_argument(
        "--scaling",
        default="",
        help="comma-separated N for the scaling curve, e.g. 250,500,1000,2000,4000",
    )
    p.add_argument("--idle-seconds", type=float, help="idle window (default 300, quick 10)")
    p.add_argument("--memory-n", type=int, default=0, help="also measure RSS at this N")
    p.add_argument("--new", type=int, help="new resources created under load (default 50)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="operator and floor concurrency (default: the operator's own default)",
    )
    p.add_argument(
        "--vault-qps",
        type=float,
        default=None,
        help="operator's --vault-qps (default: the operator's own default; 0 = unlimited)",
    )
    p.add_argument(
        "--vault-burst",
        type=int,
        default=None,
        help="operator's --vault-burst (default: the operator's own default)",
    )
    p.add_argument("--profile", default="", help="path to py-spy: profile the operator")
    p.add_argument("--cold-only", action="store_true", help="only the cold sync (and scaling)")
    p.add_argument(
        "--fairness-noisy",
        type=int,
        help="noisy resources of the fairness scenario (default 1000, quick 0 = skipped)",
    )
    p.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for the measured operator, repeatable, e.g. "
        "--operator-arg=--fair-queuing=false (the fairness scenario sets its own)",
    )
    p.add_argument("--keep", action="store_true", help="keep the bench namespaces at the end")
    p.add_argument("--out", default="", help="JSON results file (default bench/results/…)")
    p.add_argument(
        "--previous",
        default="",
        help="results JSON to compare with (default: the last run, docs/results/last-run.json;"
        " with --quick bench/results/last-quick-run.json)",
    )
    p.add_argument(
        "--no-record",
        action="store_true",
        help="do not make this run the next run's previous (e.g. an experiment)",
    )
    p.add_argument(
        "--vault-server",
        choices=(*SERVERS, BOTH),
        default=None,
        help="the dev environment's Vault server (default: $VAULTBRIDGE_VAULT_SERVER, else "
        "the running environment's, else openbao); the results name it. 'both': the same run "
        "against each server, each in a dev environment of its own "
        "(<VAULTBRIDGE_DEV_HOME>-<server>), one combined result",
    )
    a = p.parse_args(argv)
    opts = Options.quick_mode() if a.quick else Options()
    if a.n:
        opts.n = a.n
    if a.scaling:
        opts.scaling = [int(x) for x in a.scaling.split(",") if x.strip()]
    if a.idle_seconds is not None:
        opts.idle_seconds = a.idle_seconds
    if a.new:
        opts.new_count = a.new
        opts.change_count = min(opts.change_count, a.new)
    opts.memory_n = a.memory_n
    if a.workers is not None:
        opts.workers = a.workers
    opts.vault_qps = a.vault_qps
    opts.vault_burst = a.vault_burst
    opts.profile = a.profile
    opts.keep = a.keep
    opts.cold_only = a.cold_only
    opts.out = a.out
    opts.previous = a.previous
    opts.record = not a.no_record
    opts.vault_server = a.vault_server
    opts.operator_args = list(a.operator_arg)
    if a.fairness_noisy is not None:
        opts.fairness_noisy = a.fairness_noisy
    return opts


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def servers(opts: Options) -> list[str]:
    """The servers a `both` run measures, in order; [] for a single-server run."""
    return list(SERVERS) if opts.vault_server == BOTH else []


def server_home(base: Path, server: str) -> Path:
    """The dev environment of `server` in a `both` run: beside the usual one (never the
    usual one itself, whose running environment may be of either server)."""
    return base.with_name(f"{base.name}-{server}")


async def run(
    opts: Options, home: Path | None = None, checkpoint: Path | None = None
) -> dict[str, Any]:
    env = await asyncio.to_thread(prepare, None, log, opts.vault_server, home)
    bench = Bench(env, opts, log)
    bench.checkpoint_path = checkpoint or Path(opts.out or RESULTS_DIR / "partial.json")
    bench.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        results = await bench.run()
    finally:
        await bench.close()
    results["machine"] = machine()
    results["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    results["wall_seconds"] = time.time() - started
    results["audited"] = env.audited
    results["vault_server"] = {
        "server": env.state.vault_server,
        "product": env.state.vault_product,
        "version": env.state.vault_version,
    }
    return results


async def run_both(opts: Options) -> dict[str, Any]:
    """The same options against every server, one after the other. Each gets a fresh start
    of its own environment and it is stopped afterwards, so the next server's run does not
    share the machine with an idle control plane; a failed run is recorded and the next
    server still runs."""
    base = paths.state_dir()
    started = time.time()
    combined: dict[str, Any] = {
        "vault_servers": servers(opts),
        "options": vars(opts).copy(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "loadavg_at_start": list(os.getloadavg()),
        "homes": {},
        "runs": {},
    }
    for server in combined["vault_servers"]:
        home = server_home(base, server)
        combined["homes"][server] = str(home)
        log(f"--- {server}: dev environment {home}")
        single = dataclasses.replace(opts, vault_server=server)
        loadavg = list(os.getloadavg())
        checkpoint = RESULTS_DIR / f"partial-{server}.json"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = await run(single, home=home, checkpoint=checkpoint)
        except Exception as exc:  # the other server's run still counts
            log(f"{server}: run failed\n{traceback.format_exc()}")
            result = {
                "error": f"{type(exc).__name__}: {exc}",
                "vault_server": {"server": server, "product": PRODUCT[server]},
                "machine": machine(),
            }
        finally:
            state = environment.load_state(home)
            if state is not None:
                stopped = await asyncio.to_thread(environment.down, state)
                log(f"{server}: dev environment stopped ({', '.join(stopped) or 'nothing ran'})")
        result["loadavg_at_start"] = loadavg
        combined["runs"][server] = result
    combined["machine"] = machine()
    combined["wall_seconds"] = time.time() - started
    return combined


def main_both(opts: Options) -> int:
    last = last_run_path(opts.quick, both=True)
    previous_path = Path(opts.previous) if opts.previous else last
    previous = load_previous(previous_path)
    combined = asyncio.run(run_both(opts))
    if previous is not None:
        print(f"previous run: {previous.get('started', '?')} ({previous_path})")
    failed = False
    for server in combined["vault_servers"]:
        results = combined["runs"][server]
        print(f"\n== {server_label(results)} ({server}, {combined['homes'][server]})")
        if "error" in results:
            print(f"run failed: {results['error']}")
            failed = True
            continue
        print(table(results, previous_for(previous, server)))
        if results.get("final_check", {}).get("wrong"):
            print(json.dumps(results["final_check"]), file=sys.stderr)
            failed = True
    print()
    print(both_markdown(combined))
    path = write_json(combined, opts.out)
    print(f"\nresults: {path}")
    if opts.record:
        last.parent.mkdir(parents=True, exist_ok=True)
        write_json(combined, str(last))
        print(f"recorded as the next run's previous: {last}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if servers(opts):
        return main_both(opts)
    last = last_run_path(opts.quick)
    previous_path = Path(opts.previous) if opts.previous else last
    previous = load_previous(previous_path)
    results = asyncio.run(run(opts))
    server = results["vault_server"]
    print(f"Vault server: {server['product']} {server['version']} ({server['server']})")
    if previous is not None:
        print(f"previous run: {previous.get('started', '?')} ({previous_path})")
    print(table(results, previous))
    print()
    print(markdown(results, previous))
    path = write_json(results, opts.out)
    print(f"\nresults: {path}")
    if opts.record:
        last.parent.mkdir(parents=True, exist_ok=True)
        write_json(results, str(last))
        print(f"recorded as the next run's previous: {last}")
    if results.get("final_check", {}).get("wrong"):
        print(json.dumps(results["final_check"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
