"""`vaultbridge agent`'s pure parts: config errors, the file writer, names, the schedule, the
hand-over state and the app signal. The processes against OpenBao are in
tests/integration/test_inject_agent.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vaultbridge.agent.files import UnsafeName, check_name, write_files
from vaultbridge.agent.main import (
    ConfigError,
    describe_error,
    host_path,
    load_config,
    signal_number,
    signal_processes,
)
from vaultbridge.agent.objects import AgentObjectWorker, Held, ObjectConfigError
from vaultbridge.agent.session import Session
from vaultbridge.inject.config import AGENT_CONFIG_ENV, AgentConfig, AgentObject
from vaultbridge.secrets.redact import SecretData
from vaultbridge.vault.connection import Transport

VALUE = "s3cr3t-value-never-shown"


def _obj(
    kind: str = "VaultStaticSecret", spec: dict[str, Any] | None = None, **file: Any
) -> dict[str, Any]:
    return {
        "name": "app",
        "kind": kind,
        "spec": spec
        or {"mount": "secret", "path": "app", "type": "kv-v2", "destination": {"name": "app"}},
        "vault": {"address": "http://127.0.0.1:8200"},
        "login": {"method": "kubernetes", "mount": "kubernetes", "role": "app"},
        "file": {"directory": "/vault/secrets/app", **file},
    }


def _env(config: Any) -> dict[str, str]:
    return {AGENT_CONFIG_ENV: config if isinstance(config, str) else json.dumps(config)}


# -- config ------------------------------------------------------------------------------------


def test_config_round_trips() -> None:
    cfg = load_config(_env({"version": 1, "namespace": "ns", "objects": [_obj()]}))
    assert cfg.objects[0].name == "app" and cfg.file_mode == 0o400
    assert load_config({AGENT_CONFIG_ENV: cfg.to_env()}) == cfg


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("{not json " + VALUE, "is not valid JSON"),
        (json.dumps([VALUE]), "is not a JSON object"),
        (
            {"version": 2, "namespace": VALUE, "objects": []},
            "has version 2, this agent knows version 1",
        ),
        ({"version": VALUE}, "has version str"),
        ({"version": 1, "namespace": "ns", "objects": [], "x": VALUE}, "is invalid"),
        ({"version": 1, "namespace": "ns", "objects": [_obj(spec=None) | {"kind": VALUE}]}, "kind"),
    ],
)
def test_config_errors_are_clear_and_never_echo_values(value: Any, message: str) -> None:
    env = {} if value is None else _env(value)
    with pytest.raises(ConfigError) as err:
        load_config(env)
    assert message in str(err.value)
    assert VALUE not in str(err.value)


def test_agent_exits_2_on_a_bad_config() -> None:
    env = dict(os.environ, **_env({"version": 1, "namespace": "ns", "objects": [], "p": VALUE}))
    proc = subprocess.run(
        [sys.executable, "-m", "vaultbridge.agent", "--once"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "VAULTBRIDGE_AGENT_CONFIG is invalid" in proc.stderr
    assert VALUE not in proc.stdout + proc.stderr


def test_host_path_prefixes_absolute_paths_with_the_root(tmp_path: Path) -> None:
    assert host_path("/vault/secrets/a", None) == Path("/vault/secrets/a")
    assert host_path("/vault/secrets/a", str(tmp_path)) == tmp_path / "vault/secrets/a"


def test_describe_error_names_unknown_exceptions_by_type_only() -> None:
    assert describe_error(KeyError(VALUE)) == "KeyError"
    assert describe_error(ObjectConfigError("bad layout")) == "bad layout"


def test_signal_names() -> None:
    assert signal_number("SIGHUP").name == "SIGHUP"
    assert signal_number("hup").name == "SIGHUP"
    with pytest.raises(ConfigError):
        signal_number("SIGNOPE")


# -- names and files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "../x", "/etc/passwd", "a\x00b", "a\\b", ".vaultbridge-state.json"],
)
def test_names_that_could_escape_or_clash_are_refused(name: str) -> None:
    with pytest.raises(UnsafeName):
        check_name(name)


def test_write_files_writes_modes_skips_unchanged_and_removes_vanished(tmp_path: Path) -> None:
    d = tmp_path / "app"
    first = write_files(d, {"user": b"u", "password": b"p"}, mode=0o400)
    assert sorted(first.written) == ["password", "user"] and not first.removed
    assert (d / "user").read_bytes() == b"u"
    assert (d / "user").stat().st_mode & 0o777 == 0o400
    inode = (d / "user").stat().st_ino
    (d / ".vaultbridge-state.json").write_text("{}")

    again = write_files(d, {"user": b"u", "password": b"p2"}, mode=0o400)
    assert again.written == ("password",) and not again.removed
    assert (d / "user").stat().st_ino == inode  # not rewritten: same content

    shrunk = write_files(d, {"user": b"u"}, mode=0o400)
    assert shrunk.removed == ("password",) and not shrunk.written
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".vaultbridge")) == ["user"]
    assert not (d / "password").exists()
    assert not write_files(d, {"user": b"u"}).changed
    # The agent's own entries: its state file, the switch link, the current version and the
    # one before it (kept for a reader that resolved the link just before the switch).
    own = sorted(p.name for p in d.iterdir() if p.name.startswith(".vaultbridge"))
    assert own[:2] == [".vaultbridge-data", ".vaultbridge-state.json"], own
    assert len(own) == 4 and all(n.startswith(".vaultbridge-v-") for n in own[2:]), own
    assert os.readlink(d / "user") == ".vaultbridge-data/user"


def test_the_set_switches_at_once(tmp_path: Path) -> None:
    """Two files that must agree (a username and its password) rewritten as pairs while a
    reader resolves the switch link once per read, as a consistency-minded app (or the kubelet
    convention's `..data`) does: every pair it reads is one the agent wrote, never mixed."""
    pairs = [(f"user-{i}".encode(), f"password-{i}".encode() * 1000) for i in range(4)]
    write_files(tmp_path, {"username": pairs[0][0], "password": pairs[0][1]}, mode=0o600)
    done = threading.Event()
    seen: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []

    retired = 0

    def reader() -> None:
        nonlocal retired
        try:
            while not done.is_set():
                current = Path(os.path.realpath(tmp_path / ".vaultbridge-data"))
                try:
                    pair = (current / "username").read_bytes(), (current / "password").read_bytes()
                except FileNotFoundError:
                    # The version it resolved was retired: one previous version is kept, so
                    # only a reader that slept through two switches (80 back to back here,
                    # on a loaded machine) gets here, and it resolves the link again, as a
                    # kubelet `..data` reader would. Never a mixed pair, checked below.
                    retired += 1
                    continue
                seen.append(pair)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(80):
            user, password = pairs[i % 4]
            write_files(tmp_path, {"username": user, "password": password}, mode=0o600)
        while len(seen) < 20 and thread.is_alive():
            time.sleep(0.01)
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    assert len(seen) >= 20, retired
    assert not [pair for pair in seen if pair not in pairs]


def test_a_plain_file_of_an_older_layout_becomes_a_link(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(b"old")
    result = write_files(tmp_path, {"k": b"new"}, mode=0o400)
    assert result.written == ("k",)
    assert os.readlink(tmp_path / "k") == ".vaultbridge-data/k"
    assert (tmp_path / "k").read_bytes() == b"new"


def test_a_bad_name_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnsafeName):
        write_files(tmp_path, {"good": b"1", "../evil": b"2"})
    assert list(tmp_path.iterdir()) == []


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """Rewrites of a 1 MiB file while another thread reads it in a loop: every read is one of
    the complete versions (a plain open-truncate-write would show torn reads)."""
    versions = [bytes([65 + i]) * (1 << 20) for i in range(4)]
    write_files(tmp_path, {"blob": versions[0]}, mode=0o600)
    done = threading.Event()
    reads: list[int] = []
    torn: list[int] = []

    def reader() -> None:
        while not done.is_set():
            data = (tmp_path / "blob").read_bytes()
            reads.append(1)
            if data not in versions:
                torn.append(len(data))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            write_files(tmp_path, {"blob": versions[i % 4]}, mode=0o600)
        while len(reads) < 20:
            time.sleep(0.01)
    finally:
        done.set()
        thread.join()
    assert not torn
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vaultbridge-tmp")]
    versions_left = [p for p in tmp_path.iterdir() if p.name.startswith(".vaultbridge-v-")]
    assert len(versions_left) == 2  # the current one and the one before it


# -- objects -----------------------------------------------------------------------------------


def _worker(
    tmp_path: Path, kind: str = "VaultStaticSecret", spec: dict[str, Any] | None = None, **file: Any
) -> AgentObjectWorker:
    obj = AgentObject.model_validate(_obj(kind, spec, **file))
    session = Session(Transport(), obj.vault, obj.login, tmp_path / "token")
    return AgentObjectWorker(obj, session, tmp_path / "app")


def test_spec_errors_name_fields_not_values(tmp_path: Path) -> None:
    with pytest.raises(ObjectConfigError) as err:
        _worker(tmp_path, spec={"mount": VALUE, "destination": {"name": "app"}})
    assert "VaultStaticSecret app: invalid spec" in str(err.value)
    assert VALUE not in str(err.value)


def test_uninlined_transformation_refs_and_path_filenames_are_refused(tmp_path: Path) -> None:
    spec = {
        "mount": "secret",
        "path": "app",
        "type": "kv-v2",
        "destination": {"name": "app", "transformation": {"transformationRefs": [{"name": "t"}]}},
    }
    with pytest.raises(ObjectConfigError, match="inlined by the webhook"):
        _worker(tmp_path, spec=spec)
    with pytest.raises(ObjectConfigError, match="plain name"):
        _worker(tmp_path, template="x", filename="../app.env")


def test_template_renders_the_built_data_into_one_file(tmp_path: Path) -> None:
    worker = _worker(tmp_path, template="U={{ secrets.user }} P={{ pw }}\n", filename="app.env")
    rendered = worker.render(SecretData({"user": b"alice", "pw": b"x"}))
    assert rendered == {"app.env": b"U=alice P=x\n"}
    plain = _worker(tmp_path)
    assert plain.render(SecretData({"user": b"alice"})) == {"user": b"alice"}


def test_schedule_static_default_and_refresh_after(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    assert worker.next_due(1000.0) == 1000.0  # nothing held: now
    worker.held = Held(issued_at=1000.0)
    assert worker.next_due(1000.0) == 1300.0  # default 5 minutes
    spec = {"mount": "secret", "path": "a", "type": "kv-v2", "refreshAfter": "30s",
            "destination": {"name": "app"}}  # fmt: skip
    worker = _worker(tmp_path, spec=spec)
    worker.held = Held(issued_at=1000.0)
    worker.schedule(1000.0)
    assert 1000.0 + 30 * 0.8 <= worker.due <= 1000.0 + 30 * 0.9


def test_schedule_lease_renewal_and_certificate_rotation(tmp_path: Path) -> None:
    dyn = _worker(
        tmp_path,
        "VaultDynamicSecret",
        {"mount": "db", "path": "creds/app", "renewalPercent": 50, "destination": {"name": "app"}},
    )
    dyn.held = Held(issued_at=1000.0, lease_id="l", lease_duration=100.0, lease_renewable=True)
    assert dyn.next_due(1000.0) == pytest.approx(1050.0)
    pki = _worker(
        tmp_path,
        "VaultPKISecret",
        {"mount": "pki", "role": "web", "expiryOffset": "10m", "destination": {"name": "app"}},
    )
    pki.held = Held(issued_at=1000.0, serial="s", expiration=1000.0 + 3600)
    assert pki.next_due(1000.0) == pytest.approx(1000.0 + 3000)


def test_sidecar_adopts_the_init_lease_until_the_init_token_ends(tmp_path: Path) -> None:
    init = _worker(
        tmp_path,
        "VaultDynamicSecret",
        {"mount": "db", "path": "creds/app", "destination": {"name": "app"}},
    )
    init.directory.mkdir()
    init.held = Held(issued_at=1000.0, lease_id="l", lease_duration=7200.0, lease_renewable=True)
    init.save_state(token_expires_at=1000.0 + 600)
    state = init.directory / ".vaultbridge-state.json"
    assert state.stat().st_mode & 0o777 == 0o400
    sidecar = _worker(
        tmp_path,
        "VaultDynamicSecret",
        {"mount": "db", "path": "creds/app", "destination": {"name": "app"}},
    )
    assert sidecar.load_state(1001.0)
    held = sidecar.held
    assert held is not None and held.adopted and not held.lease_renewable
    assert held.lease_duration == 600.0  # the init container's token ends first
    # Replaced (never renewed) at the renewal point of what is left: 67 % of 600 s.
    assert sidecar.next_due(1001.0) == pytest.approx(1000.0 + 402.0)
    init.save_state(None)  # rewritten over a 0400 file
    assert _worker(tmp_path).load_state(1001.0) is False  # another kind's state is not adopted


# -- on change ---------------------------------------------------------------------------------


def test_signal_reaches_only_matching_processes() -> None:
    tag = f"vb-agent-test-{os.getpid()}"
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", tag])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "other"])
    try:
        deadline = time.monotonic() + 10
        sent: list[int] = []
        while not sent and time.monotonic() < deadline:
            sent = signal_processes("SIGTERM", tag)
        assert sent == [target.pid]
        assert target.wait(10) == -15
        assert other.poll() is None
    finally:
        for proc in (target, other):
            proc.kill()
            proc.wait()


def test_config_model_contract_is_unchanged() -> None:
    """The agent reads the contract as written on main: these fields are what it relies on."""
    fields = set(AgentConfig.model_fields)
    assert {"version", "namespace", "objects", "on_change", "file_mode", "run_as_user"} <= fields


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_files_are_chowned_to_run_as_user_and_not_rewritten_after(tmp_path: Path) -> None:
    write_files(tmp_path, {"k": b"v"}, mode=0o400, owner=12345)
    stat = (tmp_path / "k").stat()
    assert stat.st_uid == 12345 and stat.st_mode & 0o777 == 0o400
    assert not write_files(tmp_path, {"k": b"v"}, mode=0o400, owner=12345).changed
    assert (tmp_path / "k").stat().st_ino == stat.st_ino
