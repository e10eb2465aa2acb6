"""Kubernetes Events for the objects the operator reconciles.

Events are a courtesy to humans (``kubectl describe``), never a dependency: emitting one
never raises into the caller and never waits for the API server. Repeats of the same
(object, type, reason, message) update one Event's ``count``/``lastTimestamp`` instead of
creating new objects, and a per-object token bucket stops a hot loop from flooding etcd.

Routine Events that come in bulk — "created Secret X" for every object of a cold sync of
thousands — go through `emit_routine`: one token bucket per (type, reason) shared by all
objects, so one object created by hand still gets its Event, while a cold sync of 2,000
costs a few dozen Event writes instead of 2,000. What such an Event says must also be
readable elsewhere (the object's conditions, the Secret's creationTimestamp): the Event is
a courtesy, and under bulk only a sample of them is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import KubeError, NotFound
from vaultbridge.kube.resources import EVENTS

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]

_MAX_MESSAGE = 1024
_MAX_SERIES = 4096


@dataclass
class _Series:
    """One aggregated Event: the same message about the same object."""

    namespace: str
    body: dict[str, Any]
    count: int = 1
    written: int = 0
    event_name: str | None = None
    last_timestamp: str = ""
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class _TokenBucket:
    def __init__(self, burst: float, per_second: float, now: float) -> None:
        self.tokens = burst
        self.burst = burst
        self.rate = per_second
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class EventRecorder:
    """Write core/v1 Events about objects.

    ``burst``/``refill_per_second`` bound API writes per involved object (defaults follow
    client-go: 25 at once, then one per 5 minutes). Suppressed repeats are still counted
    and appear in the ``count`` of the next write. ``namespace_default`` holds Events about
    cluster-scoped objects.
    """

    def __init__(
        self,
        client: KubeClient,
        component: str = "vaultbridge",
        namespace_default: str = "default",
        *,
        burst: int = 25,
        refill_per_second: float = 1.0 / 300.0,
        instance: str | None = None,
        routine_burst: int = 25,
        routine_per_second: float = 1.0,
    ) -> None:
        self._client = client
        self.component = component
        self.namespace_default = namespace_default
        self.instance = instance or os.environ.get("POD_NAME") or socket.gethostname()
        self._burst = float(burst)
        self._rate = refill_per_second
        self._series: OrderedDict[tuple[str, ...], _Series] = OrderedDict()
        self._buckets: OrderedDict[tuple[str, ...], _TokenBucket] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Events dropped by the rate limit (their count still aggregates).
        self.suppressed = 0
        self._routine_burst = float(routine_burst)
        self._routine_rate = routine_per_second
        self._routine: dict[tuple[str, str], _TokenBucket] = {}
        #: Routine Events not written (`emit_routine`), by reason.
        self.routine_skipped: dict[str, int] = {}

    def emit(self, obj: dict[str, Any], type: EventType, reason: str, message: str) -> None:
        """Record an Event about ``obj`` in the background. Never raises, never blocks."""
        try:
            self._emit(obj, type, reason, message)
        except Exception:
            log.exception("cannot record event %s for %s", reason, _describe(obj))

    def emit_routine(self, obj: dict[str, Any], type: EventType, reason: str, message: str) -> None:
        """`emit`, for an Event that can come for many objects at once: written while the
        (type, reason) budget lasts (``routine_burst``, refilled at ``routine_per_second``),
        otherwise only counted in `routine_skipped`."""
        if self._closed:
            return
        now = time.monotonic()
        bucket = self._routine.get((type, reason))
        if bucket is None:
            bucket = self._routine[(type, reason)] = _TokenBucket(
                self._routine_burst, self._routine_rate, now
            )
        if bucket.take(now):
            self.emit(obj, type, reason, message)
            return
        skipped = self.routine_skipped[reason] = self.routine_skipped.get(reason, 0) + 1
        if skipped % 1000 == 1:
            log.info(
                "more %s events than %g/s: writing only a sample (%d skipped so far); "
                "the objects' conditions say the same",
                reason,
                self._routine_rate,
                skipped,
            )

    def _emit(self, obj: dict[str, Any], etype: EventType, reason: str, message: str) -> None:
        if self._closed:
            return
        message = message[:_MAX_MESSAGE]
        ref = _involved_object(obj)
        ns = ref.get("namespace") or self.namespace_default
        obj_key = (ref["kind"], ns, ref["name"], ref.get("uid", ""))
        key = (*obj_key, etype, reason, message)
        now = _now()
        series = self._series.get(key)
        if series is None:
            series = _Series(
                namespace=ns,
                body={
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"namespace": ns},
                    "involvedObject": ref,
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "source": {"component": self.component},
                    "reportingComponent": self.component,
                    "reportingInstance": self.instance,
                    "firstTimestamp": now,
                },
            )
            self._series[key] = series
            while len(self._series) > _MAX_SERIES:
                self._series.popitem(last=False)
        else:
            series.count += 1
            self._series.move_to_end(key)
        series.last_timestamp = now
        if series.task is not None and not series.task.done():
            return  # the running writer picks up the new count before it finishes
        if not self._allow(obj_key):
            self.suppressed += 1
            return
        task = asyncio.get_running_loop().create_task(self._write(series))
        series.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _allow(self, obj_key: tuple[str, ...]) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(obj_key)
        if bucket is None:
            bucket = self._buckets[obj_key] = _TokenBucket(self._burst, self._rate, now)
            while len(self._buckets) > _MAX_SERIES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(obj_key)
        return bucket.take(now)

    async def _write(self, series: _Series) -> None:
        try:
            while series.written < series.count:
                count = series.count
                stamp = series.last_timestamp
                if series.event_name is not None:
                    try:
                        await self._client.patch(
                            EVENTS,
                            series.event_name,
                            {"count": count, "lastTimestamp": stamp},
                            series.namespace,
                        )
                    except NotFound:
                        # Events expire (default TTL 1 h); start a new one.
                        series.event_name = None
                        continue
                else:
                    body = dict(series.body)
                    body["metadata"] = {
                        "namespace": series.namespace,
                        "generateName": _generate_name(series.body["involvedObject"]["name"]),
                    }
                    body["count"] = count
                    body["lastTimestamp"] = stamp
                    created = await self._client.create_object(EVENTS, body, series.namespace)
                    series.event_name = objects.name(created)
                series.written = count
        except KubeError as exc:
            log.warning("cannot record event %s: %s", series.body["reason"], exc)
        except Exception:
            log.exception("cannot record event %s", series.body["reason"])

    async def flush(self) -> None:
        """Wait until every Event emitted so far is written (or has failed)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting events, give pending writes ``grace`` seconds, cancel the rest."""
        self._closed = True
        pending = list(self._tasks)
        if not pending:
            return
        _done, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)


def _involved_object(obj: dict[str, Any]) -> dict[str, str]:
    m = objects.meta(obj)
    ref = {
        "apiVersion": str(obj.get("apiVersion") or ""),
        "kind": str(obj.get("kind") or ""),
        "name": str(m.get("name") or ""),
    }
    if not ref["kind"] or not ref["name"]:
        raise ValueError("event about an object without kind or name")
    # No resourceVersion: one aggregated Event spans many versions of the object.
    for field_name in ("namespace", "uid"):
        value = m.get(field_name)
        if value:
            ref[field_name] = str(value)
    return ref


def _generate_name(involved_name: str) -> str:
    # Names are limited to 253 characters and generateName appends 5.
    return f"{involved_name[:200]}."


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')} {objects.namespace(obj)}/{objects.name(obj)}"
