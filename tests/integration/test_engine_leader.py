"""Lease-based leader election against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from vaultbridge.engine.leader import LeaderElector, LeadershipLost
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.resources import LEASES

# kube_only: the API server alone, never Vault (tests/vault_facing.py)
pytestmark = [pytest.mark.integration, pytest.mark.kube_only]

LEASE_SECONDS = 1.5


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    assert not leaked, f"leaked tasks: {leaked}"


def elector(
    kube: KubeClient, namespace: str, identity: str, clock: Callable[[], float] = time.monotonic
) -> LeaderElector:
    return LeaderElector(
        kube,
        namespace,
        "leader",
        identity,
        lease_duration=LEASE_SECONDS,
        renew_deadline=1.0,
        retry_period=0.1,
        clock=clock,
    )


class FreezableClock:
    """The monotonic clock until ``freeze()``; from then on time stands still for its user."""

    def __init__(self) -> None:
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        return time.monotonic() if self.frozen_at is None else self.frozen_at

    def freeze(self) -> None:
        self.frozen_at = time.monotonic()


async def test_one_leader_and_quick_handover_on_release(kube: KubeClient, namespace: str) -> None:
    a = elector(kube, namespace, "a")
    a_stop, b_stop = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def work(name: str, stop: asyncio.Event) -> None:
        order.append(f"{name} starts")
        await stop.wait()
        order.append(f"{name} ends")

    b_clock = FreezableClock()
    b = elector(kube, namespace, "b", b_clock)
    run_a = asyncio.create_task(a.run(lambda: work("a", a_stop)))
    while not a.is_leader:
        await asyncio.sleep(0.02)
    run_b = asyncio.create_task(b.run(lambda: work("b", b_stop)))
    await asyncio.sleep(2 * LEASE_SECONDS)  # a keeps renewing: b never gets in
    assert order == ["a starts"] and not b.is_leader

    # From here on b's clock stands still: a lease can never *expire* for b, so if b leads,
    # a's release handed it over (no stopwatch needed to tell the two apart).
    b_clock.freeze()
    a_stop.set()
    await asyncio.wait_for(run_a, 60)  # a returns normally: it was not deposed
    while not b.is_leader:
        await asyncio.sleep(0.02)
    lease = await kube.get(LEASES, "leader", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    b_stop.set()
    await asyncio.wait_for(run_b, 60)
    assert order == ["a starts", "a ends", "b starts", "b ends"]
    released = await kube.get(LEASES, "leader", namespace)
    assert not released["spec"].get("holderIdentity")


async def test_takeover_waits_for_a_dead_holders_lease_to_expire(
    kube: KubeClient, namespace: str
) -> None:
    await kube.create(
        LEASES,
        {
            "metadata": {"name": "leader"},
            "spec": {
                "holderIdentity": "crashed-replica",
                "leaseDurationSeconds": 1,
                "renewTime": "2020-01-01T00:00:00.000000Z",  # its clock does not matter
            },
        },
        namespace,
    )
    # b's clock: the real one, with every reading recorded.
    readings: list[float] = []

    def clock() -> float:
        readings.append(time.monotonic())
        return readings[-1]

    b = elector(kube, namespace, "b", clock)
    started = asyncio.Event()
    clock_at_start: list[float] = []

    async def work() -> None:
        clock_at_start.append(clock())
        started.set()

    await asyncio.wait_for(b.run(work), 60)
    assert started.is_set()
    # b watched the record stay unchanged for the lease duration (1 s) on its own clock
    # before taking it: a lower bound, which load only makes truer.
    assert clock_at_start[0] - readings[0] >= 1.0, readings


async def test_leader_that_loses_the_lease_stops_its_work(kube: KubeClient, namespace: str) -> None:
    a = elector(kube, namespace, "a")
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    run_a = asyncio.create_task(a.run(work))
    while not a.is_leader:
        await asyncio.sleep(0.02)
    lease = await kube.get(LEASES, "leader", namespace)
    lease["spec"]["holderIdentity"] = "intruder"
    lease["spec"]["leaseDurationSeconds"] = 60
    await kube.replace(LEASES, lease)
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(run_a, 5)
    assert cancelled.is_set() and not a.is_leader
    # It does not release a Lease that is no longer its own.
    assert (await kube.get(LEASES, "leader", namespace))["spec"]["holderIdentity"] == "intruder"


def test_rejects_inconsistent_timings(kube: KubeClient) -> None:
    with pytest.raises(ValueError):
        LeaderElector(kube, "ns", lease_duration=5, renew_deadline=10, retry_period=2)
