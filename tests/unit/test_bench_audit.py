"""bench/audit.py: a window over an audit log survives the API server's rotation of it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.audit import Cursor, Tail, kube_requests


def _append(path: Path, *ids: int, partial: bool = False) -> None:
    with path.open("a") as fh:
        for i in ids:
            fh.write(json.dumps({"id": i}) + "\n")
        if partial:
            fh.write('{"id": ')  # a batch half written


def _ids(entries: list[dict[str, int]]) -> list[int]:
    return [e["id"] for e in entries]


def test_a_window_reads_its_rotated_file_and_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "kube-apiserver-audit.log"
    _append(log, 1, 2)
    cursor, tail = Cursor(log), Tail(log)
    _append(log, 3, 4)
    assert _ids(tail.new_entries()) == [3, 4]
    _append(log, 5)
    # The API server renames the full file with a timestamp and starts a new one.
    log.rename(tmp_path / "kube-apiserver-audit-2026-12-01T06-41-06.396.log")
    _append(log, 6, 7, partial=True)
    assert _ids(cursor.entries()) == [3, 4, 5, 6, 7]
    assert _ids(tail.new_entries()) == [5, 6, 7]
    with log.open("a") as fh:
        fh.write('8}\n{"id": 9}\n')
    assert _ids(tail.new_entries()) == [8, 9]
    assert _ids(cursor.entries()) == [3, 4, 5, 6, 7, 8, 9]


def test_a_window_opened_before_the_log_exists_reads_it_all(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    cursor = Cursor(log)
    assert cursor.entries() == []
    _append(log, 1)
    assert _ids(cursor.entries()) == [1]


def test_reads_of_the_synced_objects_are_told_apart_from_the_start_ups() -> None:
    def entry(verb: str, resource: str, namespace: str, user: str = "op") -> dict[str, object]:
        return {
            "stage": "ResponseComplete",
            "user": {"username": user},
            "verb": verb,
            "objectRef": {"resource": resource, "namespace": namespace},
        }

    counts = kube_requests(
        [
            entry("get", "secrets", "vaultbridge-system"),  # the persisted token
            entry("get", "vaultauths", "bench"),
            entry("get", "secrets", "bench"),  # a synced object's Secret: critical path
            entry("get", "vaultstaticsecrets", "bench"),
            entry("get", "secrets", "bench", user="admin"),  # not the operator
            entry("patch", "secrets", "bench"),
        ],
        "op",
        "bench",
    )
    assert (counts.reads, counts.object_reads, counts.writes) == (4, 2, 1)
    assert counts.reads_by_resource == {
        "get secrets": 2,
        "get vaultauths": 1,
        "get vaultstaticsecrets": 1,
    }
