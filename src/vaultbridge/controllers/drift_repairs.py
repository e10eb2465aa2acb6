"""Drift repairs of one reconciler: the `DriftGuard` rule applied, and who the other writer is.

`drift_guard.py` holds the pure rule (how many repairs within which window); this is its use
by a reconciler: the verdict for one object, a `DriftConflict` problem naming the other field
manager (one API read per conflict, not per event of the fight: the informer drops
managedFields), and the repair metric.
"""

from __future__ import annotations

import contextlib
from typing import Any

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.observability import metrics

from . import live_secret
from .context import OperatorContext
from .drift_guard import DriftGuard, last_other_manager
from .errors import ReconcileProblem
from .reasons import Reason


class DriftRepairs:
    def __init__(self, ctx: OperatorContext, kind: str) -> None:
        self.ctx = ctx
        self.kind = kind
        self.guard = DriftGuard()
        self._managers: dict[ObjectKey, str] = {}

    def forget(self, key: ObjectKey) -> None:
        self.guard.forget(key)
        self._managers.pop(key, None)

    def repaired(self, key: ObjectKey) -> None:
        self.guard.repaired(key)
        metrics.DRIFT_REPAIRS.labels(self.kind, key.namespace, key.name).inc()

    async def conflict(
        self, key: ObjectKey, generation: int, dest_name: str, live: dict[str, Any] | None
    ) -> ReconcileProblem | None:
        """The `DriftConflict` to report instead of a repair, None when the repair may go."""
        verdict = self.guard.check(
            key, generation, objects.resource_version(live) if live is not None else ""
        )
        if verdict.repair:
            return None
        manager = self._managers.get(key)
        if verdict.started or manager is None:
            fresh = live
            if live is not None and "managedFields" not in objects.meta(live):
                with contextlib.suppress(ReconcileProblem):
                    fresh = await live_secret.read_fresh(self.ctx, key.namespace, dest_name)
            manager = self._managers[key] = last_other_manager(fresh)
        guard = self.guard
        return ReconcileProblem(
            Reason.DRIFT_CONFLICT,
            f"Secret {dest_name} keeps being changed by field manager {manager!r}; "
            f"stopped repairing it after {guard.limit} repairs within {guard.window:g}s. "
            f"Repairs resume when the spec changes or the Secret stays unchanged for "
            f"{guard.quiet:g}s",
            retry_after=verdict.wait,
            repeat_event=False,
        )
