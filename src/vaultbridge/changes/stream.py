"""One audit stream, assembled: receiver → source (index, limiter, liveness) → enqueue.

The operator builds one ``AuditStream`` when ``--audit-stream-listen`` is set, hands it the
enqueue callback, the heartbeat sender and the list of Vault servers, and runs it beside the
controllers. Everything it knows of objects is the ``index`` the operator keeps up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .index import PathIndex
from .limiter import PathLimiter
from .liveness import DEFAULT_HEARTBEAT_PATH, SendBeat, StreamLiveness
from .receiver import AuditStreamReceiver, ListenAddress
from .source import AuditChangeSource, Enqueue, Observe

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class StreamConfig:
    listen: ListenAddress
    prefix: str = ""
    heartbeat_interval: float = 10.0
    heartbeat_path: str = DEFAULT_HEARTBEAT_PATH
    path_limit: int = 5
    """Re-reads per Vault path per ``path_interval`` (forged floods cost at most this)."""
    path_interval: float = 10.0
    min_resync_interval: float = 60.0
    max_entries_per_second: float = 20_000

    @property
    def heartbeat_timeout(self) -> float:
        return 3 * self.heartbeat_interval


class AuditStream(Generic[K]):
    def __init__(
        self,
        config: StreamConfig,
        enqueue: Enqueue[K],
        *,
        index: PathIndex[K] | None = None,
        observe: Observe | None = None,
        on_live_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.config = config
        self.index: PathIndex[K] = index if index is not None else PathIndex()
        self.liveness = StreamLiveness(
            interval=config.heartbeat_interval,
            timeout=config.heartbeat_timeout,
            path=config.heartbeat_path,
            min_resync_interval=config.min_resync_interval,
            on_resync=lambda: self.source.resync(),  # noqa: PLW0108 - source is built below
            on_live_change=on_live_change,
        )
        self.source: AuditChangeSource[K] = AuditChangeSource(
            self.index,
            enqueue,
            limiter=PathLimiter(config.path_limit, config.path_interval),
            liveness=self.liveness,
            prefix=config.prefix,
            observe=observe,
        )
        self.receiver = AuditStreamReceiver(
            config.listen,
            self.source.handle,
            max_entries_per_second=config.max_entries_per_second,
            on_drop=self.source.dropped,
            on_gap=self.liveness.gap,
        )
        self._heartbeat: asyncio.Task[None] | None = None

    def is_live(self, target: str | None = None) -> bool:
        return self.liveness.is_live(target)

    async def start(self, send_beat: SendBeat, targets: Callable[[], Iterable[str]]) -> None:
        """Listen, then beat. Raises OSError when the address cannot be bound."""
        await self.receiver.start()
        self._heartbeat = asyncio.create_task(
            self._beat(send_beat, targets), name="audit-stream-heartbeat"
        )

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        self.source.close()
        await self.receiver.stop()

    async def _beat(self, send_beat: SendBeat, targets: Callable[[], Iterable[str]]) -> None:
        try:
            await self.liveness.run(send_beat, targets)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Without heartbeats the stream is never declared live: polling carries on.
            log.exception("audit stream heartbeat loop failed")
