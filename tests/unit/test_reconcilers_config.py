"""The decisions of the configuration reconcilers (VaultConnection, VaultAuth,
VaultAuthGlobal, SecretTransformation) with the in-memory API server and Vault of
tests/fakes.py: what status and events they report, when they write nothing, and when they
retry. The fake API server also holds every status write to the kind's schema. The real
calls are covered by the integration tests.
"""

from __future__ import annotations

import copy
from typing import Any

from vaultbridge.api.examples import EXAMPLES
from vaultbridge.api.kinds import (
    SECRET_TRANSFORMATIONS,
    VAULT_AUTH_GLOBALS,
    VAULT_AUTHS,
    VAULT_CONNECTIONS,
)
from vaultbridge.controllers.auth import VaultAuthReconciler
from vaultbridge.controllers.auth_global import VaultAuthGlobalReconciler
from vaultbridge.controllers.connection import VaultConnectionReconciler
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.controllers.reasons import Reason
from vaultbridge.controllers.transformation import SecretTransformationReconciler
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.resources import Resource

from ..fakes import FakeTransport, FakeVault, Harness, make_ctx, reconciled

NS = "team-a"
KEY = ObjectKey(NS, "obj")


def _add(h: Harness, res: Resource, kind: str, **spec: Any) -> dict[str, Any]:
    """Cache an object of `kind` (its example spec, with `spec` overriding) in `res`."""
    h.listed(res)
    body = copy.deepcopy(EXAMPLES[kind]["spec"])
    body.update(spec)
    return h.cache(
        res,
        {
            "metadata": {"name": KEY.name, "namespace": NS, "generation": 1},
            "spec": body,
        },
    )


def _status(h: Harness, res: Resource) -> dict[str, Any]:
    obj = h.kube.stored(res, NS, KEY.name)
    assert obj is not None
    return dict(obj.get("status") or {})


def _ready(h: Harness, res: Resource) -> tuple[str, str]:
    cond = next(c for c in _status(h, res)["conditions"] if c["type"] == "Ready")
    return cond["status"], cond["reason"]


def _status_writes(h: Harness) -> int:
    return sum(1 for c in h.kube.calls if c[0] == "patch/status")


# -- SecretTransformation --------------------------------------------------------------------


async def test_transformation_valid_then_broken_then_unchanged() -> None:
    h = make_ctx()
    r = SecretTransformationReconciler(h.ctx)
    _add(h, SECRET_TRANSFORMATIONS, "SecretTransformation")
    assert (await reconciled(r, KEY)).requeue_after is None  # only an edit changes the answer
    assert _ready(h, SECRET_TRANSFORMATIONS) == ("True", "Valid")
    assert _status(h, SECRET_TRANSFORMATIONS)["valid"] is True
    assert h.events.reasons() == ["Valid"]

    obj = h.refresh(SECRET_TRANSFORMATIONS, KEY)
    obj["spec"]["templates"] = {"broken": {"text": "{{ secrets.username "}}
    obj["metadata"]["generation"] = 2
    h.cache(SECRET_TRANSFORMATIONS, obj)
    await reconciled(r, KEY)
    status = _status(h, SECRET_TRANSFORMATIONS)
    assert _ready(h, SECRET_TRANSFORMATIONS) == ("False", "TransformationError")
    assert status["valid"] is False and status["error"]
    assert h.events.events[-1][:2] == ("Warning", "TransformationError")

    # Nothing changed since: no status write, no second event.
    h.refresh(SECRET_TRANSFORMATIONS, KEY)
    writes, events = _status_writes(h), len(h.events.events)
    await reconciled(r, KEY)
    assert (_status_writes(h), len(h.events.events)) == (writes, events)


# -- VaultAuthGlobal --------------------------------------------------------------------------


async def test_auth_global_reports_its_spec_and_touches_nothing_else() -> None:
    h = make_ctx()
    r = VaultAuthGlobalReconciler(h.ctx)
    _add(h, VAULT_AUTH_GLOBALS, "VaultAuthGlobal")
    await reconciled(r, KEY)
    assert _ready(h, VAULT_AUTH_GLOBALS) == ("True", "Accepted")
    assert "error" not in _status(h, VAULT_AUTH_GLOBALS)

    # A spec an older CRD let through but the model refuses.
    _add(h, VAULT_AUTH_GLOBALS, "VaultAuthGlobal", allowedNamespaces=["*", "team-a"])
    await reconciled(r, KEY)
    assert _ready(h, VAULT_AUTH_GLOBALS) == ("False", Reason.INVALID_VAULT_AUTH_GLOBAL)
    assert "is invalid" in _status(h, VAULT_AUTH_GLOBALS)["error"]
    assert h.events.reasons() == ["Accepted", "InvalidVaultAuthGlobal"]
    assert h.vault.requests == []
    assert {c[1] for c in h.kube.writes()} == {VAULT_AUTH_GLOBALS.plural}


