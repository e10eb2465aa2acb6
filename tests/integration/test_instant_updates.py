"""Instant updates against the real OpenBao of the dev environment and its UDP socket audit
device (devenv/audit_stream.py): the receiver in-process, then the real operator process.

No assertion on elapsed time: waits have generous deadlines; costs are counted (enqueues,
Vault reads in OpenBao's own file audit log, failed requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from vaultbridge.changes import AuditStreamReceiver, KVRef, ListenAddress
from vaultbridge.changes.stream import AuditStream, StreamConfig
from vaultbridge.devenv.environment import DevState, env_lines
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin

from .helpers import OwnApp, wait_for
from .operator_harness import OperatorProcess, ensure_operator_namespace, start_operator

pytestmark = pytest.mark.integration


class Enqueued:
    def __init__(self) -> None:
        self.calls: list[tuple[frozenset[str], bool]] = []

    def __call__(self, keys: Collection[str], *, resync: bool) -> None:
        self.calls.append((frozenset(keys), resync))

    def changed(self, *, resync: bool = False) -> list[frozenset[str]]:
        return [k for k, r in self.calls if r == resync]


def _stream_config(devenv: DevState, **overrides: Any) -> StreamConfig:
    values: dict[str, Any] = {
        "listen": ListenAddress("udp", "127.0.0.1", devenv.ports["audit-stream"]),
        "prefix": devenv.audit_stream_prefix,
        "heartbeat_interval": 0.5,
    }
    values.update(overrides)
    return StreamConfig(**values)


def _unauthenticated_get(addr: str, path: str) -> None:
    try:
        with urllib.request.urlopen(f"{addr}/v1/{path}", timeout=5):
            pass
    except urllib.error.HTTPError:
        pass  # 403 expected: the request is audited all the same


async def _running_stream(
    devenv: DevState, enqueued: Enqueued, **overrides: Any
) -> AuditStream[str]:
    stream: AuditStream[str] = AuditStream(_stream_config(devenv, **overrides), enqueued)

    async def send(target: str, path: str) -> None:
        await asyncio.to_thread(_unauthenticated_get, target, path)

    await stream.start(send, lambda: [devenv.vault_addr] if len(stream.index) else [])
    return stream


async def _until(predicate: Any, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def bao(devenv: DevState) -> BaoAdmin:
    return BaoAdmin(devenv.vault_addr, devenv.vault_root_token)


# -- the receiver against the real OpenBao --------------------------------------------------


async def test_kv_writes_reach_the_receiver_and_map_to_keys(
    devenv: DevState, bao: BaoAdmin, namespace: str
) -> None:
    enqueued = Enqueued()
    stream = await _running_stream(devenv, enqueued)
    try:
        stream.index.replace("ns/v2", [KVRef("secret", f"{namespace}/a", 2)])
        stream.index.replace(
            "ns/multi", [KVRef("secret", f"{namespace}/a", 2), KVRef("kv1", f"{namespace}/b", 1)]
        )
        stream.index.replace("ns/other", [KVRef("secret", f"{namespace}/unrelated", 2)])
        # The heartbeat goes through OpenBao and comes back: the stream is live.
        await _until(lambda: stream.is_live(devenv.vault_addr), what="a heartbeat echo")

        bao.must("POST", f"secret/data/{namespace}/a", {"data": {"k": "1"}})
        await _until(lambda: len(enqueued.changed()) >= 1, what="the kv-v2 write")
        assert enqueued.changed()[0] == {"ns/v2", "ns/multi"}

        bao.must("POST", f"kv1/{namespace}/b", {"k": "2"})
        await _until(lambda: len(enqueued.changed()) >= 2, what="the kv-v1 write")
        assert enqueued.changed()[1] == {"ns/multi"}

        bao.must("DELETE", f"secret/data/{namespace}/a")  # soft delete of the latest version
        await _until(lambda: len(enqueued.changed()) >= 3, what="the kv-v2 delete")
        assert enqueued.changed()[2] == {"ns/v2", "ns/multi"}

        bao.must("POST", f"secret/data/{namespace}/not-watched", {"data": {"k": "3"}})
        bao.call("GET", f"secret/data/{namespace}/a")  # a read: never a change
        bao.must("POST", f"secret/data/{namespace}/a", {"data": {"k": "4"}})  # a sentinel
        await _until(lambda: len(enqueued.changed()) >= 4, what="the sentinel write")
        assert enqueued.changed()[3] == {"ns/v2", "ns/multi"}
        assert len(enqueued.changed()) == 4  # the unwatched write and the read enqueued nothing
        assert stream.source.stats["dropped:prefix"] == 0
        assert stream.source.stats["ignored:unwatched"] >= 1
        assert enqueued.changed(resync=True) == []  # no gap
    finally:
        await stream.stop()


class Forger(threading.Thread):
    """Sends datagrams at ``rate`` per second for ``seconds`` from another thread."""

    def __init__(self, port: int, payloads: list[bytes], rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.payloads = payloads
        self.rate = rate
        self.seconds = seconds
        self.sent = 0

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        start = time.monotonic()
        total = int(self.rate * self.seconds)
        try:
            while self.sent < total:
                due = start + self.sent / self.rate
                ahead = due - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                payload = self.payloads[self.sent % len(self.payloads)]
                with contextlib.suppress(OSError):  # ECONNREFUSED after an ICMP error
                    sock.sendto(payload, ("127.0.0.1", self.port))
                self.sent += 1
        finally:
            sock.close()


def _forged_write(path: str) -> bytes:
    return json.dumps(
        {
            "type": "response",
            "request": {"operation": "update", "path": path, "mount_type": "kv"},
            "response": {"data": {"version": 99}},
        }
    ).encode()


async def test_forged_stream_costs_at_most_the_rate_limit(
    devenv: DevState, bao: BaoAdmin, namespace: str
) -> None:
    enqueued = Enqueued()
    limit, interval = 3, 2.0
    stream = await _running_stream(devenv, enqueued, path_limit=limit, path_interval=interval)
    prefix = devenv.audit_stream_prefix.encode()
    watched = f"secret/data/{namespace}/victim"
    try:
        stream.index.replace("ns/victim", [KVRef("secret", f"{namespace}/victim", 2)])
        payloads = [
            b"garbage",
            b"\x00\xff" * 100,
            _forged_write(watched),  # no prefix: foreign traffic
            prefix + b"{not json",
            prefix + _forged_write(f"secret/data/{namespace}/other-team"),
            prefix + _forged_write(watched),  # the worst case: the forger knows the prefix
            prefix + b"x" * 60_000,  # a large datagram of garbage
        ]
        seconds = 10.0  # the flood: 10,000 datagrams/s for 10 s
        forger = Forger(devenv.ports["audit-stream"], payloads, rate=10_000, seconds=seconds)
        started = time.monotonic()
        forger.start()
        await asyncio.to_thread(forger.join)
        # The trailing (deferred) re-read fires at the end of the last window.
        await asyncio.sleep(interval + 0.5)
        elapsed = time.monotonic() - started
        windows = int(elapsed / interval) + 2
        victim = [k for k in enqueued.changed() if "ns/victim" in k]
        print(
            f"forged {forger.sent} datagrams in {seconds}s; received "
            f"{stream.source.stats['received']}; enqueues for the victim path: {len(victim)}; "
            f"stats {dict(stream.source.stats)}"
        )
        assert forger.sent == int(10_000 * seconds)
        assert 0 < len(victim) <= limit * windows
        assert all(k == {"ns/victim"} for k in enqueued.changed())  # the other team's path: none
        assert stream.source.stats["dropped:prefix"] > 0
        assert stream.source.stats["dropped:malformed"] > 0
        # Still alive and serving real traffic afterwards.
        before = len(enqueued.changed())
        await asyncio.sleep(interval)  # let the victim path's window close
        bao.must("POST", watched, {"data": {"real": "write"}})
        await _until(lambda: len(enqueued.changed()) > before, what="a real write after the flood")
    finally:
        await stream.stop()


async def test_tcp_receiver_frames_lines_and_survives_garbage(devenv: DevState) -> None:
    got: list[bytes] = []
    receiver = AuditStreamReceiver(ListenAddress("tcp", "127.0.0.1", 0), got.append)
    await receiver.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(b'{"a":1}\n{"b"')
        writer.write(b":2}\n\n" + b"y" * 70_000 + b"\n" + b'{"c":3}\n')
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await _until(lambda: len(got) >= 3, what="three entries")
        assert got == [b'{"a":1}', b'{"b":2}', b'{"c":3}']  # the oversized line was dropped
    finally:
        await receiver.stop()


def test_udp_device_without_listener_never_fails_requests(
    devenv: DevState, bao: BaoAdmin, namespace: str
) -> None:
    """Nobody listens on the device's port during this test (the dev environment's default)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", devenv.ports["audit-stream"]))  # proves the port is free...
    finally:
        probe.close()  # ...and leaves it so
    failures = 0
    for i in range(300):
        status, _ = bao.call("POST", f"secret/data/{namespace}/dead-{i % 5}", {"data": {"i": i}})
        failures += status >= 400
    assert failures == 0


