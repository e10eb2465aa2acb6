"""The Vault client against a real server (OpenBao, or HashiCorp Vault in `make test-hashicorp`):
auth, KV, leases, errors, TLS, cache.

Most tests share the session's server (``vault_server`` from tests/conftest.py) and isolate
themselves with random mount, path and role names. Tests that seal a server or need TLS start
their own throwaway dev server of the same kind (``bao``/``vault server -dev``) so they cannot
disturb anyone else; the lease test starts
a throwaway PostgreSQL for a real renewable lease (skipped where PostgreSQL is not installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from vaultbridge.devenv import environment
from vaultbridge.devenv.vaultserver import resolve_server, server_binary
from vaultbridge.vault import (
    AuthToken,
    BadResponse,
    ClientCache,
    ConnectionSettings,
    InvalidRequest,
    NamespacesUnsupported,
    NotFound,
    PermissionDenied,
    SealedOrUnavailable,
    SecretVersionDeleted,
    TokenBucket,
    Transport,
    VaultClient,
    VaultTimeout,
    VaultTLSError,
    VaultUnreachable,
)

from .vault_client_support import AppRole, Recorder, make_approle, uid

pytestmark = pytest.mark.integration


def _running_server() -> str | None:
    state = environment.load_state()
    return state.vault_server if state is not None else None


SECRET_VALUE = "s3cr3t-value-never-shown"


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def transport(recorder: Recorder) -> AsyncIterator[Transport]:
    t = Transport(on_request=recorder)
    yield t
    await t.close()


@pytest.fixture
def settings(vault_server: Any) -> ConnectionSettings:
    return ConnectionSettings(vault_server.addr, timeout=10)


@pytest.fixture
def root(vault_server: Any, transport: Transport, settings: ConnectionSettings) -> VaultClient:
    return VaultClient(transport, settings, token=vault_server.root_token)


@pytest.fixture
async def kv1_mount(root: VaultClient) -> AsyncIterator[str]:
    mount = uid("kv1")
    await root.write(f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "1"}})
    yield mount
    await root.delete(f"sys/mounts/{mount}")


@pytest.fixture
async def kv2_mount(root: VaultClient) -> AsyncIterator[str]:
    mount = uid("kv2")
    await root.write(f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}})
    yield mount
    await root.delete(f"sys/mounts/{mount}")


@pytest.fixture
async def approle(root: VaultClient) -> AsyncIterator[AppRole]:
    ar = await make_approle(root, token_ttl="1h", token_max_ttl="2h")
    yield ar
    await root.delete(f"sys/auth/{ar.mount}")


# -- throwaway servers ----------------------------------------------------------------------


@dataclass
class _Server:
    addr: str
    root_token: str
    unseal_key: str | None
    ca_pem: bytes | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def throwaway_bao(tmp_path: Path, *, tls: bool = False) -> AsyncIterator[_Server]:
    """A private dev server (optionally ``-dev-tls``) on a free loopback port, of the session's
    kind: ``bao server -dev`` or ``vault server -dev``."""
    port = _free_port()
    log = tmp_path / "bao.log"
    argv = [
        server_binary(resolve_server(None, _running_server())),
        "server",
        "-dev",
        "-dev-root-token-id=root",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
    ]
    if tls:
        (tmp_path / "certs").mkdir()
        argv += ["-dev-tls", f"-dev-tls-cert-dir={tmp_path / 'certs'}"]
    scheme = "https" if tls else "http"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)}
        )
    try:
        deadline = time.monotonic() + 30
        unseal = None
        while time.monotonic() < deadline:
            m = re.search(r"Unseal Key: (\S+)", log.read_text(errors="replace"))
            if m and (not tls or (tmp_path / "certs" / "vault-ca.pem").exists()):
                unseal = m.group(1)
                break
            assert proc.returncode is None, log.read_text()
            await asyncio.sleep(0.1)
        assert unseal, "bao dev server did not start: " + log.read_text()
        ca = (tmp_path / "certs" / "vault-ca.pem").read_bytes() if tls else None
        yield _Server(f"{scheme}://127.0.0.1:{port}", "root", unseal, ca)
    finally:
        proc.terminate()
        await proc.wait()


# -- health ---------------------------------------------------------------------------------


async def test_sys_health_of_a_running_server(transport: Transport, settings: Any) -> None:
    health = await VaultClient(transport, settings).sys_health()
    assert health.initialized
    assert not health.sealed
    assert health.usable
    assert re.match(r"^\d+\.\d+\.\d+", health.version)


# -- token auth -----------------------------------------------------------------------------


async def test_use_token_validates_with_lookup_self(
    vault_server: Any, transport: Transport, settings: ConnectionSettings, recorder: Recorder
) -> None:
    client = VaultClient(transport, settings)
    info = await client.use_token(vault_server.root_token)
    assert client.has_token
    assert "root" in info.policies
    assert info.lease_duration == 0
    assert info.expires_at is None
    assert "client_token" not in repr(info)  # (the dev root token may be the word "root")
    assert recorder.calls == [("lookup_self", 200)]

    other = VaultClient(transport, settings)
    with pytest.raises(PermissionDenied) as exc:
        await other.use_token("not-a-real-token")
    assert not other.has_token
    assert "not-a-real-token" not in str(exc.value)
    assert exc.value.reason == "VaultPermissionDenied"


async def test_approle_login_returns_a_working_token(
    approle: AppRole, transport: Transport, settings: ConnectionSettings
) -> None:
    client = VaultClient(transport, settings)
    tok = await client.login_approle(approle.mount, approle.role_id, approle.secret_id)
    assert tok.policies == ("default",)
    assert tok.renewable
    assert tok.lease_duration == 3600
    assert tok.accessor
    assert tok.client_token not in repr(tok)
    assert client.has_token
    looked = await client.lookup_self()
    assert looked.accessor == tok.accessor
    assert 3590 <= looked.lease_duration <= 3600


async def test_approle_login_with_wrong_secret_id_is_denied_or_rejected(
    approle: AppRole, transport: Transport, settings: ConnectionSettings
) -> None:
    client = VaultClient(transport, settings)
    with pytest.raises((PermissionDenied, InvalidRequest)) as exc:
        await client.login_approle(approle.mount, approle.role_id, "wrong-secret-id")
    assert "wrong-secret-id" not in str(exc.value)
    assert not client.has_token


async def test_renew_self_extends_and_is_capped_by_max_ttl(
    root: VaultClient, transport: Transport, settings: ConnectionSettings
) -> None:
    ar = await make_approle(root, token_ttl="60s", token_max_ttl="120s")
    try:
        client = VaultClient(transport, settings)
        first = await client.login_approle(ar.mount, ar.role_id, ar.secret_id)
        assert first.lease_duration == 60
        renewed = await client.renew_self(increment=90)
        assert renewed.lease_duration == 90
        assert renewed.accessor == first.accessor
        capped = await client.renew_self(increment=3600)
        assert capped.lease_duration <= 120
        assert capped.warnings  # Vault says it capped the TTL
    finally:
        await root.delete(f"sys/auth/{ar.mount}")


async def test_revoke_self_makes_the_token_useless(
    approle: AppRole, transport: Transport, settings: ConnectionSettings
) -> None:
    client = VaultClient(transport, settings)
    tok = await client.login_approle(approle.mount, approle.role_id, approle.secret_id)
    await client.revoke_self()
    assert not client.has_token
    with pytest.raises(InvalidRequest, match="no token"):
        await client.lookup_self()
    with pytest.raises(PermissionDenied):
        await VaultClient(transport, settings).use_token(tok.client_token)


# -- KV ---------------------------------------------------------------------------------------


@pytest.mark.both_servers
async def test_kv2_latest_pinned_and_deleted_versions(root: VaultClient, kv2_mount: str) -> None:
    path = "team-a/app"
    meta1 = await root.kv_write(kv2_mount, path, {"password": "v1"}, kv_version=2)
    meta2 = await root.kv_write(kv2_mount, path, {"password": SECRET_VALUE}, kv_version=2)
    assert meta1 is not None
    assert meta2 is not None
    assert (meta1["version"], meta2["version"]) == (1, 2)

    latest = await root.kv_read(kv2_mount, path, kv_version=2)
    assert latest.data == {"password": SECRET_VALUE}
    assert latest.version == 2
    assert latest.metadata is not None
    assert latest.metadata["created_time"]
    assert latest.raw["data"] == {"password": SECRET_VALUE}
    assert SECRET_VALUE not in repr(latest)
    assert SECRET_VALUE not in str(latest)

    pinned = await root.kv_read(kv2_mount, path, kv_version=2, version=1)
    assert pinned.data == {"password": "v1"}
    assert pinned.version == 1

    await root.kv_delete(kv2_mount, path, kv_version=2, versions=[1])
    with pytest.raises(SecretVersionDeleted) as exc:
        await root.kv_read(kv2_mount, path, kv_version=2, version=1)
    assert exc.value.version == 1
    assert not exc.value.destroyed
    assert exc.value.status == 404
    assert isinstance(exc.value, NotFound)
    # the latest version is unaffected
    assert (await root.kv_read(kv2_mount, path, kv_version=2)).version == 2

    await root.kv_delete(kv2_mount, path, kv_version=2)  # soft-delete latest
    with pytest.raises(SecretVersionDeleted) as exc:
        await root.kv_read(kv2_mount, path, kv_version=2)
    assert exc.value.version == 2

    with pytest.raises(NotFound) as nf:
        await root.kv_read(kv2_mount, path, kv_version=2, version=7)
    assert type(nf.value) is NotFound


@pytest.mark.both_servers
async def test_kv1_read_write_delete(root: VaultClient, kv1_mount: str) -> None:
    assert (
        await root.kv_write(
            kv1_mount, "db/creds", {"user": "app", "pw": SECRET_VALUE}, kv_version=1
        )
        is None
    )
    secret = await root.kv_read(kv1_mount, "db/creds", kv_version=1)
    assert secret.data == {"user": "app", "pw": SECRET_VALUE}
    assert secret.metadata is None
    assert secret.version is None
    with pytest.raises(InvalidRequest, match="kv-v2"):
        await root.kv_read(kv1_mount, "db/creds", kv_version=1, version=1)
    await root.kv_delete(kv1_mount, "db/creds", kv_version=1)
    with pytest.raises(NotFound):
        await root.kv_read(kv1_mount, "db/creds", kv_version=1)


@pytest.mark.both_servers
async def test_missing_paths_are_not_found(root: VaultClient, kv2_mount: str) -> None:
    with pytest.raises(NotFound) as exc:
        await root.kv_read(kv2_mount, "does/not/exist", kv_version=2)
    assert exc.value.reason == "VaultNotFound"
    assert exc.value.path == f"{kv2_mount}/data/does/not/exist"
    assert exc.value.operation == "kv_read"
    with pytest.raises(NotFound):
        await root.read(f"{kv2_mount}/data/nothing-here")


@pytest.mark.both_servers
async def test_policy_denial_is_permission_denied(
    root: VaultClient, kv2_mount: str, transport: Transport, settings: ConnectionSettings
) -> None:
    policy = uid("pol")
    await root.write(
        f"sys/policies/acl/{policy}",
        {"policy": f'path "{kv2_mount}/data/allowed/*" {{ capabilities = ["read"] }}'},
    )
    await root.kv_write(kv2_mount, "allowed/x", {"k": SECRET_VALUE}, kv_version=2)
    await root.kv_write(kv2_mount, "forbidden/x", {"k": SECRET_VALUE}, kv_version=2)
    created = await root.write("auth/token/create", {"policies": [policy], "ttl": "5m"})
    assert created is not None
    assert created.auth is not None
    limited = VaultClient(transport, settings, token=created.auth["client_token"])

    assert (await limited.kv_read(kv2_mount, "allowed/x", kv_version=2)).data == {"k": SECRET_VALUE}
    with pytest.raises(PermissionDenied) as exc:
        await limited.kv_read(kv2_mount, "forbidden/x", kv_version=2)
    err = exc.value
    assert err.status == 403
    assert err.errors == ["permission denied"]
    assert err.reason == "VaultPermissionDenied"
    assert SECRET_VALUE not in str(err)
    assert created.auth["client_token"] not in str(err)
    await root.delete(f"sys/policies/acl/{policy}")


@pytest.mark.both_servers
async def test_namespace_header_scopes_requests(
    root: VaultClient, transport: Transport, settings: ConnectionSettings, vault_server: Any
) -> None:
    """OpenBao (>= 2.3) and Vault Enterprise have namespaces; Vault CE does not."""
    ns = uid("ns")
    if vault_server.server == "hashicorp":
        await _namespace_is_refused_by_vault_ce(root, transport, settings, vault_server, ns)
        return
    await root.write(f"sys/namespaces/{ns}", {})
    try:
        scoped = VaultClient(transport, settings, token=vault_server.root_token, namespace=ns)
        await scoped.write("sys/mounts/kv", {"type": "kv", "options": {"version": "2"}})
        await scoped.kv_write("kv", "a", {"x": "in-namespace"}, kv_version=2)
        assert (await scoped.kv_read("kv", "a", kv_version=2)).data == {"x": "in-namespace"}
        # the same path from the root namespace is another mount entirely
        with pytest.raises((NotFound, PermissionDenied, InvalidRequest)):
            await root.kv_read("kv", "a", kv_version=2)
        assert (await scoped.sys_health()).usable  # health ignores the namespace
        await scoped.delete("sys/mounts/kv")
    finally:
        await root.delete(f"sys/namespaces/{ns}")


async def _namespace_is_refused_by_vault_ce(
    root: VaultClient,
    transport: Transport,
    settings: ConnectionSettings,
    vault_server: Any,
    ns: str,
) -> None:
    """Vault CE ignores X-Vault-Namespace: sent anyway, a namespaced read is answered from the
    root namespace. The client must refuse to send it instead of reading the wrong data."""
    health = await root.sys_health()
    assert health.enterprise is False and not health.namespaces_supported
    await root.kv_write("secret", f"{ns}/a", {"x": "root-namespace"}, kv_version=2)
    # The server itself: the header changes nothing (what the client protects against).
    from vaultbridge.devenv.vaultserver import VaultAdmin

    admin = VaultAdmin(vault_server.addr, vault_server.root_token)
    status, body = admin.call("GET", "sys/namespaces")
    assert status in (404, 405), body  # no namespace API at all
    recorder = Recorder()
    counting = Transport(on_request=recorder)
    try:
        scoped = VaultClient(counting, settings, token=vault_server.root_token, namespace=ns)
        for _ in range(2):
            with pytest.raises(NamespacesUnsupported) as exc:
                await scoped.kv_read("secret", f"{ns}/a", kv_version=2)
            assert exc.value.reason == "VaultNamespacesUnsupported"
            assert ns in str(exc.value) and "Community Edition" in str(exc.value)
        # One health probe for both attempts, and the namespaced read was never sent.
        assert recorder.calls == [("sys_health", 200)]
        with pytest.raises(NamespacesUnsupported):
            await scoped.login_kubernetes("kubernetes", "r", "x")
        assert recorder.count("login_kubernetes") == 0
        assert (await scoped.sys_health()).usable  # health ignores the namespace
    finally:
        await counting.close()
        await root.delete(f"secret/metadata/{ns}/a")


# -- generic + leases -------------------------------------------------------------------------


async def test_generic_read_write_delete(root: VaultClient) -> None:
    path = f"cubbyhole/{uid('c')}"
    assert await root.write(path, {"value": SECRET_VALUE}) is None  # 204
    resp = await root.read(path)
    assert resp.data == {"value": SECRET_VALUE}
    assert resp.request_id
    assert SECRET_VALUE not in repr(resp)
    await root.delete(path)
    with pytest.raises(NotFound):
        await root.read(path)


@pytest.fixture(scope="module")
async def postgres_port(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    """A throwaway PostgreSQL (the machine's Debian package) for a real renewable lease."""
    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    search = os.pathsep.join([*(str(d) for d in debian), os.environ.get("PATH", "")])
    initdb = shutil.which("initdb", path=search)
    postgres = shutil.which("postgres", path=search)
    if not initdb or not postgres:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user")
    work = Path(tempfile.mkdtemp(prefix="vb-pg-"))
    if user is not None:
        os.chown(work, user.pw_uid, user.pw_gid)
    as_user: dict[str, Any] = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    init = await asyncio.create_subprocess_exec(
        initdb,
        "-D",
        str(work / "data"),
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        **as_user,
    )
    assert await init.wait() == 0
    port = _free_port()
    with (work / "log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            postgres,
            "-D",
            str(work / "data"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(work),
            "-c",
            "fsync=off",
            stdout=log,
            stderr=log,
            **as_user,
        )
    try:
        # An open port is not enough: until recovery finishes, postgres answers connections
        # with "the database system is starting up" (57P03). Wait for it to say it is ready
        # (generous deadline for a loaded machine).
        for _ in range(1200):
            if b"ready to accept connections" in (work / "log").read_bytes():
                break
            assert proc.returncode is None, (work / "log").read_text(errors="replace")
            await asyncio.sleep(0.1)
        else:
            pytest.fail("postgres did not become ready:\n" + (work / "log").read_text())
        yield port
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown: Vault may still hold connections
        await proc.wait()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.both_servers
async def test_lease_lookup_renew_revoke(root: VaultClient, postgres_port: int) -> None:
    """Database credentials: the canonical renewable lease."""
    mount = uid("db")
    await root.write(f"sys/mounts/{mount}", {"type": "database"})
    try:
        await root.write(
            f"{mount}/config/pg",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:"
                f"{postgres_port}/postgres?sslmode=disable",
                "username": "postgres",
                "password": "unused-trust-auth",
                "allowed_roles": ["app"],
            },
        )
        await root.write(
            f"{mount}/roles/app",
            {
                "db_name": "pg",
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                    "VALID UNTIL '{{expiration}}';"
                ],
                "default_ttl": "1h",
                "max_ttl": "2h",
            },
        )
        creds = await root.read(f"{mount}/creds/app", operation="dynamic_read")
        assert creds.lease_id.startswith(f"{mount}/creds/app/")
        assert creds.renewable
        assert creds.lease_duration == 3600
        assert creds.data is not None
        assert creds.data["password"] not in repr(creds)

        looked = await root.lookup_lease(creds.lease_id)
        assert looked.lease_id == creds.lease_id
        assert looked.renewable
        assert 3590 <= looked.lease_duration <= 3600
        assert looked.issue_time
        assert looked.expire_time

        renewed = await root.renew_lease(creds.lease_id, increment=1800)
        assert renewed.lease_id == creds.lease_id
        assert renewed.renewable
        assert renewed.lease_duration == 1800
        assert 1790 <= (await root.lookup_lease(creds.lease_id)).lease_duration <= 1800

        capped = await root.renew_lease(creds.lease_id, increment=10 * 3600)
        assert capped.lease_duration <= 2 * 3600  # max_ttl wins
        assert capped.warnings

        await root.revoke_lease(creds.lease_id)
        with pytest.raises(InvalidRequest):
            await root.lookup_lease(creds.lease_id)
    finally:
        await root.delete(f"sys/mounts/{mount}")


