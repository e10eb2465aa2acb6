"""load_config on real kubeconfig files: TLS material, every credential kind, contexts,
errors; token providers (file rotation, exec plugin run as a real subprocess)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import ssl
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vaultbridge.kube.config import (
    BasicAuth,
    ExecToken,
    FileToken,
    StaticToken,
    load_config,
)
from vaultbridge.kube.errors import KubeConfigError


def _cert(
    cn: str, issuer_key: Any = None, issuer: x509.Name | None = None, ca: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    ca_key, ca = _cert("test-ca", ca=True)
    client_key, client = _cert("admin", issuer_key=ca_key, issuer=ca.subject)
    return {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "cert": client.public_bytes(serialization.Encoding.PEM),
        "key": client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    path: Path,
    user: dict[str, Any],
    cluster: dict[str, Any],
    *,
    namespace: str | None = None,
    extra_contexts: dict[str, dict[str, Any]] | None = None,
) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    contexts = [{"name": "main", "context": context}]
    for name, ctx in (extra_contexts or {}).items():
        contexts.append({"name": name, "context": ctx})
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "main",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": contexts,
            }
        )
    )
    return path


def test_ca_data_client_cert_data_and_namespace(tmp_path: Path, pki: dict[str, bytes]) -> None:
    kc = write_kubeconfig(
        tmp_path / "config",
        {"client-certificate-data": b64(pki["cert"]), "client-key-data": b64(pki["key"])},
        {"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(pki["ca"])},
        namespace="team-a",
    )
    cfg = load_config(kc)
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.namespace == "team-a" and cfg.context_name == "main"
    assert cfg.token is None and cfg.basic_auth is None
    assert cfg.ssl_context is not None
    assert cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED and cfg.ssl_context.check_hostname
    assert [c["subject"] for c in cfg.ssl_context.get_ca_certs()] == [
        ((("commonName", "test-ca"),),)
    ]
    # The key pair went through a private temp dir that no longer exists.
    assert not [
        p
        for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("vaultbridge-*")
        if (p / "tls.key").exists()
    ]


def test_ca_and_client_cert_files_relative_to_kubeconfig(
    tmp_path: Path, pki: dict[str, bytes]
) -> None:
    (tmp_path / "ca.crt").write_bytes(pki["ca"])
    (tmp_path / "tls.crt").write_bytes(pki["cert"])
    (tmp_path / "tls.key").write_bytes(pki["key"])
    kc = write_kubeconfig(
        tmp_path / "config",
        {"client-certificate": "tls.crt", "client-key": "tls.key"},
        {"server": "https://k8s.example:443", "certificate-authority": "ca.crt"},
    )
    cfg = load_config(str(kc))
    assert cfg.ssl_context is not None and len(cfg.ssl_context.get_ca_certs()) == 1
    assert cfg.namespace == "default"


def test_insecure_skip_verify(tmp_path: Path) -> None:
    kc = write_kubeconfig(
        tmp_path / "config",
        {"token": "abc"},
        {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
    )
    cfg = load_config(kc)
    assert cfg.ssl_context is not None
    assert cfg.ssl_context.verify_mode == ssl.CERT_NONE and not cfg.ssl_context.check_hostname


async def test_static_token_is_redacted_in_reprs(tmp_path: Path) -> None:
    kc = write_kubeconfig(tmp_path / "config", {"token": "s3cr3t-token\n"}, {"server": "http://h"})
    cfg = load_config(kc)
    assert isinstance(cfg.token, StaticToken)
    assert await cfg.token.token() == "s3cr3t-token"
    assert cfg.ssl_context is None
    assert "s3cr3t" not in repr(cfg)


async def test_basic_auth(tmp_path: Path) -> None:
    kc = write_kubeconfig(
        tmp_path / "config", {"username": "bob", "password": "hunter2"}, {"server": "http://h"}
    )
    cfg = load_config(kc)
    assert isinstance(cfg.basic_auth, BasicAuth)
    assert cfg.basic_auth.header() == "Basic " + b64(b"bob:hunter2")
    assert "hunter2" not in repr(cfg) and "Ym9i" not in repr(cfg)


async def test_token_file_is_reread_after_refresh_interval(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    kc = write_kubeconfig(
        tmp_path / "config", {"tokenFile": str(token_file)}, {"server": "http://h"}
    )
    cfg = load_config(kc)
    assert isinstance(cfg.token, FileToken)
    assert await cfg.token.token() == "first"
    token_file.write_text("second")
    assert await cfg.token.token() == "first"  # cached within the interval
    cfg.token.invalidate()  # what the client does on 401
    assert await cfg.token.token() == "second"

    quick = FileToken(token_file, refresh_seconds=0.0)
    assert await quick.token() == "second"
    token_file.write_text("third")
    assert await quick.token() == "third"
    token_file.unlink()
    assert await quick.token() == "third"  # keeps the last good token while rotating
    with pytest.raises(KubeConfigError):
        await FileToken(tmp_path / "missing").token()


def _plugin(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "plugin.py"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


EXEC_PLUGIN = """
import json, os, sys, datetime as dt
from pathlib import Path
counter = Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
ttl = int(os.environ.get("TTL", "3600"))
exp = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {"token": f"tok-{n}-{os.environ['GREETING']}",
                             "expirationTimestamp": exp}}))
