"""Instant updates, pure logic: audit entry parser, path index, per-path limiter, prefix
filter, routing and the heartbeat gap detector (virtual clocks, no sockets).

`fixtures/openbao_audit_udp.log` holds real datagrams from a socket audit device of OpenBao
2.7 (prefix `vbtest:`), one per line, captured for the requests named in `CAPTURED` below.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from vaultbridge.api.static_secret import VaultStaticSecretSpec
from vaultbridge.changes import (
    AuditChangeSource,
    Grant,
    KVRef,
    ListenAddress,
    MalformedEntry,
    PathIndex,
    PathLimiter,
    StreamLiveness,
    parse_entry,
)
from vaultbridge.controllers.instant import kv_refs, set_instant_updates_condition

FIXTURE = Path(__file__).parent / "fixtures" / "openbao_audit_udp.log"
PREFIX = b"vbtest:"

# (request operation, path, failed) of each captured response, in order.
CAPTURED = [
    ("create", "secret/data/app/db", False),  # kv-v2 write
    ("patch", "secret/data/app/db", False),
    ("read", "secret/data/app/db", False),
    ("delete", "secret/data/app/db", False),  # soft-delete latest
    ("update", "secret/undelete/app/db", False),
    ("update", "secret/delete/app/db", False),  # delete versions
    ("update", "secret/destroy/app/db", False),
    ("update", "secret/metadata/app/db", False),  # metadata write: no data change
    ("delete", "secret/metadata/app/db", False),
    ("create", "kv1/team/api", False),  # kv-v1
    ("delete", "kv1/team/api", False),
    ("update", "secret/data/app/db", True),  # bad token: permission denied
    ("update", "sys/vaultbridge-heartbeat/abc123", True),  # no token
    ("read", "secret/data/vaultbridge-heartbeat/abc124", True),
    ("delete", "sys/mounts/kv1", False),  # mount disabled
]


def captured() -> list[bytes]:
    return [line for line in FIXTURE.read_bytes().splitlines() if line]


def strip(line: bytes) -> bytes:
    assert line.startswith(PREFIX)
    return line[len(PREFIX) :]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- parser ---------------------------------------------------------------------------------


def test_real_entries_parse_to_path_operation_and_outcome() -> None:
    lines = captured()
    assert len(lines) == 2 * len(CAPTURED)  # a request and a response entry per request
    responses = []
    for line in lines:
        entry = parse_entry(strip(line))
        if json.loads(strip(line))["type"] == "request":
            assert entry is None
        else:
            assert entry is not None
            responses.append((entry.operation, entry.path, entry.failed))
    assert responses == CAPTURED


def test_only_successful_kv_writes_are_changes() -> None:
    changes = []
    for line in captured():
        entry = parse_entry(strip(line))
        if entry is not None and entry.change is not None:
            changes.append((entry.path, entry.change))
    assert changes == [
        ("secret/data/app/db", "write"),
        ("secret/data/app/db", "write"),
        ("secret/data/app/db", "delete"),
        ("secret/undelete/app/db", "write"),
        ("secret/delete/app/db", "write"),
        ("secret/destroy/app/db", "write"),
        ("secret/metadata/app/db", "write"),  # a change, but the index does not watch it
        ("secret/metadata/app/db", "delete"),
        ("kv1/team/api", "write"),
        ("kv1/team/api", "delete"),
        ("sys/mounts/kv1", "delete"),
    ]


def test_mount_type_of_the_real_entries() -> None:
    types = {
        e.path: e.mount_type for line in captured() if (e := parse_entry(strip(line))) is not None
    }
    assert types["secret/data/app/db"] == "kv"
    assert types["sys/mounts/kv1"] == "system"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"no": "type"}',
        b'{"type": "response"}',
        b'{"type": "response", "request": {"path": 3, "operation": "update"}}',
        b'{"type": "response", "request": "x"}',
        b"{" * 100_000,
    ],
)
def test_garbage_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedEntry) as info:
        parse_entry(raw)
    # The message names the problem, never the input (it could be anything).
    assert str(info.value) in (
        "not JSON", "not a JSON object", "no entry type", "no request object",
        "no request path or operation", "entry too large",
    )  # fmt: skip


def test_other_engines_and_reads_are_not_changes() -> None:
    def entry(op: str, path: str, mount_type: str | None = None, error: str = "") -> bytes:
        req: dict[str, object] = {"operation": op, "path": path}
        if mount_type is not None:
            req["mount_type"] = mount_type
        return json.dumps({"type": "response", "request": req, "error": error}).encode()

    assert parse_entry(entry("update", "database/creds/x", "database")).change is None  # type: ignore[union-attr]
    assert parse_entry(entry("read", "secret/data/x", "kv")).change is None  # type: ignore[union-attr]
    assert parse_entry(entry("list", "secret/metadata/", "kv")).change is None  # type: ignore[union-attr]
    assert parse_entry(entry("update", "secret/data/x", "kv", "boom")).change is None  # type: ignore[union-attr]
    # Servers without mount_type (Vault < 1.16): the path decides.
    assert parse_entry(entry("update", "/secret//data/x/")).change == "write"  # type: ignore[union-attr]
    assert parse_entry(entry("update", "/secret//data/x/")).path == "secret/data/x"  # type: ignore[union-attr]


# -- path index -----------------------------------------------------------------------------


def test_index_maps_kv2_paths_and_operations() -> None:
    index: PathIndex[str] = PathIndex()
    index.replace("a", [KVRef("secret", "app/db", 2)])
    for path, op in [
        ("secret/data/app/db", "write"),
        ("secret/data/app/db", "delete"),
        ("secret/delete/app/db", "write"),
        ("secret/undelete/app/db", "write"),
        ("secret/destroy/app/db", "write"),
        ("secret/metadata/app/db", "delete"),
        ("sys/mounts/secret", "delete"),
    ]:
        assert index.lookup(path, op) == {"a"}, (path, op)  # type: ignore[arg-type]
    assert index.lookup("secret/metadata/app/db", "write") == set()
    assert index.lookup("secret/data/app/db2", "write") == set()
    assert index.lookup("secret/data/app", "write") == set()
    assert index.lookup("secret/app/db", "write") == set()  # a kv-v1 path on a kv-v2 mount
    assert index.lookup("sys/mounts/other", "delete") == set()


def test_index_maps_kv1_and_normalises_slashes() -> None:
    index: PathIndex[str] = PathIndex()
    index.replace("a", [KVRef("/kv1/", "team//api/", 1)])
    assert index.lookup("kv1/team/api", "write") == {"a"}
    assert index.lookup("/kv1/team/api/", "delete") == {"a"}
    assert index.lookup("kv1/data/team/api", "write") == set()
    assert index.lookup("sys/mounts/kv1", "delete") == {"a"}


def test_index_multi_source_replace_and_remove() -> None:
    index: PathIndex[str] = PathIndex()
    index.replace("multi", [KVRef("secret", "a", 2), KVRef("kv1", "b", 1)])
    index.replace("single", [KVRef("secret", "a", 2)])
    assert index.lookup("secret/data/a", "write") == {"multi", "single"}
    assert index.lookup("kv1/b", "write") == {"multi"}
    assert index.registered() == {"multi", "single"}
    # An edit drops source b: it stops matching at once.
    index.replace("multi", [KVRef("secret", "a", 2)])
    assert index.lookup("kv1/b", "write") == set()
    assert index.lookup("sys/mounts/kv1", "delete") == set()
    index.remove("single")
    assert index.lookup("secret/data/a", "write") == {"multi"}
    index.replace("multi", [])  # opted out
    assert index.lookup("secret/data/a", "write") == set()
    assert len(index) == 0
    index.remove("never-there")
    # Nothing left behind in the internal tables.
    assert not index._watch and not index._mounts


def test_index_nested_mount() -> None:
    index: PathIndex[str] = PathIndex()
    index.replace("a", [KVRef("team/kv", "x", 2)])
    assert index.lookup("team/kv/data/x", "write") == {"a"}
    assert index.lookup("sys/mounts/team/kv", "delete") == {"a"}
    assert index.lookup("sys/mounts/team", "delete") == set()


# -- per-path limiter -----------------------------------------------------------------------


def test_limiter_grants_n_per_window_then_defers_once() -> None:
    clock = Clock()
    lim = PathLimiter(3, 10.0, clock=clock)
    assert [lim.check("p") for _ in range(3)] == [Grant.NOW] * 3
    assert lim.check("p") is Grant.DEFERRED
    assert all(lim.check("p") is Grant.ABSORBED for _ in range(1000))
    assert lim.check("q") is Grant.NOW  # per path
    clock.now += 4
    assert lim.deferred_delay("p") == pytest.approx(6.0)
    clock.now += 6
    lim.fired("p")  # the deferred re-read opens the next window and counts in it
    assert [lim.check("p") for _ in range(3)] == [Grant.NOW, Grant.NOW, Grant.DEFERRED]


def test_limiter_flood_costs_at_most_limit_per_window() -> None:
    clock = Clock()
    lim = PathLimiter(2, 1.0, clock=clock)
    granted = 0
    pending = False
    for i in range(100_000):  # 10 s at 10,000 entries/s, on one path
        clock.now = 1000.0 + i / 10_000
        if pending and lim.deferred_delay("p") == 0:
            lim.fired("p")
            granted += 1
            pending = False
        g = lim.check("p")
        granted += g is Grant.NOW
        pending = pending or g is Grant.DEFERRED
    assert granted <= 2 * 10 + 2


def test_limiter_memory_is_bounded() -> None:
    clock = Clock()
    lim = PathLimiter(1, 10.0, max_paths=100, clock=clock)
    assert all(lim.check(f"p{i}") is Grant.NOW for i in range(100))
    assert lim.check("one-more") is Grant.REFUSED
    clock.now += 10
    assert lim.check("one-more") is Grant.NOW  # expired windows are pruned
    assert len(lim) <= 100


# -- routing: prefix, parse, index, limiter, enqueue ----------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[set[str], bool]] = []

    def __call__(self, keys: Collection[str], *, resync: bool) -> None:
        self.calls.append((set(keys), resync))


def source(
    prefix: str = "", limit: int = 100, liveness: StreamLiveness | None = None
) -> tuple[AuditChangeSource[str], Recorder]:
    index: PathIndex[str] = PathIndex()
    index.replace("ns/app", [KVRef("secret", "app/db", 2)])
    index.replace("ns/team", [KVRef("kv1", "team/api", 1)])
    rec = Recorder()
    return (
        AuditChangeSource(
            index, rec, limiter=PathLimiter(limit, 60.0), liveness=liveness, prefix=prefix
        ),
        rec,
    )


def test_real_stream_enqueues_the_right_keys() -> None:
    src, rec = source(prefix="vbtest:")
    for line in captured():
        src.handle(line)
    assert [keys for keys, _ in rec.calls] == [
        {"ns/app"},  # create
        {"ns/app"},  # patch
        {"ns/app"},  # delete latest
        {"ns/app"},  # undelete
        {"ns/app"},  # delete versions
        {"ns/app"},  # destroy
        {"ns/app"},  # metadata delete
        {"ns/team"},  # kv-v1 write
        {"ns/team"},  # kv-v1 delete
        {"ns/team"},  # mount kv1 disabled
    ]
    assert not any(resync for _, resync in rec.calls)
    assert src.stats["received"] == len(captured())
    assert src.stats["matched"] == 10
    assert src.stats["ignored:not_response"] == len(CAPTURED)


def test_prefix_drops_foreign_traffic() -> None:
    src, rec = source(prefix="s3cr3t|")
    for line in captured():
        src.handle(line)  # prefixed with vbtest:, not ours
    assert rec.calls == []
    assert src.stats["dropped:prefix"] == len(captured())
    src.handle(b"s3cr3t|" + strip(captured()[1]))
    assert rec.calls == [({"ns/app"}, False)]


def test_garbage_never_raises_and_is_counted() -> None:
    src, rec = source()
    for raw in (b"", b"\x00" * 10, b"{", b"[]", b'{"type":"response","request":{}}', b"x" * 70_000):
        src.handle(raw)
    assert rec.calls == []
    assert src.stats["dropped:malformed"] == 6


def test_forged_flood_on_one_path_costs_the_rate_limit() -> None:
    src, rec = source(limit=5)
    forged = strip(captured()[1])  # a real kv-v2 write response, replayed
    for _ in range(10_000):
        src.handle(forged)
    assert len(rec.calls) == 5
    assert src.stats["deferred:rate_limited"] == 1  # one trailing re-read (needs a loop)
    assert src.stats["deferred:absorbed"] == 10_000 - 6


def test_heartbeat_is_not_a_change_and_resync_re_reads_all() -> None:
    clock = Clock()
    live = StreamLiveness(interval=10, timeout=30, clock=clock)
    src, rec = source(liveness=live)
    ((target, path),) = live.beat_targets(["http://vault:8200"])
    beat = json.dumps(
        {"type": "response", "request": {"operation": "read", "path": path}, "error": "denied"}
    ).encode()
    src.handle(beat)
    assert live.is_live(target)
    assert rec.calls == []
    src.resync()
    assert rec.calls == [({"ns/app", "ns/team"}, True)]


# -- liveness / gap detection ---------------------------------------------------------------


def _echo(live: StreamLiveness, path: str) -> None:
    assert live.observed(path)


def test_liveness_start_then_missed_heartbeat_then_resync_once() -> None:
    clock = Clock()
    resyncs: list[float] = []
    changes: list[tuple[str, bool]] = []
    live = StreamLiveness(
        interval=10,
        timeout=30,
        min_resync_interval=60,
        on_resync=lambda: resyncs.append(clock.now),
        on_live_change=lambda t, v: changes.append((t, v)),
        clock=clock,
    )
    assert not live.is_live()
    ((_, path),) = live.beat_targets(["v"])
    _echo(live, path)
    assert live.is_live("v") and resyncs == []  # a process start is not a gap
    # A heartbeat is lost (dropped datagram).
    clock.now += 10
    ((_, lost),) = live.beat_targets(["v"])
    clock.now += 30
    live.tick()
    assert not live.is_live("v")
    assert changes == [("v", True), ("v", False)]
    # The next one comes back: live again, and everything is re-read once.
    ((_, path),) = live.beat_targets(["v"])
    _echo(live, path)
    assert live.is_live("v") and resyncs == [clock.now]
    # A late echo of the lost beat proves nothing and triggers nothing.
    assert live.observed(lost)
    assert len(resyncs) == 1


def test_liveness_resyncs_are_spaced() -> None:
    clock = Clock()
    resyncs: list[float] = []
    live = StreamLiveness(
        interval=10,
        timeout=30,
        min_resync_interval=60,
        on_resync=lambda: resyncs.append(clock.now),
        clock=clock,
    )
    ((_, path),) = live.beat_targets(["v"])
    _echo(live, path)
    for _ in range(5):  # a flood: overload drops every few seconds
        clock.now += 5
        live.gap()
        ((_, path),) = live.beat_targets(["v"])
        _echo(live, path)
        live.tick()
    assert len(resyncs) == 1
    clock.now += 60
    live.tick()  # the pending resync runs when its turn comes
    assert len(resyncs) == 2


def test_forged_or_unknown_heartbeats_prove_nothing() -> None:
    live = StreamLiveness(interval=10, timeout=30, clock=Clock())
    live.beat_targets(["v"])
    assert live.observed("sys/vaultbridge-heartbeat/guess")
    assert not live.is_live("v")
    assert not live.observed("secret/data/x")


def test_liveness_forgets_servers_no_longer_used() -> None:
    live = StreamLiveness(interval=10, timeout=30, clock=Clock())
    beats = live.beat_targets(["a", "b"])
    for _, path in beats:
        _echo(live, path)
    assert live.is_live()
    live.beat_targets(["a"])
    assert live.targets() == {"a": True}


# -- listen address, API glue ---------------------------------------------------------------


def test_listen_address() -> None:
    assert ListenAddress.parse("udp://127.0.0.1:8201") == ListenAddress("udp", "127.0.0.1", 8201)
    assert str(ListenAddress.parse("tcp://[::1]:9000")) == "tcp://[::1]:9000"
    for bad in ("127.0.0.1:8201", "http://x:1", "udp://x", "udp://x:99999", "udp://x:1/p"):
        with pytest.raises(ValueError, match="udp://"):
            ListenAddress.parse(bad)


def _obj(spec: Mapping[str, object]) -> dict[str, object]:
    return {"metadata": {"namespace": "ns", "name": "n"}, "spec": spec}


def test_kv_refs_of_opted_in_objects_only() -> None:
    dest = {"destination": {"name": "s", "create": True}}
    single = {"mount": "secret", "path": "a", "type": "kv-v2", **dest}
    assert kv_refs(_obj(single)) == []
    assert kv_refs(_obj({**single, "syncConfig": {"instantUpdates": False}})) == []
    assert kv_refs(_obj({**single, "syncConfig": {"instantUpdates": True}})) == [
        KVRef("secret", "a", 2)
    ]
    multi = {
        "sources": [
            {"mount": "secret", "path": "a", "type": "kv-v2"},
            {"mount": "kv1", "path": "b", "type": "kv-v1", "prefix": "b_"},
        ],
        "syncConfig": {"instantUpdates": True},
        **dest,
    }
    assert kv_refs(_obj(multi)) == [KVRef("secret", "a", 2), KVRef("kv1", "b", 1)]
    assert kv_refs(_obj({"syncConfig": {"instantUpdates": True}})) == []  # invalid spec


def test_instant_updates_condition() -> None:
    base = {"mount": "secret", "path": "a", "type": "kv-v2", "destination": {"name": "s"}}
    on = VaultStaticSecretSpec.model_validate({**base, "syncConfig": {"instantUpdates": True}})
    off = VaultStaticSecretSpec.model_validate(base)
    status: dict[str, Any] = {}
    set_instant_updates_condition(status, on, stream_enabled=True, live=True, generation=3)
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("InstantUpdates", "True", "Live")
    set_instant_updates_condition(status, on, stream_enabled=True, live=False, generation=3)
    assert status["conditions"][0]["reason"] == "NoHeartbeat"
    set_instant_updates_condition(status, on, stream_enabled=False, live=False, generation=3)
    assert status["conditions"][0]["reason"] == "AuditStreamDisabled"
    set_instant_updates_condition(status, off, stream_enabled=True, live=True, generation=4)
    assert status["conditions"] == []
