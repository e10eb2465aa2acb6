"""The one condition rule (controllers/status.py) and status writes only on change."""

from __future__ import annotations

from typing import Any

from vaultbridge.api.conditions import HEALTHY, READY, SECRET_SYNCED
from vaultbridge.api.kinds import VAULT_STATIC_SECRET, VAULT_STATIC_SECRETS
from vaultbridge.controllers.status import (
    condition_reason,
    get_condition,
    patch_status_if_changed,
    set_condition,
)

from ..fakes import FakeKube

T0 = "2025-01-01T12:00:00Z"
T1 = "2025-01-01T13:00:00Z"


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = get_condition({"status": status}, type_)
    assert found is not None
    return found


def test_transition_time_moves_only_when_the_status_value_changes() -> None:
    status: dict[str, Any] = {}
    set_condition(status, SECRET_SYNCED, True, "Synced", "", 1, now=T0)
    set_condition(status, HEALTHY, True, "Healthy", "", None, now=T0)
    before = [dict(c) for c in status["conditions"]]

    set_condition(status, SECRET_SYNCED, True, "Synced", "", 1, now=T1)
    assert status["conditions"] == before  # re-asserted: nothing to write

    set_condition(status, SECRET_SYNCED, False, "VaultError", "permission denied", 1, now=T1)
    moved = _cond(status, SECRET_SYNCED)
    assert (moved["status"], moved["reason"], moved["lastTransitionTime"]) == (
        "False",
        "VaultError",
        T1,
    )
    # A new message or reason under the same value keeps the time.
    set_condition(status, SECRET_SYNCED, False, "VaultSealedOrUnavailable", "sealed", 2, now=T0)
    reworded = _cond(status, SECRET_SYNCED)
    assert reworded == {
        "type": SECRET_SYNCED,
        "status": "False",
        "reason": "VaultSealedOrUnavailable",
        "message": "sealed",
        "lastTransitionTime": T1,
        "observedGeneration": 2,
    }
    # One condition per type, sorted by type; the untouched one is as it was.
    assert [c["type"] for c in status["conditions"]] == [HEALTHY, SECRET_SYNCED]
    assert _cond(status, HEALTHY) == before[0]
    assert condition_reason(status, READY) is None


def test_unknown_and_long_messages() -> None:
    status: dict[str, Any] = {}
    set_condition(status, READY, None, "Pending", "x" * 5000, None, now=T0)
    ready = _cond(status, READY)
    assert ready["status"] == "Unknown" and len(ready["message"]) == 1024
    assert "observedGeneration" not in ready


async def test_status_is_written_only_when_it_changed() -> None:
    kube = FakeKube()
    obj = kube.put(VAULT_STATIC_SECRETS, {"metadata": {"name": "s", "namespace": "app"}})
    status: dict[str, Any] = {"lastGeneration": 1}
    set_condition(status, READY, True, "Ready", "synced", 1, now=T0)
    assert await patch_status_if_changed(kube, VAULT_STATIC_SECRETS, obj, status)
    stored = kube.stored(VAULT_STATIC_SECRETS, "app", "s")
    assert stored is not None and stored["status"] == status
    # The schema (the kind's status model) accepts what was written.
    assert VAULT_STATIC_SECRET.status_model.model_validate(stored["status"]).last_generation == 1

    calls = len(kube.calls)
    again = dict(stored["status"])
    set_condition(again, READY, True, "Ready", "synced", 1, now=T1)
    assert not await patch_status_if_changed(kube, VAULT_STATIC_SECRETS, stored, again)
    assert len(kube.calls) == calls

    # A field that is gone from the desired status is removed (merge patch null).
    assert await patch_status_if_changed(kube, VAULT_STATIC_SECRETS, stored, {"lastGeneration": 2})
    stored = kube.stored(VAULT_STATIC_SECRETS, "app", "s")
    assert stored is not None and stored["status"] == {"lastGeneration": 2}
