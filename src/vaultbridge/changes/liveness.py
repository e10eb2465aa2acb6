"""Is the audit stream live, and did it lose anything? A heartbeat through Vault answers both.

Every ``interval`` the operator sends each Vault server it uses one request on a path that
carries a fresh random nonce (``<heartbeat path>/<nonce>``; no token, so Vault answers
"permission denied" — and audits it like any request). The audit stream must bring the nonce
back within ``timeout``. Per server:

* an echo arrives → the stream from that server is **live**;
* a heartbeat is not echoed in time, the receiver dropped entries, or a TCP connection was
  lost → **gap**: the stream is not live, and entries may have been lost;
* the first echo after a gap → ``on_resync()``: the caller re-reads every opted-in object once
  (what changed during the gap is then picked up). Resyncs are spaced at least
  ``min_resync_interval`` apart: a sustained flood that keeps causing gaps costs one re-read
  of every object per interval, not one per heartbeat.

A process start is not a gap: every object is read once at start anyway (the informers' first
list). The nonce is unguessable, so a forged entry cannot fake a live stream.

``clock`` is injectable; ``tick()`` and ``beat_targets()`` are the synchronous core, ``run()``
the loop around them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from .index import normalise

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_PATH = "sys/vaultbridge-heartbeat"

SendBeat = Callable[[str, str], Awaitable[None]]
"""``send(target, path)``: one request to Vault server ``target`` on ``path``."""


@dataclass
class _Target:
    live: bool = False
    gap: bool = False  # something may have been lost since the stream was last live
    outstanding: dict[str, float] = field(default_factory=dict)  # nonce -> sent at


class StreamLiveness:
    def __init__(
        self,
        *,
        interval: float = 10.0,
        timeout: float = 30.0,
        path: str = DEFAULT_HEARTBEAT_PATH,
        min_resync_interval: float = 60.0,
        on_resync: Callable[[], None] | None = None,
        on_live_change: Callable[[str, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("heartbeat interval and timeout must be > 0")
        self.interval = interval
        self.timeout = timeout
        self.path = normalise(path)
        self.min_resync_interval = min_resync_interval
        self._on_resync = on_resync
        self._on_live_change = on_live_change
        self._clock = clock
        self._targets: dict[str, _Target] = {}
        self._nonces: dict[str, str] = {}  # nonce -> target
        self._last_resync: float | None = None
        self._resync_pending = False
        self.resyncs = 0

    # -- state --------------------------------------------------------------------------------

    def is_live(self, target: str | None = None) -> bool:
        """Live for ``target``; without one: every known target is live (and there is one)."""
        if target is not None:
            state = self._targets.get(target)
            return state is not None and state.live
        return bool(self._targets) and all(t.live for t in self._targets.values())

    def targets(self) -> dict[str, bool]:
        return {name: t.live for name, t in self._targets.items()}

    # -- inputs -------------------------------------------------------------------------------

    def is_heartbeat(self, path: str) -> bool:
        return path.startswith(self.path + "/")

    def observed(self, path: str) -> bool:
        """An audited request on ``path`` (any outcome). True if it was one of our heartbeats."""
        if not self.is_heartbeat(path):
            return False
        nonce = path[len(self.path) + 1 :]
        target = self._nonces.pop(nonce, None)
        if target is None:
            return True  # an old, unknown or forged heartbeat: proves nothing
        state = self._targets.get(target)
        if state is None:
            return True
        # Every beat sent up to this one is answered for: an older one still missing is lost.
        state.outstanding.pop(nonce, None)
        if not state.live:
            state.live = True
            log.info("audit stream from %s is live", target)
            self._notify(target, True)
        if state.gap:
            state.gap = False
            self._want_resync()
        return True

    def gap(self) -> None:
        """Entries may have been lost (receiver overload, lost TCP connection)."""
        for target, state in self._targets.items():
            state.gap = True
            if state.live:
                state.live = False
                self._notify(target, False)

    def beat_targets(self, targets: Iterable[str]) -> list[tuple[str, str]]:
        """Start one heartbeat per target: the (target, path) requests to send now."""
        wanted = set(targets)
        for gone in set(self._targets) - wanted:
            state = self._targets.pop(gone)
            for nonce in state.outstanding:
                self._nonces.pop(nonce, None)
        now = self._clock()
        beats = []
        for target in sorted(wanted):
            state = self._targets.setdefault(target, _Target())
            nonce = secrets.token_hex(16)
            state.outstanding[nonce] = now
            self._nonces[nonce] = target
            beats.append((target, f"{self.path}/{nonce}"))
        return beats

    def tick(self) -> None:
        """Expire heartbeats older than ``timeout``; run a resync that was waiting its turn."""
        now = self._clock()
        for target, state in self._targets.items():
            expired = [n for n, sent in state.outstanding.items() if now - sent >= self.timeout]
            for nonce in expired:
                del state.outstanding[nonce]
                self._nonces.pop(nonce, None)
            if expired:
                state.gap = True
                if state.live:
                    state.live = False
                    log.warning(
                        "audit stream from %s: heartbeat not seen within %.0fs; instant updates "
                        "paused (polling continues) until it is",
                        target,
                        self.timeout,
                    )
                    self._notify(target, False)
        if self._resync_pending:
            self._want_resync()

    async def run(self, send: SendBeat, targets: Callable[[], Iterable[str]]) -> None:
        """Beat every ``interval`` until cancelled; a failed send is just a missing echo."""
        while True:
            self.tick()
            beats = self.beat_targets(targets())
            results = await asyncio.gather(
                *(send(target, path) for target, path in beats), return_exceptions=True
            )
            for (target, _), result in zip(beats, results, strict=True):
                if isinstance(result, Exception):
                    log.debug("audit stream heartbeat to %s failed: %s", target, result)
            await asyncio.sleep(self.interval)

    # -- internals ----------------------------------------------------------------------------

    def _want_resync(self) -> None:
        now = self._clock()
        if self._last_resync is not None and now - self._last_resync < self.min_resync_interval:
            self._resync_pending = True
            return
        self._resync_pending = False
        self._last_resync = now
        self.resyncs += 1
        log.info("audit stream: re-reading every object with instant updates once (gap)")
        if self._on_resync is not None:
            self._on_resync()

    def _notify(self, target: str, live: bool) -> None:
        if self._on_live_change is not None:
            self._on_live_change(target, live)
