"""No storms on Vault (issue #20, the Vault layer) against the real OpenBao.

- a policy that denies a path costs no logins, whatever the number of callers and retries;
- a token revoked by hand is replaced by one login shared by every caller;
- replaced and unused tokens are revoked (token accessors are counted with the root token);
- a rate-limit quota slows the operator's global rate down instead of failing requests;
- lease revocation by path has a typed outcome.

`call` below is what `controllers/vault_call.call_vault` does, minus Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from vaultbridge.vault import (
    AdaptiveRate,
    AuthToken,
    ClientCache,
    ConnectionSettings,
    PermissionDenied,
    RevokeOutcome,
    TokenBucket,
    Transport,
    VaultClient,
    VaultThrottled,
)

from .vault_client_support import AppRole, Recorder, make_approle, uid

pytestmark = pytest.mark.integration

T = TypeVar("T")
KEY = "identity"


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def transport(recorder: Recorder) -> AsyncIterator[Transport]:
    t = Transport(on_request=recorder)
    yield t
    await t.close()


@pytest.fixture
def settings(vault_server: Any) -> ConnectionSettings:
    return ConnectionSettings(vault_server.addr, timeout=30)


@pytest.fixture
def root(vault_server: Any, transport: Transport, settings: ConnectionSettings) -> VaultClient:
    return VaultClient(transport, settings, token=vault_server.root_token)


@pytest.fixture
async def kv(root: VaultClient) -> AsyncIterator[str]:
    mount = uid("kv")
    await root.write(f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}})
    await root.kv_write(mount, "app", {"password": "never-shown"}, kv_version=2)
    yield mount
    await root.delete(f"sys/mounts/{mount}")


async def accessors(root: VaultClient) -> set[str]:
    resp = await root.read("auth/token/accessors", params={"list": "true"})
    return set((resp.data or {}).get("keys") or [])


async def live_accessors_of(root: VaultClient, mount: str, among: set[str]) -> set[str]:
    """Those of ``among`` that are live tokens issued by the auth mount ``mount``."""
    live = set()
    for accessor in among:
        with contextlib.suppress(Exception):
            resp = await root.write("auth/token/lookup-accessor", {"accessor": accessor})
            if resp is not None and (resp.data or {}).get("path", "").startswith(f"auth/{mount}/"):
                live.add(accessor)
    return live


def approle_login(
    transport: Transport, settings: ConnectionSettings, ar: AppRole
) -> Callable[[], Awaitable[AuthToken]]:
    async def login() -> AuthToken:
        return await VaultClient(transport, settings).login_approle(
            ar.mount, ar.role_id, ar.secret_id
        )

    return login


async def call(
    cache: ClientCache,
    login: Callable[[], Awaitable[AuthToken]],
    settings: ConnectionSettings,
    fn: Callable[[VaultClient], Awaitable[T]],
) -> T:
    """`call_vault` without Kubernetes: after a 403 the cache decides whether to retry."""
    attempt = 0
    while True:
        client = await cache.get(KEY, login, settings, None)
        try:
            return await fn(client)
        except PermissionDenied:
            verdict = await cache.check_denied(KEY, client)
            if verdict.retry and attempt == 0:
                attempt += 1
                continue
            raise


async def test_denied_path_costs_no_logins_and_no_tokens(
    root: VaultClient, transport: Transport, settings: ConnectionSettings, kv: str
) -> None:
    policy = uid("pol")
    await root.write(f"sys/policies/acl/{policy}", {"policy": f'path "{kv}/data/other" {{}}'})
    ar = await make_approle(root, policies=[policy], token_ttl="1h")
    login = approle_login(transport, settings, ar)
    before = await accessors(root)
    # The cache's clock moves only between rounds (a round is one backoff step), so the
    # count of lookup-self checks does not depend on the machine's speed.
    now = [0.0]
    cache = ClientCache(transport, clock=lambda: now[0], check_interval=10.0)
    try:
        denied: list[PermissionDenied] = []
        # 100 objects of one identity, 10 retry rounds each (the controllers' backoff).
        for _round in range(10):
            results = await asyncio.gather(
                *(
                    call(cache, login, settings, lambda c: c.kv_read(kv, "app", kv_version=2))
                    for _ in range(100)
                ),
                return_exceptions=True,
            )
            denied += [r for r in results if isinstance(r, PermissionDenied)]
            now[0] += 10.0
        assert len(denied) == 1000
        # Each report names the path and the capability a policy must grant.
        assert all(e.path == f"{kv}/data/app" and e.capability == "read" for e in denied)
        assert f"a policy must grant 'read' on '{kv}/data/app'" in str(denied[0])
        assert cache.logins == 1
        assert cache.checks == 10  # one lookup-self per round, shared by the 100 callers
        new = await accessors(root) - before
        assert len(await live_accessors_of(root, ar.mount, new)) <= 2

        # Fixing the policy: the same token reads, without a login.
        await root.write(
            f"sys/policies/acl/{policy}",
            {"policy": f'path "{kv}/data/app" {{ capabilities = ["read"] }}'},
        )
        secret = await call(cache, login, settings, lambda c: c.kv_read(kv, "app", kv_version=2))
        assert secret.data == {"password": "never-shown"}
        assert cache.logins == 1
    finally:
        await cache.close()
        await root.delete(f"sys/auth/{ar.mount}")
        await root.delete(f"sys/policies/acl/{policy}")
    # Not persisted anywhere: the token was revoked on close, no token of the role is left.
    assert await live_accessors_of(root, ar.mount, await accessors(root) - before) == set()


async def test_revoked_token_is_replaced_by_one_shared_login(
    root: VaultClient, transport: Transport, settings: ConnectionSettings, kv: str
) -> None:
    policy = uid("pol")
    await root.write(
        f"sys/policies/acl/{policy}", {"policy": f'path "{kv}/*" {{ capabilities = ["read"] }}'}
    )
    ar = await make_approle(root, policies=[policy], token_ttl="1h")
    login = approle_login(transport, settings, ar)
    before = await accessors(root)
    cache = ClientCache(transport)
    try:
        client = await cache.get(KEY, login, settings, None)
        first = (await client.lookup_self()).accessor
        await root.write("auth/token/revoke-accessor", {"accessor": first})  # by hand
        results = await asyncio.gather(
            *(
                call(cache, login, settings, lambda c: c.kv_read(kv, "app", kv_version=2))
                for _ in range(50)
            )
        )
        assert all(r.data == {"password": "never-shown"} for r in results)
        assert cache.logins == 2  # the first login, and exactly one for all fifty callers
        live = await live_accessors_of(root, ar.mount, await accessors(root) - before)
        assert first not in live
        assert len(live) == 1
    finally:
        await cache.close()
        await root.delete(f"sys/auth/{ar.mount}")
        await root.delete(f"sys/policies/acl/{policy}")


async def test_failing_login_is_shared_per_identity(
    root: VaultClient, transport: Transport, settings: ConnectionSettings, recorder: Recorder
) -> None:
    ar = await make_approle(root)
    wrong = AppRole(ar.mount, ar.role, ar.role_id, "not-the-secret-id")
    cache = ClientCache(transport, login_backoff=60.0)
    try:
        results = await asyncio.gather(
            *(
                cache.get(KEY, approle_login(transport, settings, wrong), settings, None)
                for _ in range(20)
            ),
            return_exceptions=True,
        )
        for _round in range(5):
            with pytest.raises(Exception) as info:
                await cache.get(KEY, approle_login(transport, settings, wrong), settings, None)
            assert type(info.value) is type(results[0])
        assert all(isinstance(r, Exception) for r in results)
        assert recorder.count("login_approle") == 1
    finally:
        await cache.close()
        await root.delete(f"sys/auth/{ar.mount}")


async def test_replaced_tokens_are_revoked(
    root: VaultClient, transport: Transport, settings: ConnectionSettings
) -> None:
    ar = await make_approle(root, token_ttl="1h")
    login = approle_login(transport, settings, ar)
    before = await accessors(root)
    cache = ClientCache(transport)
    try:
        for _ in range(5):
            await cache.get(KEY, login, settings, None)
            cache.invalidate(KEY)  # e.g. its VaultAuth changed
        await cache.get(KEY, login, settings, None)
        for _ in range(100):
            if cache.revocations == 5:
                break
            await asyncio.sleep(0.1)
        live = await live_accessors_of(root, ar.mount, await accessors(root) - before)
        assert len(live) == 1
        assert cache.logins == 6
    finally:
        await cache.close()
        await root.delete(f"sys/auth/{ar.mount}")


async def test_rate_limit_quota_lowers_the_rate_instead_of_failing(
    root: VaultClient, settings: ConnectionSettings, kv: str, vault_server: Any
) -> None:
    quota = uid("quota")
    await root.write(
        f"sys/quotas/rate-limit/{quota}", {"path": f"{kv}/", "rate": 20, "interval": "1s"}
    )
    recorder = Recorder()
    # Fixed parameters (the operator's defaults until 2026-12-01; now 200, 400 and 16):
    # --vault-qps 100, --vault-burst 200, --workers 8.
    bucket = TokenBucket(100.0, 200)
    adapter = AdaptiveRate(bucket)
    transport = Transport(rate_limiter=bucket, rate_adapter=adapter, on_request=recorder)
    client = VaultClient(transport, settings, token=vault_server.root_token)
    workers = asyncio.Semaphore(8)
    try:

        async def read() -> bool:
            async with workers:
                while True:
                    try:
                        await client.kv_read(kv, "app", kv_version=2)
                        return True
                    except VaultThrottled:
                        continue  # the controllers requeue it; never seen in practice

        results = await asyncio.gather(*(read() for _ in range(300)))
        assert all(results)
        statuses = [status for op, status in recorder.calls if op == "kv_read"]
        rejected = statuses.count(429)
        print(
            f"\n300 reads under a 20/s quota: {len(statuses)} requests, {rejected} rejected "
            f"({100 * rejected / len(statuses):.1f} %), rate now {adapter.rate:.1f}/s, "
            f"{adapter.decreases} decreases"
        )
        assert statuses.count(200) == 300
        assert rejected <= 0.05 * len(statuses)
        assert adapter.throttled == rejected
        assert 0 < adapter.rate < 100.0
    finally:
        await transport.close()
        await root.delete(f"sys/quotas/rate-limit/{quota}")


async def test_revoke_lease_by_path_has_a_typed_outcome(
    root: VaultClient, transport: Transport, settings: ConnectionSettings
) -> None:
    """Login tokens are leases too (`auth/<mount>/login/<id>`): real leases without a database.

    The victims log in through their own AppRole mount, the worker (the operator's token)
    through another, so the worker never revokes its own lease.
    """
    policy = uid("pol")
    await root.write(f"sys/policies/acl/{policy}", {"policy": 'path "sys/nothing" {}'})
    worker_role = await make_approle(root, policies=[policy], token_ttl="1h")
    victims_role = await make_approle(root, token_ttl="1h")
    try:
        victims = [await approle_login(transport, settings, victims_role)() for _ in range(2)]
        prefix = f"auth/{victims_role.mount}/login"
        listed = await root.read(f"sys/leases/lookup/{prefix}", params={"list": "true"})
        lease_ids = [f"{prefix}/{k}" for k in (listed.data or {}).get("keys") or []]
        assert len(lease_ids) == 2
        worker = VaultClient(transport, settings)
        await worker.login_approle(worker_role.mount, worker_role.role_id, worker_role.secret_id)

        # The default policy grants renew and lookup, not revoke: denied, naming the path.
        denied = await worker.try_revoke_lease(lease_ids[0])
        assert denied.outcome is RevokeOutcome.PERMISSION_DENIED
        assert isinstance(denied.error, PermissionDenied)
        assert denied.error.capability == "update"
        assert denied.error.path == f"sys/leases/revoke/{lease_ids[0]}"

        # A policy written for the body form (revoke any lease) still works.
        await root.write(
            f"sys/policies/acl/{policy}",
            {"policy": 'path "sys/leases/revoke" { capabilities = ["update"] }'},
        )
        assert (await worker.try_revoke_lease(lease_ids[0])).outcome is RevokeOutcome.REVOKED

        # The least-privilege grant of docs/operations.md: revoke under one mount and role.
        await root.write(
            f"sys/policies/acl/{policy}",
            {"policy": f'path "sys/leases/revoke/{prefix}/*" {{ capabilities = ["update"] }}'},
        )
        assert (await worker.try_revoke_lease(lease_ids[1])).outcome is RevokeOutcome.REVOKED
        for victim in victims:
            with pytest.raises(PermissionDenied):
                await VaultClient(transport, settings, token=victim.client_token).lookup_self()

        # Gone leases: OpenBao answers success for a lease it no longer knows.
        again = await root.try_revoke_lease(lease_ids[0])
        unknown = await root.try_revoke_lease(f"{prefix}/nope")
        print(f"\nrevoke again: {again.outcome}, unknown lease: {unknown.outcome}")
        assert again.outcome in (RevokeOutcome.REVOKED, RevokeOutcome.LEASE_UNKNOWN)
        assert unknown.outcome in (RevokeOutcome.REVOKED, RevokeOutcome.LEASE_UNKNOWN)

        # Vault unreachable: transient, worth retrying.
        gone = VaultClient(
            transport, ConnectionSettings("http://127.0.0.1:9", timeout=5), token="x"
        )
        assert (await gone.try_revoke_lease(lease_ids[0])).outcome is RevokeOutcome.TRANSIENT
    finally:
        await root.delete(f"sys/auth/{worker_role.mount}")
        await root.delete(f"sys/auth/{victims_role.mount}")
        await root.delete(f"sys/policies/acl/{policy}")
