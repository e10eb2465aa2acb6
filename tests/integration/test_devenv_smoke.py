"""Proof that the dev environment is the real thing, not a stand-in."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from vaultbridge.devenv import environment
from vaultbridge.devenv.certs import cert_paths, issue_certificate, load_ca
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin
from vaultbridge.devenv.paths import K8S_VERSION
from vaultbridge.devenv.vaultserver import VaultAdmin, expected_version

pytestmark = pytest.mark.integration


def _wait(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _sa_token(admin: KubeAdmin, namespace: str, name: str) -> str:
    admin.ensure(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    status, resp = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    assert status == 201, resp
    return str(resp["status"]["token"])


def test_version_is_the_pinned_kubernetes(kube_admin: KubeAdmin) -> None:
    status, version = kube_admin.request("GET", "/version")
    assert status == 200
    assert version["gitVersion"] == K8S_VERSION
    assert version["major"] == "1"


@pytest.mark.both_servers
def test_vault_server_is_the_pinned_one(devenv: DevState) -> None:
    """`dev up` checked it too; this says which server the whole session ran against."""
    status, health = VaultAdmin(devenv.vault_addr, "").call("GET", "sys/health")
    assert status == 200, health
    assert health["version"] == expected_version(devenv.vault_server) == devenv.vault_version
    if devenv.vault_server == "hashicorp":
        assert health["enterprise"] is False  # Community Edition
    else:
        assert "enterprise" not in health  # OpenBao's health has no such field
    assert environment.status(devenv)[-1]["version"] == (
        f"{devenv.vault_product} {devenv.vault_version}"
    )


@pytest.mark.both_servers
def test_vault_has_the_file_and_the_udp_stream_audit_devices(devenv: DevState) -> None:
    """Both servers get the same audit devices (OpenBao from its config file, HashiCorp Vault
    through sys/audit): the file log the bench counts requests in, and the UDP socket device
    behind the per-environment prefix that instant updates receive."""
    admin = VaultAdmin(devenv.vault_addr, devenv.vault_root_token)
    devices = admin.must("GET", "sys/audit")["data"]
    assert {k: v["type"] for k, v in devices.items()} == {
        "file/": "file",
        "vaultbridge/": "socket",
    }
    assert devices["file/"]["options"]["file_path"] == str(devenv.vault_audit_log)
    assert devices["vaultbridge/"]["options"] == {
        "address": f"127.0.0.1:{devenv.ports['audit-stream']}",
        "socket_type": "udp",
        "prefix": devenv.audit_stream_prefix,
    }
    # And the file device writes: a request just made is in the log.
    marker = f"secret/data/smoke-audit-{time.monotonic_ns()}"
    admin.call("GET", marker)
    assert _wait(lambda: marker in devenv.vault_audit_log.read_text(errors="replace"), 30)


@pytest.mark.both_servers
def test_serviceaccount_token_logs_in_to_vault_and_other_namespace_is_refused(
    devenv: DevState, kube_admin: KubeAdmin, namespace: str
) -> None:
    bao = BaoAdmin(devenv.vault_addr, devenv.vault_root_token)
    role = f"smoke-{namespace}"
    bao.must(
        "POST",
        f"auth/kubernetes/role/{role}",
        {
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": [namespace],
            "token_policies": ["default"],
            "token_ttl": "10m",
        },
    )
    token = _sa_token(kube_admin, namespace, "app")
    anon = BaoAdmin(devenv.vault_addr, "")
    status, resp = anon.call("POST", "auth/kubernetes/login", {"role": role, "jwt": token})
    assert status == 200, resp
    assert resp["auth"]["client_token"]
    assert resp["auth"]["metadata"]["service_account_namespace"] == namespace

    other_ns = f"{namespace}-other"
    kube_admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other_ns}},
    )
    try:
        other = _sa_token(kube_admin, other_ns, "app")
        status, resp = anon.call("POST", "auth/kubernetes/login", {"role": role, "jwt": other})
        assert status == 403, resp
        # A forged token (valid shape, wrong signature) is refused by the real TokenReview.
        header, payload, _sig = token.split(".")
        status, resp = anon.call(
            "POST", "auth/kubernetes/login", {"role": role, "jwt": f"{header}.{payload}.AAAA"}
        )
        assert status == 403, resp
    finally:
        kube_admin.request("DELETE", f"/api/v1/namespaces/{other_ns}")


def test_secrets_are_encrypted_at_rest_in_etcd(
    devenv: DevState, kube_admin: KubeAdmin, namespace: str
) -> None:
    canary = "canary-plaintext-7f3a9c"
    status, _ = kube_admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "enc"},
            "stringData": {"value": canary},
        },
    )
    assert status == 201
    key = base64.b64encode(f"/registry/secrets/{namespace}/enc".encode()).decode()
    req = urllib.request.Request(
        f"{devenv.etcd_url}/v3/kv/range", data=json.dumps({"key": key}).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        kvs = json.loads(resp.read())["kvs"]
    raw = base64.b64decode(kvs[0]["value"])
    assert raw.startswith(b"k8s:enc:secretbox:v1:key1:")
    assert canary.encode() not in raw
    # ... while the API still serves the plaintext to authorised clients.
    _, secret = kube_admin.request("GET", f"/api/v1/namespaces/{namespace}/secrets/enc")
    assert base64.b64decode(secret["data"]["value"]).decode() == canary


def test_garbage_collector_deletes_dependents(kube_admin: KubeAdmin, namespace: str) -> None:
    _, owner = kube_admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
    )
    status, _ = kube_admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
        },
    )
    assert status == 201
    kube_admin.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/owner")
    assert _wait(
        lambda: (
            kube_admin.request("GET", f"/api/v1/namespaces/{namespace}/secrets/dependent")[0] == 404
        )
    )


def test_deployment_gets_a_replicaset(kube_admin: KubeAdmin, namespace: str) -> None:
    status, _ = kube_admin.request(
        "POST",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "example.invalid/x"}]},
                },
            },
        },
    )
    assert status == 201

    def has_rs() -> bool:
        _, rs = kube_admin.request("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets")
        return any(
            ref.get("name") == "web"
            for item in rs.get("items", [])
            for ref in item["metadata"].get("ownerReferences", [])
        )

    assert _wait(has_rs)


@pytest.fixture
def webhook_server(devenv: DevState) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    ca_cert, ca_key = load_ca(cert_paths(devenv.pki_dir))
    cert, key = issue_certificate(
        ca_cert, ca_key, common_name="webhook", ip_addresses=("127.0.0.1",), server=True
    )
    tmp = devenv.pki_dir / "smoke-webhook"
    tmp.mkdir(exist_ok=True)
    (tmp / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    calls: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            request = review["request"]
            calls.append(request)
            labels = request["object"]["metadata"].get("labels") or {}
            allowed = labels.get("deny") != "yes"
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {
                        "uid": request["uid"],
                        "allowed": allowed,
                        "status": {"code": 403, "message": "smoke webhook says no"},
                    },
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], calls
    server.shutdown()


def test_api_server_calls_a_validating_webhook_on_loopback(
    devenv: DevState,
    kube_admin: KubeAdmin,
    namespace: str,
    webhook_server: tuple[int, list[dict[str, Any]]],
) -> None:
    port, calls = webhook_server
    name = f"smoke-{namespace}"
    status, resp = kube_admin.request(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "smoke.vaultbridge.dev",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/validate",
                        "caBundle": base64.b64encode(
                            (devenv.pki_dir / "ca.crt").read_bytes()
                        ).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 5,
                }
            ],
        },
    )
    assert status == 201, resp
    try:
        # The configuration takes a moment to reach the API server's webhook cache.
        def denied() -> bool:
            code, body = kube_admin.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"generateName": "deny-", "labels": {"deny": "yes"}},
                },
            )
            return code == 403 and "smoke webhook says no" in body.get("message", "")

        assert _wait(denied, 30)
        code, _ = kube_admin.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "allowed"}},
        )
        assert code == 201
        assert any(c["name"] == "allowed" and c["namespace"] == namespace for c in calls)
    finally:
        kube_admin.request(
            "DELETE",
            f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}",
        )
