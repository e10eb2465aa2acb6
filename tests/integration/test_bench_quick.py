"""`python -m bench --quick` end to end: keeps the benchmark harness working.

It runs in its own dev environment (a fresh state directory), because the bench starts its
own operator and floor and must not share a cluster with the session's operator. It asserts
correctness only — every Secret right after each phase — never speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_bench_quick_mode_syncs_every_secret() -> None:
    home = Path(tempfile.mkdtemp(prefix="vb-bench-quick-"))
    env = dict(os.environ, VAULTBRIDGE_DEV_HOME=str(home))
    env.pop("KUBECONFIG", None)
    out = home / "results.json"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
        assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr[-4000:]}"
        results = json.loads(out.read_text())
    finally:
        subprocess.run(
            [sys.executable, "-m", "vaultbridge.cli", "dev", "down"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)

    # Every Secret right: the cold sync checks all 100 by a fresh LIST (and fails the run
    # otherwise); the final check covers them plus the resources created under load, ten of
    # which had their Vault values changed.
    assert results["audited"] is True
    (cold,) = results["cold_sync"]
    assert cold["n"] == 100
    assert cold["operator"]["seconds"] > 0 and cold["floor"]["seconds"] > 0
    final = results["final_check"]
    assert final == {"secrets": 110, "wrong": []}
    assert results["new_under_load"]["created"] == 10
    assert results["vault_change"]["resources"] == 10
    assert results["restart"]["resources"] == 100
    # The audit logs were read: the restart read every path again (logins: 0 or 1, depending
    # on whether the persisted token was adopted).
    assert results["restart"]["vault_reads"] >= 100
    assert isinstance(results["restart"]["vault_logins"], int)
    assert isinstance(results["idle"]["kube_writes"], int)
    assert results["operator_exit_code"] == 0
    # The table renders from these results.
    assert "cold sync N=100" in done.stdout