async def test_non_renewable_lease_renewal_is_rejected(root: VaultClient) -> None:
    """PKI with ``generate_lease``: a real lease that Vault refuses to renew."""
    mount = uid("pki")
    await root.write(f"sys/mounts/{mount}", {"type": "pki", "config": {"max_lease_ttl": "24h"}})
    try:
        await root.write(
            f"{mount}/root/generate/internal",
            {"common_name": "test-ca", "key_type": "ec", "key_bits": 256, "ttl": "24h"},
        )
        await root.write(
            f"{mount}/roles/app",
            {
                "allow_any_name": True,
                "generate_lease": True,
                "ttl": "1h",
                "key_type": "ec",
                "key_bits": 256,
            },
        )
        issued = await root.write(f"{mount}/issue/app", {"common_name": "app.test"})
        assert issued is not None
        assert issued.lease_id.startswith(f"{mount}/issue/app/")
        assert not issued.renewable
        with pytest.raises(InvalidRequest) as exc:
            await root.renew_lease(issued.lease_id, increment=60)
        assert exc.value.errors == ["lease is not renewable"]
        await root.revoke_lease(issued.lease_id)
    finally:
        await root.delete(f"sys/mounts/{mount}")


# -- failures of the server itself ----------------------------------------------------------


@pytest.mark.both_servers
async def test_sealed_server_is_sealed_or_unavailable(tmp_path: Path, transport: Transport) -> None:
    async with throwaway_bao(tmp_path) as srv:
        settings = ConnectionSettings(srv.addr, timeout=10)
        root = VaultClient(transport, settings, token=srv.root_token)
        await root.kv_write("secret", "x", {"a": "b"}, kv_version=2)
        await root.write("sys/seal")

        health = await root.sys_health()
        assert health.sealed
        assert not health.usable
        with pytest.raises(SealedOrUnavailable) as exc:
            await root.kv_read("secret", "x", kv_version=2)
        assert exc.value.status == 503
        assert exc.value.reason == "VaultSealedOrUnavailable"
        assert "sealed" in str(exc.value)

        assert srv.unseal_key
        await root.write("sys/unseal", {"key": srv.unseal_key})
        assert (await root.sys_health()).usable
        assert (await root.kv_read("secret", "x", kv_version=2)).data == {"a": "b"}


