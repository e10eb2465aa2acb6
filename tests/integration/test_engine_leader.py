"""Lease-based leader election against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from vaultbridge.engine.leader import LeaderElector, LeadershipLost
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.resources import LEASES

pytestmark = pytest.mark.integration

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


def elector(kube: KubeClient, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(
        kube,
        namespace,
        "leader",
        identity,
        lease_duration=LEASE_SECONDS,
        renew_deadline=1.0,
        retry_period=0.1,
    )


async def test_one_leader_and_quick_handover_on_release(kube: KubeClient, namespace: str) -> None:
    a, b = elector(kube, namespace, "a"), elector(kube, namespace, "b")
    a_stop, b_stop = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def work(name: str, stop: asyncio.Event) -> None:
        order.append(f"{name} starts")
        await stop.wait()
        order.append(f"{name} ends")

    run_a = asyncio.create_task(a.run(lambda: work("a", a_stop)))
    while not a.is_leader:
        await asyncio.sleep(0.02)
    run_b = asyncio.create_task(b.run(lambda: work("b", b_stop)))
    await asyncio.sleep(2 * LEASE_SECONDS)  # a keeps renewing: b never gets in
    assert order == ["a starts"] and not b.is_leader

    a_stop.set()
    start = time.monotonic()
    await asyncio.wait_for(run_a, 2)
    while not b.is_leader:
        await asyncio.sleep(0.02)
    assert time.monotonic() - start < LEASE_SECONDS  # released, not expired
    lease = await kube.get(LEASES, "leader", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    b_stop.set()
    await asyncio.wait_for(run_b, 2)
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
    b = elector(kube, namespace, "b")
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    begin = time.monotonic()
    await asyncio.wait_for(b.run(work), 5)
    assert started.is_set()
    # b watched the record stay unchanged for the lease duration on its own clock first.
    assert time.monotonic() - begin >= 1.0


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
