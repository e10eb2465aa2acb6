"""The controller half of issue #20, decided once in the shared delivery flow: throttling is
not a failure, a denied path is named, finalizers always end, drift repair never fights.
In-memory API server and Vault (tests/fakes.py); the real servers are in the integration
tests."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from vaultbridge.api.kinds import VAULT_DYNAMIC_SECRETS, VAULT_PKI_SECRETS, VAULT_STATIC_SECRETS
from vaultbridge.controllers import vault_call
from vaultbridge.controllers.drift_guard import DriftGuard, last_other_manager
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.resources import SECRETS, Resource
from vaultbridge.observability import metrics
from vaultbridge.vault.errors import (
    InvalidRequest,
    PermissionDenied,
    SealedOrUnavailable,
    VaultThrottled,
)

from ..fakes import FakeVault, Harness, make_ctx, reconciled, response
from .test_reconcilers import DYNAMIC, KEY, NS, PKI, STATIC, _cert, _condition, _obj, _static

# -- throttling ------------------------------------------------------------------------------


async def test_throttled_requeues_without_condition_or_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vault_call, "THROTTLE_ROUNDS", 0)  # call_vault's own short retries
    h, r = _static()
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_STATIC_SECRETS, KEY)
    before = h.kube.stored(VAULT_STATIC_SECRETS, NS, KEY.name)
    events = list(h.events.events)
    h.vault.error = VaultThrottled("rate limited by Vault", status=429, retry_after=7.0)
    obj = h.refresh(VAULT_STATIC_SECRETS, KEY)
    obj["metadata"]["generation"] = 2  # something to fetch
    h.cache(VAULT_STATIC_SECRETS, obj)
    status_before = (before or {}).get("status")
    result = await reconciled(r, KEY)
    assert result.requeue_after == 7.0
    assert h.events.events == events  # no Warning event
    stored = h.kube.stored(VAULT_STATIC_SECRETS, NS, KEY.name)
    assert stored is not None and stored.get("status") == status_before  # no condition change

    h.vault.error = VaultThrottled("rate limited by Vault", status=429)  # no Retry-After
    result = await reconciled(r, KEY)
    assert result.requeue_after is not None and 0.5 <= result.requeue_after <= 1.5
    assert h.events.events == events


# -- permission denied -----------------------------------------------------------------------


async def test_denied_names_path_and_capability_and_retries_on_backoff() -> None:
    h, r = _static()
    h.vault.error = PermissionDenied(
        "permission denied", status=403, path="secret/data/app", capability="read"
    )
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    result = await reconciled(r, KEY)
    synced = _condition(h, VAULT_STATIC_SECRETS, "SecretSynced")
    assert synced["reason"] == "VaultPermissionDenied"
    assert "'read'" in synced["message"] and "'secret/data/app'" in synced["message"]
    assert result.requeue_after is not None and result.requeue_after > 0


# -- finalizers ------------------------------------------------------------------------------


def _ago(seconds: float) -> str:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _released(h: Harness, res: Resource) -> bool:
    stored = h.kube.stored(res, NS, KEY.name)
    return stored is not None and not stored["metadata"].get("finalizers")


async def _deleting_dynamic(error: Exception, deleted_ago: float) -> Harness:
    from vaultbridge.controllers.dynamic_secret import VaultDynamicSecretReconciler

    vault = FakeVault(
        responses=[response({"username": "u1"}, lease_id="database/creds/app/1", duration=600)]
    )
    h = make_ctx(vault)
    r = VaultDynamicSecretReconciler(h.ctx, h.access)
    h.cache(VAULT_DYNAMIC_SECRETS, _obj(VAULT_DYNAMIC_SECRETS, {**DYNAMIC, "revoke": True}))
    await reconciled(r, KEY)
    obj = h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    assert obj["metadata"]["finalizers"] == ["vaultbridge.dev/revoke-lease"]
    obj["metadata"]["deletionTimestamp"] = _ago(deleted_ago)
    h.cache(VAULT_DYNAMIC_SECRETS, obj)
    h.vault.error = error  # type: ignore[assignment]
    h.result = await reconciled(r, KEY)  # type: ignore[attr-defined]
    return h


def _released_count(kind: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "vaultbridge_finalizers_released_without_revocation_total",
        {"kind": kind, "reason": reason},
    )
    return value or 0.0


async def test_finalizer_released_at_once_when_revoke_is_denied() -> None:
    before = _released_count("VaultDynamicSecret", "permission_denied")
    denied = PermissionDenied(
        "permission denied", status=403, path="sys/leases/revoke/x", capability="update"
    )
    h = await _deleting_dynamic(denied, deleted_ago=1)
    assert _released(h, VAULT_DYNAMIC_SECRETS)
    warnings = [(r, m) for t, r, m in h.events.events if t == "Warning"]
    assert [r for r, _ in warnings] == ["LeaseLeftToExpire"]
    assert "database/creds/app/1" in warnings[0][1] and "TTL" in warnings[0][1]
    assert _released_count("VaultDynamicSecret", "permission_denied") == before + 1


async def test_finalizer_released_quietly_when_the_lease_is_unknown() -> None:
    h = await _deleting_dynamic(InvalidRequest("invalid lease ID", status=400), deleted_ago=1)
    assert _released(h, VAULT_DYNAMIC_SECRETS)
    assert "LeaseLeftToExpire" not in h.events.reasons()


async def test_finalizer_retries_transient_errors_until_the_timeout() -> None:
    sealed = SealedOrUnavailable("Vault is sealed", status=503)
    h = await _deleting_dynamic(sealed, deleted_ago=10)
    assert not _released(h, VAULT_DYNAMIC_SECRETS)
    assert h.events.reasons()[-1] == "LeaseRevokeFailed"
    assert h.result.requeue_after is not None  # type: ignore[attr-defined]
    assert 0 < h.result.requeue_after <= 290  # type: ignore[attr-defined]

    before = _released_count("VaultDynamicSecret", "timeout")
    h = await _deleting_dynamic(sealed, deleted_ago=301)  # past --finalizer-timeout (300 s)
    assert _released(h, VAULT_DYNAMIC_SECRETS)
    assert h.events.reasons()[-1] == "LeaseLeftToExpire"
    assert _released_count("VaultDynamicSecret", "timeout") == before + 1


async def test_pki_finalizer_follows_the_same_rule() -> None:
    from vaultbridge.controllers.pki_secret import VaultPKISecretReconciler

    h = make_ctx(FakeVault(responses=[response(_cert("01"))]))
    r = VaultPKISecretReconciler(h.ctx, h.access)
    h.cache(VAULT_PKI_SECRETS, _obj(VAULT_PKI_SECRETS, {**PKI, "revoke": True}))
    await reconciled(r, KEY)
    obj = h.refresh(VAULT_PKI_SECRETS, KEY)
    obj["metadata"]["deletionTimestamp"] = _ago(1)
    h.cache(VAULT_PKI_SECRETS, obj)
    h.vault.error = PermissionDenied("denied", status=403, path="pki/revoke", capability="update")
    await reconciled(r, KEY)
    assert _released(h, VAULT_PKI_SECRETS)
    assert h.events.reasons()[-1] == "LeaseLeftToExpire"


# -- drift -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tamper(h: Harness, manager: str, value: bytes) -> None:
    secret = h.kube.stored(SECRETS, NS, "app-secret")
    assert secret is not None
    secret["data"]["password"] = base64.b64encode(value).decode()
    secret["metadata"]["resourceVersion"] = str(int(secret["metadata"]["resourceVersion"]) + 1000)
    secret["metadata"]["managedFields"] = [
        {"manager": "vaultbridge", "time": "2026-01-01T00:00:00Z"},
        {"manager": "old-tool", "time": "2026-01-01T00:00:01Z"},
        {"manager": manager, "time": "2026-01-01T00:00:02Z"},
    ]


def _secret_writes(h: Harness) -> int:
    return len([c for c in h.kube.writes() if c[1] == "secrets"])


async def test_drift_conflict_after_n_repairs_then_resume_on_spec_change() -> None:
    h, r = _static()
    clock = Clock()
    r.drift.guard = DriftGuard(limit=3, window=60.0, quiet=60.0, clock=clock)
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_STATIC_SECRETS, KEY)
    first = _secret_writes(h)
    for i in range(3):  # three repairs are allowed
        _tamper(h, "other-controller", b"x%d" % i)
        clock.now += 1
        await reconciled(r, KEY)
        h.refresh(VAULT_STATIC_SECRETS, KEY)
    assert _secret_writes(h) == first + 3
    for i in range(10):  # the fight goes on: no more writes
        _tamper(h, "other-controller", b"y%d" % i)
        clock.now += 1
        result = await reconciled(r, KEY)
        h.refresh(VAULT_STATIC_SECRETS, KEY)
    assert _secret_writes(h) == first + 3
    synced = _condition(h, VAULT_STATIC_SECRETS, "SecretSynced")
    assert synced["reason"] == "DriftConflict"
    assert "'other-controller'" in synced["message"]
    assert h.events.reasons().count("DriftConflict") == 1  # once, not per retry
    assert result.requeue_after is not None and result.requeue_after <= 60.0

    obj = h.refresh(VAULT_STATIC_SECRETS, KEY)
    obj["metadata"]["generation"] = 2  # the user edits the spec: repairs resume
    h.cache(VAULT_STATIC_SECRETS, obj)
    await reconciled(r, KEY)
    assert _secret_writes(h) == first + 4
    assert _condition(h, VAULT_STATIC_SECRETS, "SecretSynced")["status"] == "True"


async def test_drift_repairs_resume_when_the_other_writer_stops() -> None:
    h, r = _static()
    clock = Clock()
    r.drift.guard = DriftGuard(limit=2, window=60.0, quiet=30.0, clock=clock)
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_STATIC_SECRETS, KEY)
    for i in range(3):
        _tamper(h, "kubectl-edit", b"x%d" % i)
        await reconciled(r, KEY)
        h.refresh(VAULT_STATIC_SECRETS, KEY)
    assert _condition(h, VAULT_STATIC_SECRETS, "SecretSynced")["reason"] == "DriftConflict"
    writes = _secret_writes(h)
    clock.now += 10
    await reconciled(r, KEY)  # unchanged for 10 s only: still held
    assert _secret_writes(h) == writes
    clock.now += 25
    await reconciled(r, KEY)  # unchanged for 35 s: repaired
    assert _secret_writes(h) == writes + 1
    assert _condition(h, VAULT_STATIC_SECRETS, "SecretSynced")["status"] == "True"


async def test_dynamic_drift_conflict_issues_no_new_credentials() -> None:
    from vaultbridge.controllers.dynamic_secret import VaultDynamicSecretReconciler

    vault = FakeVault(responses=[response({"password": "p"}, lease_id="l", duration=3600)])
    h = make_ctx(vault)
    r = VaultDynamicSecretReconciler(h.ctx, h.access)
    r.drift.guard = DriftGuard(limit=2, clock=Clock())
    h.cache(VAULT_DYNAMIC_SECRETS, _obj(VAULT_DYNAMIC_SECRETS, DYNAMIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    for i in range(6):
        _tamper(h, "tool", b"x%d" % i)
        await reconciled(r, KEY)
        h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    assert len(h.vault.requests) == 3  # the first issue and two repairs
    assert _condition(h, VAULT_DYNAMIC_SECRETS, "SecretSynced")["reason"] == "DriftConflict"
    assert "'tool'" in _condition(h, VAULT_DYNAMIC_SECRETS, "Ready")["message"]
    assert h.events.reasons().count("DriftConflict") == 1


def test_last_other_manager() -> None:
    secret: dict[str, Any] = {
        "metadata": {
            "managedFields": [
                {"manager": "b", "time": "2026-01-01T00:00:05Z"},
                {"manager": "vaultbridge", "time": "2026-01-01T00:00:09Z"},
                {"manager": "a", "time": "2026-01-01T00:00:01Z"},
            ]
        }
    }
    assert last_other_manager(secret) == "b"
    assert last_other_manager({"metadata": {}}) == "unknown"
    assert last_other_manager(None) == "unknown"


def test_guard_counts_within_the_window_only() -> None:
    clock = Clock()
    g = DriftGuard(limit=2, window=10.0, clock=clock)
    key = ObjectKey("ns", "o")
    for _ in range(5):  # one repair every 6 s: at most 2 within any 10 s, never held
        assert g.check(key, 1, "rv").repair
        g.repaired(key)
        clock.now += 6
    assert g.check(key, 1, "rv").repair
    g.repaired(key)
    clock.now += 1
    assert not g.check(key, 1, "rv2").repair
