"""Sharing the global Vault request rate fairly between tenants.

The token bucket (``ratelimit.py``) bounds how many requests per second reach Vault; this
scheduler, placed in front of it, decides *whose* request gets the next token when more
requests want one than the bucket gives. Guarantees:

* no contention, no cost: while nobody waits, a request takes its token straight from the
  bucket (the bucket's burst still applies);
* while requests wait, tokens go round-robin over the tenants that have waiting requests,
  FIFO within a tenant. A tenant asking for more than its share queues behind itself: with
  T tenants waiting, a tenant's next request is granted within T grants, however many
  requests the others have queued (1,000 from A and 1 from B: B's goes first or second);
* the total rate and burst are the bucket's alone (the rate may change underneath, e.g. the
  adaptive rate): this class only reserves tokens and waits as long as the bucket says, and
  reserves again when the bucket voided its reservation meanwhile (``TokenBucket.epoch``);
* a waiter cancelled before its grant gives up its place; a token reserved for nobody (all
  waiters left during the wait) is refunded to the bucket.

A *tenant* is an opaque string, taken from the ``current_tenant`` context variable unless
passed explicitly; callers set it with ``tenant_scope`` around their work (the operator uses
the object's namespace). This module knows nothing of what a tenant is; requests made
outside any scope share the tenant ``""``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Protocol

#: The tenant on whose behalf the current task talks to Vault ("" when unset).
current_tenant: ContextVar[str] = ContextVar("vaultbridge_vault_tenant", default="")


@contextlib.contextmanager
def tenant_scope(tenant: str) -> Iterator[None]:
    """Run the enclosed code (and the tasks it creates) on behalf of ``tenant``."""
    token = current_tenant.set(tenant)
    try:
        yield
    finally:
        current_tenant.reset(token)


class Bucket(Protocol):
    """What the scheduler needs of the rate limiter behind it (``TokenBucket``)."""

    @property
    def unlimited(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    def reserve(self) -> float: ...

    def refund(self) -> None: ...


class FairShare:
    """See the module docstring. ``on_wait(tenant, seconds)`` observes each request that had
    to queue (for metrics); ``sleep`` and ``clock`` are injectable for tests."""

    def __init__(
        self,
        bucket: Bucket,
        *,
        on_wait: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bucket = bucket
        self._on_wait = on_wait
        self._clock = clock
        self._sleep = sleep
        # tenant -> its waiting requests (FIFO); the ring orders the tenants that have some.
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._ring: deque[str] = deque()
        self._pump_task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests queued for a token right now."""
        return sum(len(q) for q in self._waiters.values())

    async def acquire(self, tenant: str | None = None) -> None:
        """Wait for this tenant's turn and a token; return when the request may be sent."""
        if self.bucket.unlimited:
            return
        who = current_tenant.get() if tenant is None else tenant
        if not self._ring:
            # Nobody queued: take a token directly if one is there now. Otherwise give the
            # reservation back and queue, so the next token goes to whoever's turn it is.
            if self.bucket.reserve() <= 0:
                return
            self.bucket.refund()
        started = self._clock()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(who)
        if queue is None:
            queue = self._waiters[who] = deque()
            self._ring.append(who)
        queue.append(waiter)
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(), name="vault-fair-share")
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.bucket.refund()  # granted, but the request will not be sent
            else:
                self._forget(who, waiter)
            raise
        if self._on_wait is not None:
            self._on_wait(who, max(0.0, self._clock() - started))

    def _forget(self, tenant: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiters.get(tenant)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if not queue:
            del self._waiters[tenant]
            with contextlib.suppress(ValueError):
                self._ring.remove(tenant)

    def _next_waiter(self) -> asyncio.Future[None] | None:
        """The front tenant's oldest request; that tenant moves to the back of the ring."""
        while self._ring:
            tenant = self._ring.popleft()
            queue = self._waiters[tenant]
            waiter = queue.popleft()
            if queue:
                self._ring.append(tenant)
            else:
                del self._waiters[tenant]
            if not waiter.done():
                return waiter
        return None

    async def _pump(self) -> None:
        """One token at a time: reserve it, wait until it is due, then hand it to the tenant
        whose turn it is *then* (a tenant arriving during the wait competes for it)."""
        try:
            while self._ring:
                epoch = self.bucket.epoch
                wait = self.bucket.reserve()
                if wait > 0:
                    try:
                        await self._sleep(wait)
                    except asyncio.CancelledError:
                        if self.bucket.epoch == epoch:
                            self.bucket.refund()
                        raise
                    if self.bucket.epoch != epoch:
                        continue  # the schedule changed (slower rate, pause): reserve again
                waiter = self._next_waiter()
                if waiter is None:
                    if self.bucket.epoch == epoch:
                        self.bucket.refund()
                    break
                waiter.set_result(None)
        finally:
            self._pump_task = None
