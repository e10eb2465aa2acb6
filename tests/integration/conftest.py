"""Fixtures for tests that drive the real operator process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App
from .operator_harness import (
    TEST_OPERATOR_LABEL,
    OperatorProcess,
    ensure_operator_namespace,
    start_operator,
)


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