# -- VaultAuth --------------------------------------------------------------------------------


async def test_auth_login_succeeds_and_is_rechecked_later() -> None:
    h = make_ctx()
    r = VaultAuthReconciler(h.ctx, h.access)
    _add(h, VAULT_AUTHS, "VaultAuth")
    result = await reconciled(r, KEY)
    assert _ready(h, VAULT_AUTHS) == ("True", "LoginSucceeded")
    assert _status(h, VAULT_AUTHS)["valid"] is True
    assert h.vault.purged == [KEY]  # tokens of other generations are dropped first
    assert result.requeue_after is not None and result.requeue_after > 60


async def test_auth_failure_is_reported_and_retried_only_when_time_can_fix_it() -> None:
    h = make_ctx(
        FakeVault(problem=ReconcileProblem(Reason.VAULT_CONNECTION_NOT_FOUND, "no VaultConnection"))
    )
    r = VaultAuthReconciler(h.ctx, h.access)
    _add(h, VAULT_AUTHS, "VaultAuth")
    result = await reconciled(r, KEY)
    status = _status(h, VAULT_AUTHS)
    assert _ready(h, VAULT_AUTHS) == ("False", "VaultConnectionNotFound")
    assert (status["valid"], status["error"]) == (False, "no VaultConnection")
    assert h.events.events == [("Warning", "VaultConnectionNotFound", "no VaultConnection")]
    assert result.requeue_after is not None

    h.vault.problem = ReconcileProblem(Reason.INVALID_VAULT_AUTH, "bad", retry=False)
    h.refresh(VAULT_AUTHS, KEY)
    assert (await reconciled(r, KEY)).requeue_after is None
    assert len(h.events.events) == 1  # still invalid: no second event


async def test_auth_deleted_purges_its_tokens_and_writes_nothing() -> None:
    h = make_ctx()
    h.listed(VAULT_AUTHS)
    r = VaultAuthReconciler(h.ctx, h.access)
    assert (await reconciled(r, KEY)).requeue_after is None
    assert h.vault.purged == [KEY] and h.kube.writes() == []


# -- VaultConnection --------------------------------------------------------------------------


def _connection(transport: FakeTransport, vault: FakeVault | None = None) -> Harness:
    h = make_ctx(vault, transport=transport)
    _add(h, VAULT_CONNECTIONS, "VaultConnection")
    return h


async def test_connection_reports_an_unsealed_vault_and_its_version() -> None:
    transport = FakeTransport()
    h = _connection(transport)
    r = VaultConnectionReconciler(h.ctx, h.access)
    result = await reconciled(r, KEY)
    status = _status(h, VAULT_CONNECTIONS)
    assert _ready(h, VAULT_CONNECTIONS) == ("True", "Connected")
    assert (status["valid"], status["vaultVersion"], status["sealed"]) == (True, "2.0.0", False)
    assert transport.requests == ["GET http://vault.test:8200/v1/sys/health"]
    assert result.requeue_after is not None

    h.refresh(VAULT_CONNECTIONS, KEY)
    writes = _status_writes(h)
    await reconciled(r, KEY)
    assert _status_writes(h) == writes  # same answer: no status write
    assert h.events.reasons() == ["Connected"]


async def test_connection_sealed_vault_is_not_ready() -> None:
    transport = FakeTransport(health={"initialized": True, "sealed": True, "version": "2.0.0"})
    h = _connection(transport)
    await VaultConnectionReconciler(h.ctx, h.access).reconcile(KEY)
    assert _ready(h, VAULT_CONNECTIONS) == ("False", "VaultSealed")
    assert _status(h, VAULT_CONNECTIONS)["sealed"] is True
    assert h.events.events[0][:2] == ("Warning", "VaultSealed")


async def test_connection_settings_problem_reaches_no_vault() -> None:
    transport = FakeTransport()
    problem = ReconcileProblem(Reason.CA_CERT_SECRET_NOT_FOUND, "Secret team-a/vault-ca is missing")
    h = _connection(transport, FakeVault(problem=problem))
    await VaultConnectionReconciler(h.ctx, h.access).reconcile(KEY)
    assert _ready(h, VAULT_CONNECTIONS) == ("False", "CACertSecretNotFound")
    assert transport.requests == []
