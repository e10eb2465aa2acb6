"""VaultConnection, VaultAuth and SecretTransformation status, driven by the real operator."""

from __future__ import annotations

import base64

import pytest

from vaultbridge.devenv import processes
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App
from .operator_harness import OperatorProcess

pytestmark = pytest.mark.integration


def _connection(app: App, name: str, address: str, **spec: object) -> None:
    app.create(
        "vaultconnections",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultConnection",
            "metadata": {"name": name},
            "spec": {"address": address, "timeout": "2s", **spec},
        },
    )


def _auth(app: App, name: str, spec: dict[str, object]) -> None:
    app.create(
        "vaultauths",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultAuth",
            "metadata": {"name": name},
            "spec": {"vaultConnectionRef": "conn", **spec},
        },
    )


def _secret(app: App, name: str, data: dict[str, str]) -> None:
    status, resp = app.admin.request(
        "POST",
        f"/api/v1/namespaces/{app.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )
    assert status == 201, resp


def test_connection_valid_and_unreachable(app: App, devenv: DevState) -> None:
    _connection(app, "conn", devenv.vault_addr)
    cond = app.wait_condition("conn", "Ready", "True", "Connected", plural="vaultconnections")
    assert "unsealed" in cond["message"]
    status = app.get("vaultconnections", "conn")["status"]  # type: ignore[index]
    assert status["valid"] is True and status["vaultVersion"] and status["sealed"] is False

    closed = processes.free_port()
    _connection(app, "closed", f"http://127.0.0.1:{closed}")
    cond = app.wait_condition(
        "closed", "Ready", "False", "VaultUnreachable", plural="vaultconnections"
    )
    assert str(closed) in cond["message"]
    assert app.get("vaultconnections", "closed")["status"]["valid"] is False  # type: ignore[index]
    app.wait_event("closed", "VaultUnreachable")

    _connection(app, "tls", devenv.vault_addr.replace("http://", "https://"))
    cond = app.wait_condition("tls", "Ready", "False", plural="vaultconnections")
    assert cond["reason"] in ("TLSError", "VaultUnreachable")


@pytest.mark.both_servers
def test_every_auth_method_logs_in_and_bad_ones_are_invalid(
    app: App, devenv: DevState, operator: OperatorProcess
) -> None:
    _connection(app, "conn", devenv.vault_addr)
    bao = app.vault.bao
    # kubernetes: the role set up by the app fixture.
    _auth(
        app,
        "k8s",
        {
            "method": "kubernetes",
            "kubernetes": {"role": app.vault.role, "serviceAccount": "default"},
        },
    )
    # jwt: OpenBao's JWT auth validates the API server's service-account tokens offline.
    bao.must(
        "POST",
        f"auth/jwt/role/{app.ns}",
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["vault"],
            "bound_subject": f"system:serviceaccount:{app.ns}:default",
            "token_ttl": "10m",
        },
    )
    _auth(
        app,
        "jwt",
        {
            "method": "jwt",
            "jwt": {"role": app.ns, "serviceAccount": "default", "audiences": ["vault"]},
        },
    )
    # appRole
    if bao.call("GET", "sys/auth")[1].get("data", {}).get("approle/") is None:
        bao.call("POST", "sys/auth/approle", {"type": "approle"})
    bao.must("POST", f"auth/approle/role/{app.ns}", {"token_ttl": "10m"})
    role_id = bao.must("GET", f"auth/approle/role/{app.ns}/role-id")["data"]["role_id"]
    secret_id = bao.must("POST", f"auth/approle/role/{app.ns}/secret-id")["data"]["secret_id"]
    _secret(app, "approle", {"id": secret_id})
    _auth(
        app,
        "approle",
        {"method": "appRole", "appRole": {"roleId": role_id, "secretRef": "approle"}},
    )
    # token
    token = bao.must("POST", "auth/token/create", {"policies": ["default"], "ttl": "10m"})
    _secret(app, "vtoken", {"token": token["auth"]["client_token"]})
    _auth(app, "token", {"method": "token", "token": {"secretRef": "vtoken"}})

    for name in ("k8s", "jwt", "approle", "token"):
        cond = app.wait_condition(name, "Ready", "True", "LoginSucceeded", plural="vaultauths")
        assert app.get("vaultauths", name)["status"]["valid"] is True, (name, cond)  # type: ignore[index]

    _auth(
        app,
        "wrong-role",
        {
            "method": "kubernetes",
            "kubernetes": {"role": "no-such-role", "serviceAccount": "default"},
        },
    )
    cond = app.wait_condition(
        "wrong-role", "Ready", "False", "VaultLoginFailed", plural="vaultauths"
    )
    status = app.get("vaultauths", "wrong-role")["status"]  # type: ignore[index]
    assert status["valid"] is False and "no-such-role" in status["error"]
    _auth(
        app,
        "no-sa",
        {"method": "kubernetes", "kubernetes": {"role": app.vault.role, "serviceAccount": "ghost"}},
    )
    app.wait_condition("no-sa", "Ready", "False", "ServiceAccountNotFound", plural="vaultauths")
    _auth(
        app,
        "no-conn",
        {"method": "token", "vaultConnectionRef": "missing", "token": {"secretRef": "vtoken"}},
    )
    app.wait_condition("no-conn", "Ready", "False", "VaultConnectionNotFound", plural="vaultauths")
    # Neither the Vault token nor the secret-id ever appears in a status.
    for name in ("approle", "token", "wrong-role"):
        text = str(app.get("vaultauths", name))
        assert secret_id not in text and token["auth"]["client_token"] not in text


def test_transformation_status_reports_bad_regex_and_template(
    app: App, kube_admin: KubeAdmin
) -> None:
    app.create(
        "secrettransformations",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "SecretTransformation",
            "metadata": {"name": "good"},
            "spec": {"templates": {"x": {"text": "{{ 1 + 1 }}"}}},
        },
    )
    app.create(
        "secrettransformations",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "SecretTransformation",
            "metadata": {"name": "bad-regex"},
            "spec": {"includes": ["(unclosed"]},
        },
    )
    app.create(
        "secrettransformations",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "SecretTransformation",
            "metadata": {"name": "bad-template"},
            "spec": {"templates": {"x": {"text": "{% if %}"}}},
        },
    )
    app.wait_condition("good", "Ready", "True", plural="secrettransformations")
    for name in ("bad-regex", "bad-template"):
        app.wait_condition(
            name, "Ready", "False", "TransformationError", plural="secrettransformations"
        )
        status = app.get("secrettransformations", name)["status"]  # type: ignore[index]
        assert status["valid"] is False and status["error"]
