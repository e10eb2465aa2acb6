"""Drift repair that never fights another writer of the destination Secret.

A repair is a rewrite of a destination Secret whose data or labels drifted from what we wrote
(`destination.plan` cause `drift`, or a held lease's Secret found changed). When someone else
keeps changing the Secret (another controller, a tool adding a key), repairing on every watch
event is an endless write loop against the API server. The rule, per object:

- at most `limit` repairs within `window` seconds; the next drift within the window is not
  repaired: the object reports `DriftConflict`, naming the field manager that last changed the
  Secret (from `metadata.managedFields`, the most recent manager that is not ours);
- repairs resume when the spec changes (a new `metadata.generation`: the user acted), or when
  the other writer has stopped: the Secret's resourceVersion stayed the same for `quiet`
  seconds (each watch event of a new resourceVersion restarts that wait);
- the object is forgotten when it is deleted.

Counted, not timed: the clock is injectable, so unit tests step it by hand. Process memory only:
after a restart an object may be repaired `limit` more times before it is held again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.client import FIELD_MANAGER


@dataclass
class _Track:
    generation: int
    repairs: deque[float] = field(default_factory=deque)
    held: bool = False
    resource_version: str = ""
    unchanged_since: float = 0.0


@dataclass(frozen=True)
class Verdict:
    repair: bool
    wait: float = 0.0
    """Held: seconds until the quiet window could end (the object is looked at again then)."""
    started: bool = False
    """Held from this check on (the first refusal: the moment to tell the user)."""


class DriftGuard:
    def __init__(
        self,
        limit: int = 3,
        window: float = 60.0,
        quiet: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.quiet = quiet
        self._clock = clock
        self._tracks: dict[ObjectKey, _Track] = {}

    def check(self, key: ObjectKey, generation: int, resource_version: str) -> Verdict:
        """May the drifted Secret (at `resource_version`) of `key` be repaired now?"""
        now = self._clock()
        track = self._tracks.get(key)
        if track is None or track.generation != generation:
            # First drift, or the spec changed: start counting afresh.
            track = self._tracks[key] = _Track(generation)
        if track.held:
            if resource_version != track.resource_version:
                # The other writer is still at it: restart the quiet wait.
                track.resource_version = resource_version
                track.unchanged_since = now
                return Verdict(False, self.quiet)
            if now - track.unchanged_since < self.quiet:
                return Verdict(False, self.quiet - (now - track.unchanged_since))
            # The other writer stopped: repair again, with a fresh count.
            track.held = False
            track.repairs.clear()
        while track.repairs and now - track.repairs[0] >= self.window:
            track.repairs.popleft()
        if len(track.repairs) >= self.limit:
            track.held = True
            track.resource_version = resource_version
            track.unchanged_since = now
            return Verdict(False, self.quiet, started=True)
        return Verdict(True)

    def repaired(self, key: ObjectKey) -> None:
        """Count one repair (call after the write)."""
        track = self._tracks.get(key)
        if track is not None:
            track.repairs.append(self._clock())

    def is_held(self, key: ObjectKey) -> bool:
        track = self._tracks.get(key)
        return track is not None and track.held

    def forget(self, key: ObjectKey) -> None:
        self._tracks.pop(key, None)


def last_other_manager(secret: Mapping[str, Any] | None, ours: str = FIELD_MANAGER) -> str:
    """The field manager that most recently changed `secret` and is not us ("unknown" if the
    Secret records none)."""
    meta = (secret or {}).get("metadata") or {}
    entries = meta.get("managedFields") or []
    best: tuple[str, str] | None = None
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        manager = str(entry.get("manager") or "")
        if not manager or manager == ours:
            continue
        stamp = str(entry.get("time") or "")  # RFC 3339 in UTC: compares as text
        if best is None or stamp >= best[0]:
            best = (stamp, manager)
    return best[1] if best is not None else "unknown"
