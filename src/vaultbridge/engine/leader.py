"""Leader election on a coordination.k8s.io/v1 Lease, so only one replica reconciles.

The rules follow the usual Kubernetes scheme, written for asyncio:

* a replica holds the Lease while it renews it at least every ``renew_deadline`` seconds
  (it tries every ``retry_period``);
* another replica takes over only after it has watched the same Lease record stay unchanged
  for ``lease_duration`` seconds of its *own* clock, so clock skew between nodes does not
  matter;
* a replica that stops gracefully releases the Lease (empty holder) so a successor takes
  over at its next try instead of after a full lease duration;
* a leader that cannot renew in time stops its work and raises ``LeadershipLost``; the
  process should exit and start over (as client-go operators do).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import Conflict, KubeError, NotFound
from vaultbridge.kube.resources import LEASES

log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """The Lease could not be renewed in time or was taken by another replica."""


def default_identity() -> str:
    """Pod name (or host name) plus a random suffix: unique even across restarts."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str = "vaultbridge-leader",
        identity: str | None = None,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._leader = False

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Wait to become leader, then run ``work()`` while leading.

        Returns when ``work`` returns (the Lease is released). Raises ``LeadershipLost`` —
        after cancelling ``work`` — if leadership is lost first; re-raises errors of
        ``work``. Cancelling ``run`` cancels ``work`` and releases the Lease.
        """
        await self._acquire()
        work_task = asyncio.ensure_future(work())
        renew_task = asyncio.create_task(self._keep_renewing(), name=f"lease-{self.name}")
        try:
            done, _ = await asyncio.wait(
                {work_task, renew_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if work_task in done:
                work_task.result()
                return
            raise LeadershipLost(f"lost lease {self.namespace}/{self.name}")
        finally:
            for task in (work_task, renew_task):
                task.cancel()
            await asyncio.gather(work_task, renew_task, return_exceptions=True)
            if self._leader:
                await self._release()

    async def _acquire(self) -> None:
        logged = False
        while True:
            try:
                if await self._try_acquire_or_renew():
                    log.info("lease %s/%s acquired as %s", self.namespace, self.name, self.identity)
                    return
                if not logged:
                    holder = self._observed[0] if self._observed else "?"
                    log.info(
                        "waiting for lease %s/%s held by %s", self.namespace, self.name, holder
                    )
                    logged = True
            except KubeError as exc:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.retry_period)

    async def _keep_renewing(self) -> None:
        """Return when leadership is lost."""
        last_renewal = self._clock()
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                if await self._try_acquire_or_renew():
                    last_renewal = self._clock()
                    continue
                log.error("lease %s/%s taken by %s", self.namespace, self.name, self._observed)
                self._leader = False
                return
            except KubeError as exc:
                log.warning("lease %s/%s: renewal failed: %s", self.namespace, self.name, exc)
            if self._clock() - last_renewal > self.renew_deadline:
                log.error("lease %s/%s: not renewed within the deadline", self.namespace, self.name)
                self._leader = False
                return

    async def _try_acquire_or_renew(self) -> bool:
        now = _micro_time()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFound:
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": int(self.lease_duration),
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            try:
                created = await self.client.create(LEASES, body, self.namespace)
            except Conflict:
                return False  # another replica created it first
            self._observe(created)
            self._leader = True
            return True

        spec: dict[str, Any] = dict(lease.get("spec") or {})
        self._observe(lease)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity:
            duration = spec.get("leaseDurationSeconds") or self.lease_duration
            if self._clock() < self._observed_at + float(duration):
                self._leader = False
                return False
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = int(self.lease_duration)
        spec["renewTime"] = now
        lease["spec"] = spec
        try:
            updated = await self.client.replace(LEASES, lease, self.namespace)
        except Conflict:
            self._leader = False
            return False  # somebody wrote in between; look again next time
        self._observe(updated)
        self._leader = True
        return True

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("leaseDurationSeconds"),
            spec.get("leaseTransitions"),
        )
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()

    async def _release(self) -> None:
        """Hand the Lease back so a successor need not wait for it to expire."""
        self._leader = False
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = None
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = _micro_time()
            lease["spec"] = spec
            await self.client.replace(LEASES, lease, self.namespace)
            log.info("lease %s/%s released", self.namespace, self.name)
        except KubeError as exc:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, exc)


def _micro_time() -> str:
    """``metav1.MicroTime`` text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
