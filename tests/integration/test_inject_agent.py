"""`vaultbridge agent` end to end: the real process, OpenBao, PostgreSQL and a ServiceAccount
token issued by the dev API server (TokenRequest, audience `vault`), exactly as the webhook's
init container and native sidecar would run it (`VAULTBRIDGE_AGENT_ROOT` maps the pod's paths
into a scratch directory).

Every test scans the agent's stdout and stderr for the values it delivered.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from vaultbridge.agent.http import ThreadTransport
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.inject.config import AGENT_CONFIG_ENV, AGENT_ROOT_ENV, DEFAULT_TOKEN_PATH
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.connection import ConnectionSettings
from vaultbridge.vault.errors import VaultTLSError

from .dynamic_support import DB
from .helpers import App, wait_for
from .inject_support import OPT_IN, Ns
from .operator_harness import Postgres, dump
from .pki_support import PKI, same_key
from .tls_support import TLSBao

pytestmark = pytest.mark.integration

AGENT = [str(Path(sys.executable).parent / "vaultbridge"), "agent"]
STATE = ".vaultbridge-state.json"


class Pod:
    """A pod's view for the agent: its namespace's Vault role, a token of its ServiceAccount
    at the projected path, a scratch root for its files, and the agent processes it ran."""

    def __init__(self, devenv: DevState, admin: KubeAdmin, namespace: str, root: Path) -> None:
        self.app = App(devenv, admin, namespace)
        self.devenv = devenv
        self.admin = admin
        self.ns = namespace
        self.root = root
        self.values: list[str] = []
        self.outputs: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def grant(self, paths: list[str]) -> None:
        self.app.vault.allow_role(paths)

    def issue_token(self) -> None:
        status, resp = self.admin.request(
            "POST",
            f"/api/v1/namespaces/{self.ns}/serviceaccounts/default/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": ["vault"], "expirationSeconds": 3600},
            },
        )
        assert status == 201, dump(resp)
        path = self.path(DEFAULT_TOKEN_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(resp["status"]["token"])

    def path(self, pod_path: str) -> Path:
        return self.root / pod_path.lstrip("/")

    def obj(self, name: str, kind: str, spec: dict[str, Any], **file: Any) -> dict[str, Any]:
        spec = {"destination": {"name": name}, **spec}
        return {
            "name": name,
            "kind": kind,
            "spec": spec,
            "vault": {"address": self.devenv.vault_addr},
            "login": {"method": "kubernetes", "mount": "kubernetes", "role": self.app.vault.role},
            "file": {"directory": f"/vault/secrets/{name}", **file},
        }

    def env(self, objects: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
        config = {"version": 1, "namespace": self.ns, "objects": objects, **extra}
        return dict(
            os.environ, **{AGENT_CONFIG_ENV: json.dumps(config), AGENT_ROOT_ENV: str(self.root)}
        )

    def once(self, objects: list[dict[str, Any]], **extra: Any) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*AGENT, "--once"],
            env=self.env(objects, **extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs.append(proc.stdout + proc.stderr)
        return proc

    def sidecar(self, objects: list[dict[str, Any]], **extra: Any) -> subprocess.Popen[bytes]:
        log = self.root / f"sidecar-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                AGENT, env=self.env(objects, **extra), stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(60)

    def files(self, name: str) -> dict[str, str]:
        directory = self.path(f"/vault/secrets/{name}")
        return {
            p.name: p.read_text()
            for p in sorted(directory.iterdir())
            if not p.name.startswith(".vaultbridge")
        }

    def state(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.path(f"/vault/secrets/{name}/{STATE}").read_text()))

    def logs(self) -> str:
        texts = list(self.outputs)
        texts += [p.read_text(errors="replace") for p in sorted(self.root.glob("sidecar-*.log"))]
        return "\n".join(texts)

    def assert_no_value_logged(self) -> None:
        logs = self.logs()
        assert logs.strip(), "the agent logged nothing at all"
        leaked = [v for v in self.values if v and v in logs]
        assert not leaked, f"{len(leaked)} values appear in the agent's logs"

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def pod(devenv: DevState, kube_admin: KubeAdmin, namespace: str, tmp_path: Path) -> Iterator[Pod]:
    p = Pod(devenv, kube_admin, namespace, tmp_path)
    yield p
    p.close()
    p.assert_no_value_logged()


def _secret_value(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(12)}"


def test_once_writes_static_files_per_key_and_templated(pod: Pod) -> None:
    ns = pod.ns
    pod.grant([f"secret/data/{ns}/*"])
    pod.issue_token()
    user, password = _secret_value("user"), _secret_value("pw")
    pod.values += [user, password]
    pod.app.vault.kv_put(f"{ns}/db", {"username": user, "password": password})
    kv = {"mount": "secret", "type": "kv-v2", "path": f"{ns}/db"}
    objects = [
        pod.obj(
            "per-key",
            "VaultStaticSecret",
            {
                **kv,
                "destination": {
                    "name": "per-key",
                    "transformation": {
                        "excludes": ["^_raw$"],
                        "templates": {"dsn": {"text": "pg://{{ secrets.username }}@db"}},
                    },
                },
            },
        ),
        pod.obj(
            "env",
            "VaultStaticSecret",
            kv,
            template="USER={{ secrets.username }}\nPASS={{ secrets.password }}\n",
            filename="config.env",
        ),
    ]
    proc = pod.once(objects)
    assert proc.returncode == 0, proc.stderr
    assert pod.files("per-key") == {
        "username": user,
        "password": password,
        "dsn": f"pg://{user}@db",
    }
    assert pod.files("env") == {"config.env": f"USER={user}\nPASS={password}\n"}
    mode = pod.path("/vault/secrets/per-key/password").stat().st_mode & 0o777
    assert mode == 0o400
    # The hand-over to the sidecar names no value.
    state = pod.state("per-key")
    assert state["kind"] == "VaultStaticSecret" and user not in json.dumps(state)


def test_once_fails_loudly_without_access(pod: Pod) -> None:
    ns = pod.ns
    pod.grant([f"secret/data/{ns}/allowed/*"])
    pod.issue_token()
    obj = pod.obj(
        "denied", "VaultStaticSecret", {"mount": "secret", "type": "kv-v2", "path": f"{ns}/other"}
    )
    proc = pod.once([obj])
    assert proc.returncode == 1
    assert "VaultStaticSecret denied: cannot deliver its files" in proc.stderr
    assert "permission denied" in proc.stderr.lower() or "403" in proc.stderr
    assert not pod.path("/vault/secrets/denied").exists() or not pod.files("denied")


def test_sidecar_follows_a_kv_change_atomically_and_tells_the_app(pod: Pod) -> None:
    ns = pod.ns
    pod.grant([f"secret/data/{ns}/*"])
    pod.issue_token()
    # Large values: a torn write would show as a prefix of one of them.
    versions = [_secret_value(f"v{i}") * 4000 for i in range(4)]
    pod.values += [v[:40] for v in versions]
    pod.app.vault.kv_put(f"{ns}/big", {"blob": versions[0]})
    # The app: a process whose command line names it, noting every SIGHUP.
    marker = pod.root / "hups"
    app_code = (
        "import signal,sys,time\n"
        f"signal.signal(signal.SIGHUP, lambda *a: open({str(marker)!r}, 'a').write('x'))\n"
        "time.sleep(600)\n"
    )
    app_tag = f"app-{secrets.token_hex(4)}"
    app = subprocess.Popen([sys.executable, "-c", app_code, app_tag])
    pod.procs.append(app)
    obj = pod.obj(
        "big",
        "VaultStaticSecret",
        {"mount": "secret", "type": "kv-v2", "path": f"{ns}/big", "refreshAfter": "1s"},
    )
    on_change = {"signal": "SIGHUP", "signal_process": app_tag, "touch": "/vault/secrets/touched"}
    assert pod.once([obj], on_change=on_change).returncode == 0
    target = pod.path("/vault/secrets/big/blob")
    assert target.read_text() == versions[0]

    seen: set[str] = set()
    torn: list[int] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            text = target.read_text()
            if text in versions:
                seen.add(text)
            else:
                torn.append(len(text))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    sidecar = pod.sidecar([obj], on_change=on_change)
    try:
        for version in versions[1:]:
            pod.app.vault.kv_put(f"{ns}/big", {"blob": version})
            wait_for(lambda v=version: v in seen, 60, "the sidecar to write the new version")
    finally:
        done.set()
        thread.join(10)
    assert not torn, f"{len(torn)} reads saw a partial file"
    assert seen == set(versions)
    # An unchanged refresh costs one Vault read and rewrites nothing.
    unchanged = re.compile(r"big: \d+ files in \S+, 0 rewritten, 0 removed \(1 Vault requests\)")
    wait_for(lambda: unchanged.search(pod.logs()), 60, "a refresh that rewrites nothing")
    # Told after each rewrite, not after the first write (the init container's).
    wait_for(lambda: marker.exists() and len(marker.read_text()) >= 3, 30, "three SIGHUPs")
    assert pod.path("/vault/secrets/touched").exists()
    assert pod.stop(sidecar) == 0
    logs = pod.logs()
    assert "adopted what the init container delivered" in logs


def test_database_credentials_log_in_lease_renewed_and_revoked(pod: Pod, pg: Postgres) -> None:
    pod.grant([f"secret/data/{pod.ns}/*"])
    db = DB(pod.app, pg)
    try:
        db.role("app", default_ttl="8s", max_ttl="10m")
        pod.issue_token()
        obj = pod.obj(
            "db",
            "VaultDynamicSecret",
            {"mount": db.mount, "path": "creds/app", "revoke": True, "renewalPercent": 50},
        )
        sidecar = pod.sidecar([obj])

        def credentials() -> dict[str, str] | None:
            files = pod.files("db") if pod.path("/vault/secrets/db/password").exists() else {}
            return files if files.get("username") and files.get("password") else None

        creds = wait_for(credentials, 60, "credentials written by the sidecar")
        pod.values.append(creds["password"])
        assert db.can_login(creds)
        lease_id = pod.state("db")["held"]["lease_id"]
        assert lease_id

        def renewed() -> bool:
            status, resp = db.bao.call("PUT", "sys/leases/lookup", {"lease_id": lease_id})
            return status == 200 and bool(resp["data"].get("last_renewal"))

        wait_for(renewed, 60, "OpenBao to record a renewal of the lease")
        # Renewed, not replaced: the same credentials still log in after the first TTL.
        wait_for(lambda: (db.lease_ttl(lease_id) or 0) > 0, 10, "lease alive")
        assert credentials() == creds
        assert db.can_login(creds)
        assert pod.stop(sidecar) == 0
        # SIGTERM with `revoke: true`: OpenBao forgets the lease, PostgreSQL the user.
        assert db.lease_ttl(lease_id) is None
        assert not db.can_login(creds)
    finally:
        db.close()


def test_pki_writes_a_matching_tls_pair(pod: Pod) -> None:
    pod.grant([f"secret/data/{pod.ns}/*"])
    pki = PKI(pod.app)
    try:
        pod.issue_token()
        obj = pod.obj(
            "tls",
            "VaultPKISecret",
            {"mount": pki.mount, "role": "web", "commonName": "svc.example.com", "ttl": "1h"},
        )
        proc = pod.once([obj])
        assert proc.returncode == 0, proc.stderr
        files = pod.files("tls")
        pod.values.append(files["tls.key"].splitlines()[1])
        cert = x509.load_pem_x509_certificate(files["tls.crt"].encode())
        assert same_key(files["tls.key"], cert)
        ca = x509.load_pem_x509_certificate(files["ca.crt"].encode())
        assert ca == pki.ca
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "svc.example.com" in names.get_values_for_type(x509.DNSName)
        assert pod.state("tls")["held"]["serial"] == files["serial_number"]
    finally:
        pki.close()


def test_once_refuses_a_config_without_echoing_it(pod: Pod) -> None:
    secret = _secret_value("cfg")
    pod.values.append(secret)
    env = dict(os.environ, **{AGENT_CONFIG_ENV: json.dumps({"version": 1, "oops": secret})})
    proc = subprocess.run(
        [*AGENT, "--once"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    pod.outputs.append(proc.stdout + proc.stderr)
    assert proc.returncode == 2
    assert "VAULTBRIDGE_AGENT_CONFIG is invalid" in proc.stderr


async def test_agent_transport_trusts_the_connection_ca_only(tls_bao: TLSBao) -> None:
    """The agent's http.client transport against a real TLS server: the connection's CA is
    trusted, the system store is not, and `tls_server_name` is what the certificate must name."""
    tls_bao.call("POST", "secret/data/agent-tls", {"data": {"k": "over-tls"}})
    transport = ThreadTransport()
    try:
        client = VaultClient(transport, ConnectionSettings(tls_bao.addr, ca_pem=tls_bao.ca_pem))
        await client.use_token(tls_bao.root_token)
        secret = await client.kv_read("secret", "agent-tls", kv_version=2)
        assert secret.data == {"k": "over-tls"}
        for settings in (
            ConnectionSettings(tls_bao.addr),
            ConnectionSettings(
                tls_bao.addr, ca_pem=tls_bao.ca_pem, tls_server_name="not-in-the-cert.example"
            ),
        ):
            other = VaultClient(transport, settings, token=tls_bao.root_token)
            with pytest.raises(VaultTLSError):
                await other.kv_read("secret", "agent-tls", kv_version=2)
    finally:
        await transport.close()


def test_sidecar_replaces_the_init_containers_lease_instead_of_renewing_it(
    pod: Pod,
    pg: Postgres,
) -> None:
    """The init container's lease belongs to its Vault token, which nobody renews after it
    exits: the sidecar adopts the credentials (no second set at start) and replaces them at
    the renewal point with its own, which it then renews."""
    pod.grant([f"secret/data/{pod.ns}/*"])
    db = DB(pod.app, pg)
    try:
        db.role("app", default_ttl="10s", max_ttl="10m")
        pod.issue_token()
        obj = pod.obj("db", "VaultDynamicSecret", {"mount": db.mount, "path": "creds/app"})
        assert pod.once([obj]).returncode == 0
        first = pod.files("db")
        pod.values.append(first["password"])
        first_lease = pod.state("db")["held"]["lease_id"]
        sidecar = pod.sidecar([obj])
        wait_for(lambda: "adopted what the init container" in pod.logs(), 60, "adoption")

        def replaced() -> dict[str, str] | None:
            # Files change one by one (each atomically): wait for a consistent new set, as an
            # app reading several files must (file.template gives one file instead).
            files = pod.files("db")
            raw = json.loads(files.get("_raw") or "{}")
            new = files.get("password") not in (None, first["password"])
            consistent = raw.get("password") == files.get("password") and raw.get(
                "username"
            ) == files.get("username")
            return files if new and consistent else None

        second = wait_for(replaced, 60, "the sidecar's own credentials")
        pod.values.append(second["password"])
        assert db.can_login(second)
        second_lease = pod.state("db")["held"]["lease_id"]
        assert second_lease != first_lease
        assert not pod.state("db")["held"]["adopted"]
        assert pod.stop(sidecar) == 0
    finally:
        db.close()


def test_the_webhooks_init_container_runs_as_written(
    pod: Pod,
    space: Ns,
) -> None:
    """End to end with the operator's half: a VaultStaticSecret in inject mode, a Pod mutated
    by the real webhook, and the init container run exactly as the pod spec says (its command,
    args and environment; a token issued for the pod's ServiceAccount at its projected path)."""
    ns = space.ns
    assert ns == pod.ns
    pod.grant([f"secret/data/{ns}/*"])
    password = _secret_value("web-pw")
    pod.values.append(password)
    pod.app.vault.kv_put(f"{ns}/db", {"password": password})
    space.vss("db", f"{ns}/db", delivery="inject")
    space.ready("db")
    annotations = {
        "vaultbridge.dev/inject": "db",
        "vaultbridge.dev/inject-template.db": "PASSWORD={{ password }}",
        "vaultbridge.dev/inject-file.db": "db.env",
    }
    status, created = space.create_pod("web", annotations, dict(OPT_IN))
    assert status == 201, dump(created)
    init = created["spec"]["initContainers"][0]
    assert init["command"] == ["vaultbridge"]
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    pod.issue_token()
    run_env = dict(os.environ, **env, **{AGENT_ROOT_ENV: str(pod.root)})
    proc = subprocess.run(
        [AGENT[0], *init["args"]],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    pod.outputs.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert pod.files("db") == {"db.env": f"PASSWORD={password}"}

    # Delivered into the pod's files, and nowhere in etcd: not in a Secret (none exists for
    # the object), not in the pod spec (the agent config holds no value), not in the object's
    # status or events. etcd read directly, every key the API server stored.
    _, secrets_listed = space.admin.request("GET", f"/api/v1/namespaces/{ns}/secrets")
    assert not [s for s in secrets_listed.get("items", []) if s["metadata"]["name"] == "db"], (
        "an inject-mode object must never have a Secret"
    )
    stored = _etcd_values(pod.devenv, "/registry/")
    assert len(stored) > 100, "the scan read the API server's keyspace"
    forms = (password.encode(), base64.b64encode(password.encode()))
    assert not [k for k, v in stored.items() if any(f in v for f in forms)], "value in etcd"


def _etcd_values(devenv: DevState, prefix: str) -> dict[str, bytes]:
    """Every key under `prefix` in the dev environment's etcd, with its raw stored value."""
    body = {
        "key": base64.b64encode(prefix.encode()).decode(),
        "range_end": base64.b64encode(prefix[:-1].encode() + bytes([ord(prefix[-1]) + 1])).decode(),
    }
    req = urllib.request.Request(
        f"{devenv.etcd_url}/v3/kv/range", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        kvs = json.loads(resp.read()).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]) for kv in kvs}