async def test_closed_port_is_unreachable(transport: Transport, recorder: Recorder) -> None:
    settings = ConnectionSettings(f"http://127.0.0.1:{_free_port()}", timeout=5)
    client = VaultClient(transport, settings, token="t")
    with pytest.raises(VaultUnreachable) as exc:
        await client.kv_read("secret", "x", kv_version=2)
    assert type(exc.value) is VaultUnreachable
    assert exc.value.reason == "VaultUnreachable"
    assert exc.value.status is None
    assert recorder.calls == [("kv_read", "VaultUnreachable")]


async def test_silent_server_times_out(transport: Transport, recorder: Recorder) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)  # accept, never answer

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = VaultClient(transport, ConnectionSettings(f"http://127.0.0.1:{port}", timeout=0.3))
        # The server never answers: only the client's own 0.3 s timeout can end this request.
        # The outer wait_for is a generous guard against a hang (it would raise TimeoutError,
        # not VaultTimeout), not a speed verdict.
        with pytest.raises(VaultTimeout) as exc:
            await asyncio.wait_for(client.read("secret/data/x"), 120)
        assert isinstance(exc.value, VaultUnreachable)
        assert len(accepted) == 1  # one connection, one attempt: the timeout ended it
        assert recorder.calls == [("read", "VaultTimeout")]
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


