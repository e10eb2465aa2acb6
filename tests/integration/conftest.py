"""Fixtures of the integration modules: the session operator and `app`, and every fixture that
more than one module uses (a test module never imports from another test module:
tests/unit/test_integration_imports.py). The helpers behind them are in the non-test modules
beside this one (helpers.py, operator_harness.py, *_support.py).

Scopes are those the fixtures had in their modules: a `module` fixture here is still one
instance per test module that uses it (one PostgreSQL, one inject operator, one TLS server
per module).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vaultbridge.devenv import processes
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.helm import ensure_helm
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.vaultserver import server_binary

from .deploy_support import Release
from .faults_support import OwnOperator
from .helpers import App, wait_for
from .inject_support import AGENT_IMAGE, MUTATING, VALIDATING, InjectOperator, Ns
from .operator_harness import (
    TEST_OPERATOR_LABEL,
    OperatorProcess,
    Postgres,
    ensure_operator_namespace,
    postgres_binaries,
    start_operator,
    start_postgres,
)
from .tls_support import TLSBao


@pytest.fixture(scope="session")
def operator(
    devenv: DevState, kube_admin: KubeAdmin, crds_installed: None
) -> Iterator[OperatorProcess]:
    """One operator process for the whole session, like one deployment serves a cluster."""
    ensure_operator_namespace(kube_admin, devenv)
    # Objects labelled vaultbridge.dev/test-operator belong to operators that a test starts
    # itself (tests/integration/test_deploy_*.py); the session operator leaves them alone.
    op = start_operator(devenv, "--resource-selector", f"!{TEST_OPERATOR_LABEL}")
    yield op
    rc = op.stop()
    assert rc == 0, f"operator exit code {rc} after SIGTERM:\n{op.log_tail()}"


@pytest.fixture
def app(devenv: DevState, kube_admin: KubeAdmin, namespace: str, operator: OperatorProcess) -> App:
    a = App(devenv, kube_admin, namespace)
    a.setup_auth()
    return a


# --- PostgreSQL for the database secrets engine (dynamic_support.DB) -------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL binaries missing: run scripts/ensure-postgres.sh")
    server = start_postgres()
    yield server
    server.stop()


# --- fault tests: no session operator, one of their own (faults_support) ----------------------


@pytest.fixture
def fault_app(devenv: DevState, kube_admin: KubeAdmin, crds_installed: None, namespace: str) -> App:
    """A namespace with its Vault role and VaultAuth, without starting any operator."""
    ensure_operator_namespace(kube_admin, devenv)
    a = App(devenv, kube_admin, namespace)
    a.setup_auth()
    return a


@pytest.fixture
def own_operator(devenv: DevState) -> Iterator[OwnOperator]:
    owner = OwnOperator(devenv)
    yield owner
    for op in owner.all:
        op.stop()


# --- the chart (deploy_support) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The pinned Helm, built from its Go module on first use and cached."""
    return str(ensure_helm(log=lambda _m: None))


@pytest.fixture
def release(
    helm_bin: str, devenv: DevState, kube_admin: KubeAdmin, namespace: str, crds_installed: None
) -> Iterator[Release]:
    rel = Release(helm_bin, devenv, kube_admin, namespace)
    yield rel
    rel.close()


# --- inject mode (inject_support) -------------------------------------------------------------


@pytest.fixture(scope="module")
def inject_op(
    devenv: DevState, kube_admin: KubeAdmin, operator: OperatorProcess
) -> Iterator[InjectOperator]:
    """An operator of its own (objects labelled with its id), serving both webhooks on
    127.0.0.1 and registering them itself. (`operator`: the session one made the operator
    namespace; it ignores labelled objects.)"""
    ident = secrets.token_hex(4)
    port = processes.free_port()
    validating, mutating = f"vb-inj-val-{ident}", f"vb-inj-mut-{ident}"
    op = OperatorProcess(
        devenv=devenv,
        log_path=Path(devenv.home) / "logs" / f"operator-inject-{ident}.log",
        metrics_port=processes.free_port(),
        health_port=processes.free_port(),
        extra_args=[
            "--resource-selector", f"{TEST_OPERATOR_LABEL}={ident}",
            "--hmac-key-secret", f"hmac-{ident}",
            "--webhook-bind-address", f"127.0.0.1:{port}",
            "--webhook-register-url", f"https://127.0.0.1:{port}",
            "--webhook-hosts", "127.0.0.1",
            "--webhook-ca-secret", f"webhook-ca-{ident}",
            "--webhook-config-name", validating,
            "--mutating-webhook-config-name", mutating,
            "--agent-image", AGENT_IMAGE,
        ],
    )  # fmt: skip
    op.start()
    try:
        yield InjectOperator(op, ident, validating, mutating)
    finally:
        op.stop()
        # The configurations first go: they must not outlive the server they point at.
        kube_admin.request("DELETE", f"{VALIDATING}/{validating}")
        kube_admin.request("DELETE", f"{MUTATING}/{mutating}")


@pytest.fixture
def space(devenv: DevState, kube_admin: KubeAdmin, namespace: str, inject_op: InjectOperator) -> Ns:
    return Ns(devenv, kube_admin, namespace, inject_op)


# --- a TLS Vault server of its own (tls_support) ----------------------------------------------


@pytest.fixture(scope="module")
def tls_bao(tmp_path_factory: pytest.TempPathFactory, devenv: DevState) -> Iterator[TLSBao]:
    """A private dev server of the session's kind (`bao`/`vault server -dev -dev-tls`): its own
    CA, a certificate for 127.0.0.1."""
    work = tmp_path_factory.mktemp("tls-bao")
    certs = work / "certs"
    certs.mkdir()
    port = processes.free_port()
    log = work / "bao.log"
    argv = [
        server_binary(devenv.vault_server), "server", "-dev", "-dev-root-token-id=tls-root",
        f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token",
        "-dev-tls", f"-dev-tls-cert-dir={certs}",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=out, cwd=work, env={"HOME": str(work), "PATH": "/usr/bin"}
        )
    try:
        wait_for(
            lambda: (
                (certs / "vault-ca.pem").exists()
                and re.search(r"Unseal Key:", log.read_text(errors="replace"))
            ),
            30,
            "the -dev-tls server",
        )
        server = TLSBao(
            f"https://127.0.0.1:{port}", "tls-root", (certs / "vault-ca.pem").read_bytes()
        )
        wait_for(lambda: server.call("GET", "sys/health").get("sealed") is False, 30, "unsealed")
        yield server
    finally:
        proc.terminate()
        proc.wait(10)
