"""--min-refresh-after: the clamp, and how the object is told (condition, event once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from vaultbridge.controllers.context import OperatorContext
from vaultbridge.controllers.refresh import CONDITION, effective_refresh
from vaultbridge.settings import Settings


@dataclass
class Events:
    emitted: list[tuple[str, str, str]] = field(default_factory=list)

    def emit(self, _obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.emitted.append((type_, reason, message))


@dataclass
class Ctx:
    settings: Settings
    events: Events = field(default_factory=Events)


OBJ: dict[str, Any] = {"metadata": {"name": "db", "namespace": "team-a", "generation": 3}}


def ctx(minimum: float) -> tuple[OperatorContext, Events]:
    c = Ctx(Settings(min_refresh_after=minimum))
    return cast(OperatorContext, c), c.events


def cond(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == CONDITION), None)


def test_allowed_interval_is_kept_and_reports_nothing() -> None:
    c, events = ctx(1.0)
    status: dict[str, Any] = {}
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, 2.0) == 2.0
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, 1.0) == 1.0
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, None) is None
    assert cond(status) is None and events.emitted == []


def test_short_interval_is_raised_and_reported_once() -> None:
    c, events = ctx(1.0)
    status: dict[str, Any] = {}
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, 0.2) == 1.0
    condition = cond(status)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "BelowMinimum")
    assert "200ms" in condition["message"] and "1s" in condition["message"]
    assert condition["observedGeneration"] == 3
    assert [(t, r) for t, r, _ in events.emitted] == [("Warning", CONDITION)]
    # The next reconcile starts from the patched status: no second event.
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, 0.2) == 1.0
    assert len(events.emitted) == 1


def test_condition_goes_away_when_the_object_asks_for_an_allowed_interval() -> None:
    c, _events = ctx(1.0)
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True"}]}
    effective_refresh(c, "VaultStaticSecret", OBJ, status, 0.5)
    assert cond(status) is not None
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, 5.0) == 5.0
    assert cond(status) is None
    assert [x["type"] for x in status["conditions"]] == ["Ready"]


def test_zero_minimum_disables_the_clamp() -> None:
    c, events = ctx(0.0)
    status: dict[str, Any] = {}
    assert effective_refresh(c, "VaultStaticSecret", OBJ, status, 0.1) == 0.1
    assert cond(status) is None and events.emitted == []