async def test_non_vault_answer_is_bad_response(transport: Transport) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        body = b"<html>not vault</html>"
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = VaultClient(transport, ConnectionSettings(f"http://127.0.0.1:{port}"))
        with pytest.raises(BadResponse) as exc:
            await client.read("secret/data/x")
        assert exc.value.reason == "VaultBadResponse"
    finally:
        server.close()
        await server.wait_closed()


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def tls_bao(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[_Server]:
    """A -dev-tls server whose certificate names ``localhost`` and ``127.0.0.1``."""
    async with throwaway_bao(tmp_path_factory.mktemp("tlsbao"), tls=True) as srv:
        yield srv


async def test_tls_with_the_connection_ca(tls_bao: _Server, transport: Transport) -> None:
    settings = ConnectionSettings(tls_bao.addr, ca_pem=tls_bao.ca_pem)
    assert (await VaultClient(transport, settings).sys_health()).usable
    named = ConnectionSettings(tls_bao.addr, ca_pem=tls_bao.ca_pem, tls_server_name="localhost")
    client = VaultClient(transport, named, token=tls_bao.root_token)
    assert "root" in (await client.lookup_self()).policies


async def test_tls_untrusted_or_wrong_name_is_a_tls_error(
    tls_bao: _Server, transport: Transport
) -> None:
    for settings in (
        ConnectionSettings(tls_bao.addr),  # system trust store does not know the dev CA
        ConnectionSettings(tls_bao.addr, ca_pem=tls_bao.ca_pem, tls_server_name="vault.other"),
    ):
        with pytest.raises(VaultTLSError) as exc:
            await VaultClient(transport, settings).sys_health()
        assert exc.value.reason == "VaultTLSError"
        assert isinstance(exc.value, VaultUnreachable)
    with pytest.raises(VaultTLSError, match="CA certificate"):
        bad = ConnectionSettings(tls_bao.addr, ca_pem=b"-----BEGIN CERTIFICATE-----\nnope\n")
        await VaultClient(transport, bad).sys_health()


async def test_tls_skip_verify(tls_bao: _Server, transport: Transport) -> None:
    settings = ConnectionSettings(tls_bao.addr, skip_tls_verify=True, tls_server_name="x.invalid")
    assert (await VaultClient(transport, settings).sys_health()).usable


# -- transport-wide behaviour -----------------------------------------------------------------


async def test_global_rate_limit_spaces_requests(settings: ConnectionSettings) -> None:
    # The bucket's clock is frozen, so the spacing it hands out is exact whatever the load:
    # the first request goes at once, each next one waits 1/20 s longer than the one before.
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    bucket = TokenBucket(rate=20, burst=1, clock=lambda: 0.0, sleep=sleep)
    async with Transport(rate_limiter=bucket) as limited:
        client = VaultClient(limited, settings)
        results = await asyncio.gather(*(client.sys_health() for _ in range(11)))
    assert all(r.usable for r in results)
    assert sorted(waits) == pytest.approx([k / 20 for k in range(1, 11)])


async def test_custom_headers_and_vault_headers_are_sent(
    vault_server: Any, transport: Transport
) -> None:
    """Seen from a real socket: what the client puts on the wire."""
    seen: list[bytes] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(await r.readuntil(b"\r\n\r\n"))
        body = b'{"data": {"k": "v"}}'
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = ConnectionSettings(
            f"http://127.0.0.1:{port}", headers={"X-Custom": "1", "X-Vault-Token": "spoof"}
        )
        client = VaultClient(transport, settings, token="tok-123", namespace="team/a")
        assert (await client.read("secret/data/my app")).data == {"k": "v"}
    finally:
        server.close()
        await server.wait_closed()
    # A namespaced client first asks sys/health whether the server has namespaces (Vault CE
    # has none); that probe carries neither the client's token nor the namespace. This fake
    # server's "health" says nothing, so the read goes ahead.
    probe = seen[0].decode().lower()
    assert probe.startswith("get /v1/sys/health?")
    assert "tok-123" not in probe and "x-vault-namespace" not in probe
    head = seen[1].decode().lower()
    assert head.startswith("get /v1/secret/data/my%20app http/1.1")
    assert "x-vault-token: tok-123" in head
    assert "spoof" not in head
    assert "x-vault-namespace: team/a" in head
    assert "x-vault-request: true" in head
    assert "x-custom: 1" in head


async def test_redirect_is_not_followed_so_the_token_stays_home(transport: Transport) -> None:
    elsewhere: list[bytes] = []

    async def thief(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        elsewhere.append(await r.readuntil(b"\r\n\r\n"))
        w.close()

    other = await asyncio.start_server(thief, "127.0.0.1", 0)
    other_port = other.sockets[0].getsockname()[1]

    async def redirect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:"
            + str(other_port).encode()
            + b"/v1/secret/data/x\r\nContent-Length: 0\r\n\r\n"
        )
        await w.drain()
        w.close()

    server = await asyncio.start_server(redirect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = VaultClient(transport, ConnectionSettings(f"http://127.0.0.1:{port}"), token="t")
        with pytest.raises(BadResponse, match="redirect"):
            await client.read("secret/data/x")
        assert elsewhere == []
    finally:
        for srv in (server, other):
            srv.close()
            await srv.wait_closed()


# -- client cache -----------------------------------------------------------------------------


async def test_cache_fifty_concurrent_gets_one_real_login(
    approle: AppRole, transport: Transport, settings: ConnectionSettings, recorder: Recorder
) -> None:
    cache = ClientCache(transport)

    async def login() -> AuthToken:
        return await VaultClient(transport, settings).login_approle(
            approle.mount, approle.role_id, approle.secret_id
        )

    try:
        clients = await asyncio.gather(
            *(cache.get(("auth", approle.role), login, settings, None) for _ in range(50))
        )
        assert cache.logins == 1
        assert recorder.count("login_approle") == 1
        # cross-check with Vault itself: every client holds the same token
        accessors = {(await c.lookup_self()).accessor for c in clients}
        assert len(accessors) == 1
    finally:
        await cache.close()


async def test_cache_renews_a_real_token_in_the_background(
    root: VaultClient, transport: Transport, settings: ConnectionSettings, recorder: Recorder
) -> None:
    ar = await make_approle(root, token_ttl="6s", token_max_ttl="60s")
    cache = ClientCache(transport)

    async def login() -> AuthToken:
        return await VaultClient(transport, settings).login_approle(
            ar.mount, ar.role_id, ar.secret_id
        )

    try:
        first = await cache.get("k", login, settings, None)
        accessor = (await first.lookup_self()).accessor
        await asyncio.sleep(4.3)  # past 2/3 of 6 s, well before the 90 % hard limit
        assert await cache.get("k", login, settings, None) is first
        for _ in range(50):
            if cache.renewals:
                break
            await asyncio.sleep(0.05)
        assert (cache.renewals, cache.logins) == (1, 1)
        assert recorder.count("renew_self") == 1
        await asyncio.sleep(2.0)  # the original 6 s have passed; the renewed token lives on
        again = await cache.get("k", login, settings, None)
        assert again is first
        info = await again.lookup_self()
        assert info.accessor == accessor
        assert info.lease_duration > 0
    finally:
        await cache.close()
        await root.delete(f"sys/auth/{ar.mount}")


async def test_cache_invalidate_after_revocation_logs_in_again(
    approle: AppRole, transport: Transport, settings: ConnectionSettings
) -> None:
    cache = ClientCache(transport)

    async def login() -> AuthToken:
        return await VaultClient(transport, settings).login_approle(
            approle.mount, approle.role_id, approle.secret_id
        )

    try:
        client = await cache.get("k", login, settings, None)
        await client.revoke_self()
        with pytest.raises((PermissionDenied, InvalidRequest)):
            await client.lookup_self()
        cache.invalidate("k")
        fresh = await cache.get("k", login, settings, None)
        assert fresh is not client
        assert (await fresh.lookup_self()).accessor
        assert cache.logins == 2
    finally:
        await cache.close()


# -- Kubernetes and JWT auth (need the real API server) ----------------------------------------


@pytest.mark.both_servers
async def test_login_kubernetes_with_a_service_account_token(
    devenv: Any, kube: Any, namespace: str, transport: Transport
) -> None:
    settings = ConnectionSettings(devenv.vault_addr)
    root = VaultClient(transport, settings, token=devenv.vault_root_token)
    role = uid("k8s")
    await root.write(
        f"auth/kubernetes/role/{role}",
        {
            "bound_service_account_names": ["default"],
            "bound_service_account_namespaces": [namespace],
            "token_policies": ["default"],
            "token_ttl": "10m",
        },
    )
    try:
        jwt = await kube.create_token(namespace, "default", None, 600)
        client = VaultClient(transport, settings)
        tok = await client.login_kubernetes("kubernetes", role, jwt)
        assert tok.policies == ("default",)
        assert tok.lease_duration == 600
        assert (await client.lookup_self()).accessor == tok.accessor
        with pytest.raises(PermissionDenied):
            await VaultClient(transport, settings).login_kubernetes("kubernetes", role, "a.b.c")
    finally:
        await root.delete(f"auth/kubernetes/role/{role}")


@pytest.mark.both_servers
async def test_login_jwt_with_a_service_account_token(
    devenv: Any, kube: Any, namespace: str, transport: Transport
) -> None:
    settings = ConnectionSettings(devenv.vault_addr)
    root = VaultClient(transport, settings, token=devenv.vault_root_token)
    role, audience = uid("jwt"), uid("aud")
    await root.write(
        f"auth/jwt/role/{role}",
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [audience],
            "bound_subject": f"system:serviceaccount:{namespace}:default",
            "token_policies": ["default"],
            "token_ttl": "5m",
        },
    )
    try:
        jwt = await kube.create_token(namespace, "default", [audience], 600)
        client = VaultClient(transport, settings)
        tok = await client.login_jwt("jwt", role, jwt)
        assert tok.policies == ("default",)
        assert tok.lease_duration == 300
        # a token for another audience is refused
        other = await kube.create_token(namespace, "default", ["someone-else"], 600)
        with pytest.raises((PermissionDenied, InvalidRequest)):
            await VaultClient(transport, settings).login_jwt("jwt", role, other)
    finally:
        await root.delete(f"auth/jwt/role/{role}")


async def test_one_shared_session_serves_every_connection(
    transport: Transport, settings: ConnectionSettings
) -> None:
    """One shared session: many clients and connections reuse the same pool."""
    await VaultClient(transport, settings).sys_health()
    session = transport._session
    assert isinstance(session, aiohttp.ClientSession)
    await VaultClient(transport, ConnectionSettings(settings.address, timeout=3)).sys_health()
    assert transport._session is session
