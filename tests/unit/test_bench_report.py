"""bench/report.py: each number is shown next to what the previous run measured."""

from __future__ import annotations

import copy
from typing import Any

from bench.report import markdown, table, with_previous


def _run(seconds: float, n: int = 100) -> dict[str, Any]:
    side = {"seconds": seconds, "per_second": n / seconds, "cpu_seconds": 0.2}
    op = dict(side, kube_writes=2 * n, kube_reads=0, vault_reads=n, vault_logins=1)
    op["kube_writes_by_resource"] = {"apply secrets": n, "patch vaultstaticsecrets/status": n}
    return {
        "cold_sync": [
            {"n": n, "operator": op, "floor": dict(side), "ratio": seconds / side["seconds"]}
        ]
    }


def test_each_row_carries_the_previous_runs_number() -> None:
    now, before = _run(2.0), _run(3.0)
    before["cold_sync"][0]["floor"]["seconds"] = 2.0
    rows = with_previous(now, before)
    cold = next(r for r in rows if r[0] == "cold sync N=100")
    assert cold[1].startswith("2.00s") and cold[2].startswith("3.00s")
    requests = next(r for r in rows if r[0] == "cold sync N=100 Kubernetes requests")
    assert requests[1].startswith("2.00 per resource (0 reads")
    assert requests[4] == "met"
    assert "previous run" in table(now, before) and "| 3.00s" in markdown(now, before)


def test_no_previous_run_or_another_n_shows_a_dash() -> None:
    now = _run(2.0)
    assert all(r[2] == "-" for r in with_previous(now, None))
    other = _run(2.0, n=200)
    assert all(r[2] == "-" for r in with_previous(now, copy.deepcopy(other)))


def test_requests_missed_by_the_audit_window_are_not_a_verdict() -> None:
    # Fewer writes than Secrets: the window lost requests (as a rotated log once did).
    now = _run(2.0)
    op = now["cold_sync"][0]["operator"]
    op.update(kube_writes=0, kube_writes_by_resource={})
    requests = next(r for r in with_previous(now, None) if r[0].endswith("Kubernetes requests"))
    assert requests[4] == "n/a"
    op.update(kube_writes=2 * 100 + 6, kube_writes_by_resource={"apply secrets": 206})
    requests = next(r for r in with_previous(now, None) if r[0].endswith("Kubernetes requests"))
    assert requests[4] == "MISSED"


def test_only_reads_of_the_synced_objects_fail_the_requests_verdict() -> None:
    now = _run(2.0)
    op = now["cold_sync"][0]["operator"]
    # The start-up's reads (login of the VaultAuth) are listed, not held against the objects.
    op.update(kube_reads=6, kube_object_reads=0)
    op["kube_reads_by_resource"] = {"get secrets": 2, "get serviceaccounts": 1, "get vaultauths": 3}
    requests = next(r for r in with_previous(now, None) if r[0].endswith("Kubernetes requests"))
    assert "6 reads, 0 of the synced objects: 2 get secrets" in requests[1]
    assert requests[4] == "met"
    op.update(kube_reads=7, kube_object_reads=1)
    requests = next(r for r in with_previous(now, None) if r[0].endswith("Kubernetes requests"))
    assert requests[4] == "MISSED"


def test_the_cpu_row_tells_the_time_spent_waiting_for_a_core() -> None:
    now = _run(2.0)
    side = now["cold_sync"][0]
    side["operator"].update(runqueue_wait_seconds=3.14, preempted=4210)
    side["floor"].update(runqueue_wait_seconds=1.5, preempted=900)
    cpu = next(r for r in with_previous(now, None) if r[0].endswith("CPU per resource"))
    assert cpu[1].endswith("; waited for a core 3.1 s, preempted 4,210 times (floor 1.5 s, 900)")
    del side["floor"]["runqueue_wait_seconds"]  # a result of before 2026-12-01
    cpu = next(r for r in with_previous(now, None) if r[0].endswith("CPU per resource"))
    assert cpu[1].endswith("(floor 2.00 ms)")
