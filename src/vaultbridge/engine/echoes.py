"""Our own writes coming back as watch events: recognised, so they cost no reconcile.

A controller that writes an object it also watches (the owned Secret) receives its own write
back as a MODIFIED event. Reconciling the owner for it is pure waste: the owner would fetch its
source again (a Vault read) only to find the object as it just wrote it. Measured on instant
updates: each Vault change cost two reads per object, the second one for the echo, arriving
tens of milliseconds to seconds after the write on a loaded machine.

Guarantees:
- An event is an echo only if the object's **content fingerprint** equals the one the
  controller announced with `expect()` **before** sending the write. Content, not
  resourceVersion: the watch event may be processed before the write's response returns, and
  a content match holds whichever comes first.
- Anything else is not an echo: a change by another writer (drift), a DELETED event, an object
  whose labels or annotations changed (metadata drift is drift too), an object no write was
  announced for. False negatives cost one reconcile (today's behaviour); false positives are
  impossible short of someone else writing exactly the content we wrote, which needs no repair.
- Bounded memory: one fingerprint per written object, dropped on its DELETED event and by
  `forget()` when the owner goes.

Generic: the fingerprint function is the caller's (for Secrets: a digest of `data`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .keys import ObjectKey

Obj = dict[str, Any]


class OwnWrites:
    def __init__(self, fingerprint: Callable[[Obj], str]) -> None:
        self._fingerprint = fingerprint
        self._expected: dict[ObjectKey, str] = {}

    def __len__(self) -> int:
        return len(self._expected)

    def expect(self, key: ObjectKey, fingerprint: str) -> None:
        """About to write `key` with this content: its event is ours."""
        self._expected[key] = fingerprint

    def forget(self, key: ObjectKey) -> None:
        self._expected.pop(key, None)

    def is_echo(self, event: str, old: Obj | None, new: Obj) -> bool:
        key = ObjectKey.of(new)
        if event == "DELETED":
            self._expected.pop(key, None)
            return False
        expected = self._expected.get(key)
        if expected is None:
            return False
        if event == "MODIFIED" and old is not None and _meta(old) != _meta(new):
            return False
        return self._fingerprint(new) == expected


def _meta(obj: Obj) -> tuple[Any, Any]:
    meta = obj.get("metadata") or {}
    return meta.get("labels") or {}, meta.get("annotations") or {}