"""


async def test_exec_plugin_token_cached_until_expiry_or_401(tmp_path: Path) -> None:
    script = _plugin(tmp_path, EXEC_PLUGIN)
    counter = tmp_path / "count"
    kc = write_kubeconfig(
        tmp_path / "config",
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": str(script),
                "args": [str(counter)],
                "env": [{"name": "GREETING", "value": "hi"}],
            }
        },
        {"server": "http://h"},
    )
    cfg = load_config(kc)
    assert isinstance(cfg.token, ExecToken)
    assert await cfg.token.token() == "tok-1-hi"
    assert await cfg.token.token() == "tok-1-hi"
    cfg.token.invalidate()
    assert await cfg.token.token() == "tok-2-hi"

    # A credential about to expire (inside the safety margin) is fetched again every time.
    short = ExecToken(str(script), [str(counter)], {"GREETING": "x", "TTL": "5"})
    assert await short.token() == "tok-3-x"
    assert await short.token() == "tok-4-x"


async def test_exec_plugin_failure_does_not_leak_its_output(tmp_path: Path) -> None:
    script = _plugin(
        tmp_path, "import sys\nprint('password=letmein', file=sys.stderr)\nsys.exit(3)\n"
    )
    with pytest.raises(KubeConfigError) as err:
        await ExecToken(str(script)).token()
    assert "exited with 3" in str(err.value) and "letmein" not in str(err.value)
    garbage = _plugin(tmp_path, "print('not json')\n")
    with pytest.raises(KubeConfigError, match="no ExecCredential"):
        await ExecToken(str(garbage)).token()
    with pytest.raises(KubeConfigError, match="not supported"):
        ExecToken("x", api_version="client.authentication.k8s.io/v9")


def test_context_selection_and_errors(tmp_path: Path) -> None:
    kc = write_kubeconfig(
        tmp_path / "config",
        {"token": "t"},
        {"server": "http://h"},
        extra_contexts={"other": {"cluster": "c", "user": "u", "namespace": "ops"}},
    )
    assert load_config(kc, context="other").namespace == "ops"
    with pytest.raises(KubeConfigError, match="nope"):
        load_config(kc, context="nope")
    with pytest.raises(KubeConfigError):
        load_config(tmp_path / "missing")
    (tmp_path / "broken").write_text("clusters: 5\n")
    with pytest.raises(KubeConfigError):
        load_config(tmp_path / "broken")
    provider = write_kubeconfig(
        tmp_path / "provider", {"auth-provider": {"name": "gcp"}}, {"server": "http://h"}
    )
    with pytest.raises(KubeConfigError, match="auth-provider"):
        load_config(provider)


def test_kubeconfig_env_path_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kc = write_kubeconfig(tmp_path / "config", {"token": "t"}, {"server": "http://found"})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "absent"), str(kc)]))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert load_config().server == "http://found"


def test_in_cluster_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: dict[str, bytes]
) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("projected")
    (sa / "namespace").write_text("vaultbridge-system")
    (sa / "ca.crt").write_bytes(pki["ca"])
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = load_config(service_account_dir=sa)
    assert cfg.server == "https://10.0.0.1:443"
    assert cfg.namespace == "vaultbridge-system"
    assert isinstance(cfg.token, FileToken) and cfg.token.path == sa / "token"
    assert cfg.ssl_context is not None and len(cfg.ssl_context.get_ca_certs()) == 1
    # Outside a pod (no service env), the kubeconfig path is used instead.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    kc = write_kubeconfig(tmp_path / "config", {"token": "t"}, {"server": "http://outside"})
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert load_config(service_account_dir=sa).server == "http://outside"
