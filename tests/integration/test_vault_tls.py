"""TLS to Vault as the operator does it: VaultConnection.caCertSecretRef against a real
`bao server -dev -dev-tls` (or `vault server -dev -dev-tls` in a HashiCorp Vault session), a
wrong CA, a CA bundle that is not PEM, and skipTLSVerify.

tests/integration/test_vault_client.py proves the client's TLS handling; these prove the
operator wires it up: the CA comes from a Secret, failures become clear conditions and events,
and skipping verification is loud.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState

from .helpers import App, wait_for
from .operator_harness import OperatorProcess
from .tls_support import TLSBao

pytestmark = pytest.mark.integration


def _secret(app: App, name: str, data: dict[str, bytes]) -> None:
    status, resp = app.admin.request(
        "POST",
        f"/api/v1/namespaces/{app.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        },
    )
    assert status == 201, resp


def _connection(app: App, name: str, address: str, **spec: Any) -> None:
    app.create(
        "vaultconnections",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultConnection",
            "metadata": {"name": name},
            "spec": {"address": address, "timeout": "5s", **spec},
        },
    )


def _token_auth_and_vss(app: App, tls_bao: TLSBao, connection: str) -> None:
    """A VaultAuth (token method) on `connection` and a VaultStaticSecret that uses it."""
    if app.secret("tls-token") is None:
        _secret(app, "tls-token", {"token": tls_bao.root_token.encode()})
    app.create(
        "vaultauths",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultAuth",
            "metadata": {"name": connection},
            "spec": {
                "vaultConnectionRef": connection,
                "method": "token",
                "token": {"secretRef": "tls-token"},
            },
        },
    )
    app.vss(connection, vaultAuthRef=connection, path=f"{app.ns}/tls")


@pytest.mark.both_servers
def test_ca_from_the_connection_secret_trusts_the_tls_server(app: App, tls_bao: TLSBao) -> None:
    tls_bao.call("POST", f"secret/data/{app.ns}/tls", {"data": {"over": "tls"}})
    _secret(app, "vault-ca", {"ca.crt": tls_bao.ca_pem})
    _connection(app, "tls-ok", tls_bao.addr, caCertSecretRef="vault-ca")
    cond = app.wait_condition("tls-ok", "Ready", "True", "Connected", plural="vaultconnections")
    assert tls_bao.addr in cond["message"]
    _token_auth_and_vss(app, tls_bao, "tls-ok")
    app.wait_condition("tls-ok", "Ready", "True", plural="vaultauths")
    app.wait_data("tls-ok", {"over": "tls"})


@pytest.mark.both_servers
def test_wrong_ca_is_a_clear_condition_and_nothing_is_written(
    app: App, tls_bao: TLSBao, devenv: DevState
) -> None:
    # A perfectly good PEM CA, just not the one that signed Vault's certificate.
    _secret(app, "other-ca", {"ca.crt": (devenv.pki_dir / "ca.crt").read_bytes()})
    _connection(app, "tls-wrong", tls_bao.addr, caCertSecretRef="other-ca")
    cond = app.wait_condition("tls-wrong", "Ready", "False", "TLSError", plural="vaultconnections")
    assert "certificate" in cond["message"].lower() and tls_bao.addr in cond["message"]
    app.wait_event("tls-wrong", "TLSError")
    _token_auth_and_vss(app, tls_bao, "tls-wrong")
    cond = app.wait_condition("tls-wrong", "SecretSynced", "False", "VaultLoginFailed")
    assert "TLS" in cond["message"] or "certificate" in cond["message"], cond
    assert app.secret("tls-wrong") is None


@pytest.mark.parametrize(
    "bundle",
    [b"this is not a certificate", b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00\xff\xfe"],
    ids=["text", "der-bytes"],
)
def test_ca_bundle_that_is_not_pem_is_reported(app: App, tls_bao: TLSBao, bundle: bytes) -> None:
    _secret(app, "junk-ca", {"ca.crt": bundle})
    _connection(app, "tls-junk", tls_bao.addr, caCertSecretRef="junk-ca")
    cond = app.wait_condition("tls-junk", "Ready", "False", plural="vaultconnections")
    assert "CA certificate" in cond["message"], cond


def test_missing_ca_secret_is_reported(app: App, tls_bao: TLSBao) -> None:
    _connection(app, "tls-noca", tls_bao.addr, caCertSecretRef="not-there")
    cond = app.wait_condition(
        "tls-noca", "Ready", "False", "CACertSecretNotFound", plural="vaultconnections"
    )
    assert "not-there" in cond["message"]


def test_skip_tls_verify_connects_and_warns(
    app: App, tls_bao: TLSBao, operator: OperatorProcess
) -> None:
    tls_bao.call("POST", f"secret/data/{app.ns}/tls", {"data": {"over": "tls"}})
    _connection(app, "tls-skip", tls_bao.addr, skipTLSVerify=True)
    app.wait_condition("tls-skip", "Ready", "True", "Connected", plural="vaultconnections")
    event = app.wait_event("tls-skip", "InsecureSkipTLSVerify")
    assert event["type"] == "Warning" and "not verified" in event["message"]
    wanted = f"VaultConnection {app.ns}/tls-skip: skipTLSVerify is true"

    def warned() -> bool:
        return any(
            '"level": "warning"' in line and wanted in line
            for line in operator.log_text().splitlines()
        )

    wait_for(warned, 10, "a warning about skipTLSVerify in the operator log")
    _token_auth_and_vss(app, tls_bao, "tls-skip")
    app.wait_data("tls-skip", {"over": "tls"})
