"""Shared fixtures: one real dev environment per test session, one namespace per test.

The environment (etcd + kube-apiserver + kube-controller-manager + OpenBao) is started by
`vaultbridge.devenv` — or reused when `VAULTBRIDGE_DEV_HOME` points at a running one — and
stopped at the end of the session only if this session started it.

Tests default to their own state directory (`~/.cache/vaultbridge/test`), not the one
`make demo` uses: the demo leaves an operator running, and two operators reconciling the same
objects would make the tests fight it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from vaultbridge.devenv import environment
from vaultbridge.devenv.certs import ensure_pki
from vaultbridge.devenv.environment import DevState, stop_operator
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.paths import cache_root
from vaultbridge.devenv.vaultserver import (
    DEFAULT_SERVER,
    PRODUCT,
    expected_version,
    resolve_server,
)

from .vault_facing import INTEGRATION, mark_vault_facing

os.environ.setdefault("VAULTBRIDGE_DEV_HOME", str(cache_root() / "test"))


def _selected_server() -> str:
    """The Vault server this session asks for: `$VAULTBRIDGE_VAULT_SERVER`, else the one
    already running in `$VAULTBRIDGE_DEV_HOME`, else OpenBao (`environment.up` decides the
    same way)."""
    existing = environment.load_state()
    running = existing.vault_server if environment.is_running(existing) and existing else None
    return resolve_server(None, running)


def pytest_report_header(config: pytest.Config) -> str:
    server = _selected_server()
    return (
        f"vault server: {server} ({PRODUCT[server]} {expected_version(server)}); "
        f"dev environment {os.environ['VAULTBRIDGE_DEV_HOME']}"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: it selects on `vault_facing`
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the Vault-facing tests `vault_facing` (tests/vault_facing.py: the ones `make test`
    runs against HashiCorp Vault too), and name the Vault server in every test's report: a
    `vault_server` property (JUnit XML) and, for any server but the default OpenBao, a
    `[vault=<server>]` suffix on the test id, so a HashiCorp Vault session's passes and
    failures can never be mistaken for OpenBao's."""
    mark_vault_facing(items, under=INTEGRATION)
    server = _selected_server()
    for item in items:
        item.user_properties.append(("vault_server", server))
        if server != DEFAULT_SERVER:
            item._nodeid = f"{item.nodeid}[vault={server}]"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    state = environment.load_state()
    if state is not None and state.vault_version:
        terminalreporter.write_line(
            f"vault server: {state.vault_server} ({state.vault_product} {state.vault_version} "
            f"at {state.vault_addr})"
        )


@dataclass(frozen=True)
class VaultServer:
    addr: str
    root_token: str
    unseal_key: str | None
    server: str = DEFAULT_SERVER


@pytest.fixture(scope="session")
def devenv() -> Iterator[DevState]:
    existing = environment.load_state()
    reused = environment.is_running(existing)
    state = environment.up(log=lambda _m: None)
    if stop_operator(state):
        # Pointed at the demo's environment: its operator would race the tests' operators.
        print("stopped the `make demo` operator running in this environment")
    yield state
    if not reused and not os.environ.get("VAULTBRIDGE_KEEP_DEV"):
        environment.down(state)


@pytest.fixture(scope="session")
def vault_server(devenv: DevState) -> VaultServer:
    return VaultServer(
        devenv.vault_addr, devenv.vault_root_token, devenv.vault_unseal_key, devenv.vault_server
    )


@pytest.fixture(scope="session")
def kube_admin(devenv: DevState) -> KubeAdmin:
    """Synchronous cluster-admin client for test set-up that must not depend on our code."""
    return KubeAdmin(devenv.api_url, ensure_pki(devenv.pki_dir))


@pytest.fixture(scope="session")
async def kube(devenv: DevState) -> AsyncIterator[object]:
    from vaultbridge.kube.client import KubeClient
    from vaultbridge.kube.config import load_config

    client = await KubeClient.create(load_config(devenv.kubeconfig))
    yield client
    await client.close()


@pytest.fixture
def namespace(kube_admin: KubeAdmin) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    kube_admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    # Pods are never scheduled here, but ServiceAccount-based tests need `default`.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _ = kube_admin.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
        if status == 200:
            break
        time.sleep(0.1)
    # The operator requests tokens only of ServiceAccounts that opted in (docs/security.md).
    kube_admin.opt_in_vault_login(name)
    yield name
    kube_admin.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def crds_installed(kube_admin: KubeAdmin) -> None:
    from tests.integration.operator_harness import install_crds

    install_crds(kube_admin)