# -- the operator ---------------------------------------------------------------------------


class AuditLog:
    """OpenBao's file audit device, read from an offset: what the server really served."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def responses(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        entries = []
        for line in data.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("type") == "response":
                entries.append(entry)
        return entries

    def reads(self, path: str) -> int:
        return sum(
            1
            for e in self.responses()
            if e["request"].get("operation") == "read" and e["request"].get("path") == path
        )


def dev_env_exports(devenv: DevState) -> dict[str, str]:
    """What `eval "$(vaultbridge dev env)"` puts in the environment for the operator."""
    exports = {}
    for line in env_lines(devenv):
        name, _, value = line.removeprefix("export ").partition("=")
        if name.startswith("VAULTBRIDGE_AUDIT_STREAM_"):
            exports[name] = shlex.split(value)[0]
    return exports


def start_instant_operator(app: OwnApp) -> OperatorProcess:
    # Only the selector (test isolation): the audit stream comes from the dev env exports.
    return start_operator(
        app.devenv, "--resource-selector", f"vaultbridge.dev/test-operator={app.ident}"
    )


@pytest.fixture
def own_app(
    devenv: DevState,
    kube_admin: KubeAdmin,
    namespace: str,
    crds_installed: None,
    monkeypatch: pytest.MonkeyPatch,
) -> OwnApp:
    exports = dev_env_exports(devenv)
    assert exports == {
        "VAULTBRIDGE_AUDIT_STREAM_LISTEN": f"udp://127.0.0.1:{devenv.ports['audit-stream']}",
        "VAULTBRIDGE_AUDIT_STREAM_PREFIX": devenv.audit_stream_prefix,
    }
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    ensure_operator_namespace(kube_admin, devenv)
    app = OwnApp(devenv, kube_admin, namespace)
    app.setup_own_auth()
    return app


@pytest.fixture
def instant_operator(own_app: OwnApp) -> Iterator[tuple[OwnApp, OperatorProcess]]:
    op = start_instant_operator(own_app)
    yield own_app, op
    rc = op.stop()
    assert rc == 0, op.log_tail()


def _wait_live(op: OperatorProcess) -> None:
    wait_for(
        lambda: op.metric("vaultbridge_audit_stream_live") == 1,
        90,
        "the operator's heartbeat to come back through OpenBao",
    )


@pytest.mark.both_servers
def test_operator_follows_vault_writes_without_polling(
    instant_operator: tuple[OwnApp, OperatorProcess], devenv: DevState
) -> None:
    app, op = instant_operator
    ns = app.ns
    app.vault.kv_put(f"{ns}/db", {"password": "v1"})
    app.vault.kv_put(f"{ns}/b", {"token": "t1"}, mount="kv1")
    instant = {"instantUpdates": True}
    app.vss("db", refreshAfter="1h", syncConfig=instant)
    app.vss(
        "multi",
        refreshAfter="1h",
        syncConfig=instant,
        sources=[
            {"mount": "secret", "path": f"{ns}/db", "type": "kv-v2", "prefix": "a_"},
            {"mount": "kv1", "path": f"{ns}/b", "type": "kv-v1", "prefix": "b_"},
        ],
    )
    app.vss("polled", dest="polled", refreshAfter="1h", path=f"{ns}/db")  # not opted in
    app.wait_data("db", {"password": "v1"}, timeout=60)
    app.wait_data("multi", {"a_password": "v1", "b_token": "t1"}, timeout=60)
    app.wait_data("polled", {"password": "v1"}, timeout=60)
    _wait_live(op)

    log = AuditLog(devenv.vault_audit_log)
    kv2_path, kv1_path = f"secret/data/{ns}/db", f"kv1/{ns}/b"
    time.sleep(3)  # a quiet period: nothing changes in Vault, so nothing is read
    assert log.reads(kv2_path) == 0 and log.reads(kv1_path) == 0

    # A kv-v2 write: both opted-in objects follow; the polled one does not (refreshAfter 1h).
    started = time.monotonic()
    app.vault.kv_put(f"{ns}/db", {"password": "v2"})
    app.wait_data("db", {"password": "v2"}, timeout=60)
    follow = time.monotonic() - started
    app.wait_data("multi", {"a_password": "v2", "b_token": "t1"}, timeout=60)
    # A kv-v1 write reaches the multi-source object.
    app.vault.kv_put(f"{ns}/b", {"token": "t2"}, mount="kv1")
    app.wait_data("multi", {"a_password": "v2", "b_token": "t2"}, timeout=60)
    polled = app.secret_data("polled")
    assert polled is not None and polled["password"] == "v1"

    # Reads happen only because of the changes: db once for the kv-v2 write, multi once per
    # write (it reads both paths each time). The Secret write's own MODIFIED event brings
    # nobody back (engine/echoes.py), so one read per (object, change): kv-v2 is read by db
    # once and by multi twice, kv-v1 by multi twice. A resync (a gap in the stream) re-reads
    # every opted-in object once. Never a periodic read, and a quiet period costs 0.
    resyncs = op.metric("vaultbridge_audit_stream_entries_total", result="resync", reason="")
    kv2_reads, kv1_reads = log.reads(kv2_path), log.reads(kv1_path)
    print(f"follow latency {follow:.2f}s; reads kv2={kv2_reads} kv1={kv1_reads}; resyncs {resyncs}")
    assert kv2_reads <= 1 + 2 + 2 * resyncs
    assert kv1_reads <= 2 + resyncs
    assert op.metric("vaultbridge_audit_stream_entries_total", result="matched", reason="") >= 2
    quiet = AuditLog(devenv.vault_audit_log)
    time.sleep(3)
    assert quiet.reads(kv2_path) == 0 and quiet.reads(kv1_path) == 0

    # A delete: the Secret keeps its last data and the object reports the missing path.
    app.vault.bao.must("DELETE", f"secret/metadata/{ns}/db")
    app.wait_condition("db", "SecretSynced", "False", timeout=60)
    kept = app.secret_data("db")
    assert kept is not None and kept["password"] == "v2"


def _timed_writes(bao: BaoAdmin, path: str, count: int) -> tuple[list[float], int]:
    latencies, failures = [], 0
    for i in range(count):
        started = time.perf_counter()
        status, _ = bao.call("POST", path, {"data": {"i": i}})
        latencies.append(time.perf_counter() - started)
        failures += status >= 400
    return latencies, failures


FROZEN_SECONDS = 30.0  # issue #15: "SIGSTOP'ed for 30 s and then killed"


def test_frozen_then_killed_operator_costs_vault_nothing(own_app: OwnApp) -> None:
    """SIGSTOP the operator (its socket stays bound, unread), then SIGKILL it: no Vault request
    fails meanwhile; a new operator brings the change made meanwhile to the Secret."""
    app = own_app
    ns = app.ns
    bao = app.vault.bao
    app.vault.kv_put(f"{ns}/db", {"password": "v1"})
    app.vss("db", refreshAfter="1h", syncConfig={"instantUpdates": True})
    op = start_instant_operator(app)
    try:
        app.wait_data("db", {"password": "v1"}, timeout=60)
        _wait_live(op)
        noise = f"secret/data/{ns}/noise"
        before, failed_before = _timed_writes(bao, noise, 150)
        assert op.proc is not None
        op.proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            app.vault.kv_put(f"{ns}/db", {"password": "while-frozen"})
            during, failed_during = _timed_writes(bao, noise, 150)
            # Frozen for the 30 s, Vault written to all along (a frozen receiver's
            # socket buffer fills up within the first seconds; what matters is after that).
            while time.monotonic() - frozen_at < FROZEN_SECONDS:
                more, failed_more = _timed_writes(bao, noise, 10)
                during += more
                failed_during += failed_more
        finally:
            op.proc.send_signal(signal.SIGKILL)
            op.proc.wait()
        print(
            f"Vault KV write p50 before {statistics.median(before) * 1000:.1f} ms, while the "
            f"operator is frozen ({len(during)} writes in {FROZEN_SECONDS:.0f} s) "
            f"{statistics.median(during) * 1000:.1f} ms; max "
            f"{max(before) * 1000:.1f} / {max(during) * 1000:.1f} ms"
        )
        assert failed_before == 0 and failed_during == 0
        unchanged = app.secret_data("db")  # nobody reconciled while frozen
        assert unchanged is not None and unchanged["password"] == "v1"
    finally:
        op.stop()
    op = start_instant_operator(app)
    try:
        app.wait_data("db", {"password": "while-frozen"}, timeout=60)
        _wait_live(op)
        app.vault.kv_put(f"{ns}/db", {"password": "after"})  # and it follows again
        app.wait_data("db", {"password": "after"}, timeout=60)
    finally:
        assert op.stop() == 0, op.log_tail()
