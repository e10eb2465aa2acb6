"""`python -m bench --vault-server both`: option parsing and the combined report (pure)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from bench.__main__ import parse, server_home, servers
from bench.report import (
    LAST_QUICK_RUN,
    LAST_QUICK_RUN_BOTH,
    LAST_RUN,
    LAST_RUN_BOTH,
    both_markdown,
    both_summary,
    key_figures,
    last_run_path,
    previous_for,
)


def _results(
    server: str, version: str, op_s: float, floor_s: float, n: int = 100
) -> dict[str, Any]:
    product = {"openbao": "OpenBao", "hashicorp": "HashiCorp Vault"}[server]
    op = {
        "seconds": op_s,
        "per_second": n / op_s,
        "cpu_seconds": 0.9,
        "kube_writes": 2 * n + 34,
        "kube_reads": 0,
        "kube_writes_by_resource": {"apply secrets": n, "patch vaultstaticsecrets/status": n},
        "vault_reads": n,
        "vault_logins": 1,
    }
    floor = {"seconds": floor_s, "per_second": n / floor_s, "cpu_seconds": 0.5}
    return {
        "options": {"n": n},
        "vault_server": {"server": server, "product": product, "version": version},
        "loadavg_at_start": [8.3, 8.0, 7.5],
        "machine": {"loadavg_at_end": ["8.8", "8.1", "7.6"]},
        "cold_sync": [{"n": n, "operator": op, "floor": floor, "ratio": op_s / floor_s}],
        "restart": {
            "resources": n,
            "seconds_to_all_confirmed": 5.8,
            "vault_logins": 0,
            "vault_reads": n,
            "kube_writes": 0,
        },
        "final_check": {"secrets": n, "wrong": []},
    }


def _combined(**runs: dict[str, Any]) -> dict[str, Any]:
    return {"vault_servers": list(runs), "runs": runs}


# --- option parsing -------------------------------------------------------------------------


def test_both_is_a_choice_and_names_both_servers_in_order() -> None:
    opts = parse(["--quick", "--vault-server", "both", "--no-record"])
    assert opts.vault_server == "both"
    assert servers(opts) == ["openbao", "hashicorp"]
    # The other options are those of a single run: each server's run gets the same.
    assert opts.quick and opts.n == 100 and not opts.record


@pytest.mark.parametrize(
    "argv", [[], ["--vault-server", "openbao"], ["--vault-server", "hashicorp"]]
)
def test_single_server_runs_are_unchanged(argv: list[str]) -> None:
    opts = parse(argv)
    assert opts.vault_server == (argv[1] if argv else None)
    assert servers(opts) == []


def test_an_unknown_server_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--vault-server", "vault"])
    assert "invalid choice" in capsys.readouterr().err


def test_each_server_gets_its_own_home_beside_the_usual_one() -> None:
    base = Path("/tmp/vb-both")
    homes = {server_home(base, s) for s in ("openbao", "hashicorp")}
    assert homes == {Path("/tmp/vb-both-openbao"), Path("/tmp/vb-both-hashicorp")}
    assert base not in homes


def test_both_runs_keep_their_own_previous_file() -> None:
    assert last_run_path(True, both=True) == LAST_QUICK_RUN_BOTH != LAST_QUICK_RUN
    assert last_run_path(False, both=True) == LAST_RUN_BOTH != LAST_RUN
    assert last_run_path(True) == LAST_QUICK_RUN and last_run_path(False) == LAST_RUN


# --- the combined report --------------------------------------------------------------------


def test_previous_for_picks_the_same_servers_run() -> None:
    bao, hc = _results("openbao", "2.7.2", 6.0, 5.0), _results("hashicorp", "1.21.0", 7.0, 5.0)
    combined = _combined(openbao=bao, hashicorp=hc)
    assert previous_for(combined, "hashicorp") is hc
    assert previous_for(hc, "hashicorp") is hc
    assert previous_for(hc, "openbao") is None
    legacy = copy.deepcopy(bao)
    del legacy["vault_server"]  # written before the server was recorded: OpenBao
    assert previous_for(legacy, "openbao") is legacy
    failed = _combined(openbao={"error": "boom", "vault_server": {"server": "openbao"}})
    assert previous_for(failed, "openbao") is None
    assert previous_for(None, "openbao") is None


def test_key_figures_of_one_server() -> None:
    figures = dict(key_figures(_results("hashicorp", "1.21.0", 7.17, 5.0)))
    assert figures["cold sync N=100"] == (
        "7.17 s (14/s, 0.9 CPU s) vs floor 5.00 s (0.5 CPU s): **1.43x**"
    )
    assert figures["CPU per resource"] == "9.0 ms (floor 5.0 ms)"
    assert figures["requests per resource"] == (
        "2.34 Kubernetes (0 reads), 1.00 Vault reads, 1 login(s)"
    )
    assert figures["restart with 100 synced"] == (
        "5.8 s to all confirmed; 0 logins, 100 reads, 0 Kubernetes writes"
    )
    assert figures["load average (1 min), start → end"] == "8.30 → 8.8"


def test_the_main_n_is_the_headline_when_there_is_a_scaling_curve() -> None:
    r = _results("openbao", "2.7.2", 6.0, 5.0, n=200)
    small = copy.deepcopy(r["cold_sync"][0]) | {"n": 50, "ratio": 9.99}
    r["cold_sync"].insert(0, small)
    labels = [label for label, _ in key_figures(r)]
    assert "cold sync N=200" in labels and "cold sync N=50" not in labels


def test_side_by_side_has_one_column_per_server_in_run_order() -> None:
    combined = _combined(
        openbao=_results("openbao", "2.7.2", 6.34, 4.67),
        hashicorp=_results("hashicorp", "1.21.0", 7.17, 5.0),
    )
    summary = both_summary(combined).splitlines()
    assert summary[0] == "|  | OpenBao 2.7.2 | HashiCorp Vault 1.21.0 |"
    assert summary[1] == "|---|---|---|"
    cold = next(line for line in summary if line.startswith("| cold sync N=100 |"))
    cells = cold.split(" | ")
    assert cells[1].endswith("**1.36x**") and cells[2].endswith("**1.43x** |")
    full = both_markdown(combined)
    assert full.startswith(both_summary(combined))
    scenario = full.split("\n\n")[1].splitlines()
    assert scenario[0] == "| scenario | OpenBao 2.7.2 | HashiCorp Vault 1.21.0 | target |"
    restart = next(line for line in scenario if line.startswith("| restart (100 synced) |"))
    # Each cell carries its verdict; the target is stated once.
    assert restart.count("(met)") == 2
    assert restart.endswith("| 0 writes, <= 1 login per identity (here 1) |")


def test_a_failed_server_run_is_shown_and_the_other_still_reported() -> None:
    failed = {
        "error": "DevEnvError: vault did not start",
        "vault_server": {"server": "hashicorp", "product": "HashiCorp Vault"},
    }
    combined = _combined(openbao=_results("openbao", "2.7.2", 6.34, 4.67), hashicorp=failed)
    summary = both_summary(combined)
    assert summary.splitlines()[0] == "|  | OpenBao 2.7.2 | HashiCorp Vault |"
    assert "| run | - | failed: DevEnvError: vault did not start |" in summary
    assert "| cold sync N=100 | 6.34 s" in summary
    scenario = both_markdown(combined).split("\n\n")[1].splitlines()
    cold = next(line for line in scenario if line.startswith("| cold sync N=100 |"))
    assert cold.split(" | ")[2] == "-"
