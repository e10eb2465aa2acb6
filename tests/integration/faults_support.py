"""Shared pieces of the fault-injection tests (`pytest -m faults`, run by `make test-faults`).

Fault tests freeze, seal or restart the servers of their session and kill the operator, so
they never share an environment with the ordinary suite: `make test-faults` runs them in
their own pytest session with a throwaway `VAULTBRIDGE_DEV_HOME`. Each test starts and stops
its own operator process (never the session `operator` fixture) and so owns its logs.
This module holds no tests; its fixtures (`fault_app`, `own_operator`) are in conftest.py.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin

from .helpers import App, wait_for
from .operator_harness import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    start_operator,
)


class OwnOperator:
    """Start/stop helper so a test can kill and restart its operator; always stopped at the end."""

    def __init__(self, devenv: DevState) -> None:
        self.devenv = devenv
        self.current: OperatorProcess | None = None
        self.all: list[OperatorProcess] = []

    def start(self, *extra: str) -> OperatorProcess:
        assert self.current is None or self.current.proc is None
        self.current = start_operator(self.devenv, *extra)
        self.all.append(self.current)
        return self.current

    @property
    def op(self) -> OperatorProcess:
        assert self.current is not None
        return self.current

    def pid(self) -> int:
        assert self.current is not None and self.current.proc is not None
        return self.current.proc.pid

    def stop(self) -> int | None:
        return self.current.stop() if self.current is not None else None

    def stop_with(self, sig: int) -> int | None:
        return self.current.stop(sig) if self.current is not None else None

    def log_text(self) -> str:
        return "\n".join(p.log_text() for p in self.all)


def bao(devenv: DevState) -> BaoAdmin:
    return BaoAdmin(devenv.vault_addr, devenv.vault_root_token)


def log_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def log_time(record: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(record["ts"]).timestamp()


def failures_by_resource(
    text: str, namespace: str, since: float, until: float
) -> dict[str, list[float]]:
    """Wall-clock times of the operator's "sync failed" lines, per resource of `namespace`."""
    found: dict[str, list[float]] = {}
    for rec in log_records(text):
        resource = str(rec.get("resource") or "")
        if not rec.get("msg", "").startswith("sync failed") or f"/{namespace}/" not in resource:
            continue
        t = log_time(rec)
        if since <= t <= until:
            found.setdefault(resource, []).append(t)
    return found


def max_in_window(times: list[float], window: float) -> int:
    """Largest number of `times` inside any interval of length `window`."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


#: Planted in every Vault value of the fault tests: faults make for unusual error paths.
CANARY = "canary-faults-3e8a-never-log"


def assert_no_canary(app: App, op_log: str) -> None:
    """No canary in the operator's log, nor in the events and statuses of `app`'s namespace."""
    assert CANARY not in op_log
    _, events = app.admin.request("GET", f"/api/v1/namespaces/{app.ns}/events")
    for event in events.get("items", []):
        assert CANARY not in json.dumps(event), event["reason"]
    for obj in list_vss(app.admin, app.ns):
        assert CANARY not in json.dumps(obj.get("status") or {})


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def managed_secrets(admin: KubeAdmin, namespace: str) -> list[dict[str, Any]]:
    status, resp = admin.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/secrets"
        "?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dvaultbridge",
        timeout=30,
    )
    assert status == 200, resp
    return list(resp.get("items") or [])


def list_vss(admin: KubeAdmin, namespace: str) -> list[dict[str, Any]]:
    status, resp = admin.request(
        "GET",
        f"/apis/vaultbridge.dev/v1beta1/namespaces/{namespace}/vaultstaticsecrets",
        timeout=30,
    )
    assert status == 200, resp
    return list(resp.get("items") or [])


def synced(obj: dict[str, Any]) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "SecretSynced" and c["status"] == "True" for c in conds)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return None


def assert_one_owned_secret_each(admin: KubeAdmin, namespace: str) -> None:
    """Every VaultStaticSecret owns exactly one Secret and every managed Secret has a live owner."""
    owners = {o["metadata"]["uid"]: o["metadata"]["name"] for o in list_vss(admin, namespace)}
    secrets = managed_secrets(admin, namespace)
    count: dict[str, int] = {}
    for s in secrets:
        refs = s["metadata"].get("ownerReferences") or []
        assert len(refs) == 1, s["metadata"]
        assert refs[0]["uid"] in owners, f"orphan Secret {s['metadata']['name']}"
        count[refs[0]["uid"]] = count.get(refs[0]["uid"], 0) + 1
    assert set(count) == set(owners), f"{len(owners) - len(count)} resources without a Secret"
    assert all(n == 1 for n in count.values()), "a resource owns two Secrets"


def create_many(app: App, names: list[str], path_of: Any, **spec: Any) -> None:
    for name in names:
        app.vss(name, path=path_of(name), **spec)


def wait_all_synced(admin: KubeAdmin, namespace: str, expected: int, timeout: float) -> None:
    def done() -> bool:
        items = list_vss(admin, namespace)
        return len(items) == expected and all(synced(o) for o in items)

    wait_for(done, timeout, f"{expected} VaultStaticSecrets synced in {namespace}")


__all__ = ["OPERATOR_NAMESPACE", "time"]
