"""The audit stream as a change source: entries in, object keys out.

``AuditChangeSource.handle(entry_bytes)`` is the receiver's sink. For each entry:

1. without the shared ``prefix`` (the device's ``prefix`` option) → dropped (``prefix``);
2. not a JSON audit entry → dropped (``malformed``); a request entry or another engine's →
   ignored; a heartbeat → handed to the liveness monitor;
3. a successful KV change → the index names the objects reading that path (none: ignored);
4. per-path rate limit (``limiter.py``) → ``enqueue(keys, resync=False)`` now, or once at the
   end of the window.

The source only ever names keys: the reconcile re-reads Vault, so a forged entry costs a read,
never data. ``enqueue(keys, resync=True)`` re-reads every registered object after a gap.
Counters live in ``stats`` and are reported through ``observe(counter, reason)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Collection, Hashable
from typing import Generic, Protocol, TypeVar

from .entries import MalformedEntry, parse_entry
from .index import Operation, PathIndex
from .limiter import Grant, PathLimiter
from .liveness import StreamLiveness

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


_REQUEST_ENTRY = b'"type":"request"'
_READ = b'"operation":"read"'
_LIST = b'"operation":"list"'


class Enqueue(Protocol[K_contra]):
    def __call__(self, keys: Collection[K_contra], *, resync: bool) -> None: ...


Observe = Callable[[str, str], None]
"""``observe(counter, reason)``: counter is received, matched, ignored, dropped, enqueued or
deferred; reason qualifies dropped/ignored (``prefix``, ``malformed``, ``overload``, ...)."""


class AuditChangeSource(Generic[K]):
    def __init__(
        self,
        index: PathIndex[K],
        enqueue: Enqueue[K],
        *,
        limiter: PathLimiter,
        liveness: StreamLiveness | None = None,
        prefix: str = "",
        observe: Observe | None = None,
    ) -> None:
        self.index = index
        self._enqueue = enqueue
        self.limiter = limiter
        self.liveness = liveness
        self._prefix = prefix.encode()
        self._beat_marker = (liveness.path + "/").encode() if liveness is not None else None
        self._observe = observe
        self.stats: Counter[str] = Counter()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def handle(self, raw: bytes) -> None:
        """One entry as received (prefix included). Never raises on bad input."""
        self._count("received")
        if self._prefix:
            if not raw.startswith(self._prefix):
                self._count("dropped", "prefix")
                return
            raw = raw[len(self._prefix) :]
        # OpenBao has no audit filter: most entries are request entries or reads. Both are
        # told apart without parsing: Vault HMACs every string value it logs, so these
        # literals can only be its own fields (a forger who uses them only loses his entry;
        # a mount tuned with audit_non_hmac_request_keys could in theory hide a write, which
        # refreshAfter then repairs). A heartbeat is a read and must be parsed.
        if _REQUEST_ENTRY in raw:
            self._count("ignored", "not_response")
            return
        is_read = _READ in raw or _LIST in raw
        if is_read and not (self._beat_marker and self._beat_marker in raw):
            self._count("ignored", "not_a_change")
            return
        try:
            entry = parse_entry(raw)
        except MalformedEntry:
            self._count("dropped", "malformed")
            return
        if entry is None:
            self._count("ignored", "not_response")
            return
        if self.liveness is not None and self.liveness.observed(entry.path):
            self._count("ignored", "heartbeat")
            return
        change = entry.change
        if change is None:
            self._count("ignored", "not_a_change")
            return
        keys = self.index.lookup(entry.path, change)
        if not keys:
            self._count("ignored", "unwatched")
            return
        self._count("matched")
        grant = self.limiter.check(entry.path)
        if grant is Grant.NOW:
            self._fire(keys)
        elif grant is Grant.DEFERRED:
            self._defer(entry.path, change)
        elif grant is Grant.ABSORBED:
            self._count("deferred", "absorbed")
        else:
            self._count("dropped", "limiter_full")
            if self.liveness is not None:
                self.liveness.gap()

    def dropped(self, reason: str) -> None:
        """Receiver hook: an entry was read and thrown away before parsing."""
        self._count("received")
        self._count("dropped", reason)

    def resync(self) -> None:
        """Re-read every registered object once (after a gap in the stream)."""
        keys = self.index.registered()
        if keys:
            self._count("resync")
            self._enqueue(keys, resync=True)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # -- internals ----------------------------------------------------------------------------

    def _fire(self, keys: Collection[K]) -> None:
        self._count("enqueued")
        self._enqueue(keys, resync=False)

    def _defer(self, path: str, change: Operation) -> None:
        self._count("deferred", "rate_limited")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = self.limiter.deferred_delay(path)

        def fire() -> None:
            self._timers.pop(path, None)
            self.limiter.fired(path)
            # Looked up again: the objects reading the path may have changed meanwhile.
            keys = self.index.lookup(path, change)
            if keys:
                self._fire(keys)

        old = self._timers.pop(path, None)
        if old is not None:
            old.cancel()
        self._timers[path] = loop.call_later(delay, fire)

    def _count(self, counter: str, reason: str = "") -> None:
        self.stats[counter if not reason else f"{counter}:{reason}"] += 1
        if self._observe is not None:
            try:
                self._observe(counter, reason)
            except Exception:
                log.exception("audit stream metrics hook failed")
