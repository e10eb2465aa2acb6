"""The workload: Vault data, VaultStaticSecrets, and an observer that sees Secrets arrive.

The same observer (a watch on the namespace's Secrets, in the bench process) times both the
operator and the floor, so the two numbers differ only in who does the work.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from .clients import Kube, Vault, bounded
from .setup import GROUP_PATH, OPERATOR_NAMESPACE, ROLE

CREATE_CONCURRENCY = 16


def vault_path(name: str) -> str:
    return f"bench/{name}"


def values(name: str, generation: int = 1) -> dict[str, str]:
    return {"username": f"user-{name}", "password": f"pw-{name}-{generation}"}


async def put_values(root: Vault, names: list[str], generation: int = 1) -> dict[str, float]:
    """Write each name's values; returns when each write completed (monotonic seconds)."""
    done: dict[str, float] = {}

    async def one(name: str) -> None:
        await root.call(
            "POST", f"secret/data/{vault_path(name)}", {"data": values(name, generation)}
        )
        done[name] = time.monotonic()

    await bounded(CREATE_CONCURRENCY, [one(n) for n in names])
    return done


def vss_body(name: str, refresh_after: str) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": name},
        "spec": {
            "vaultAuthRef": "default",
            "mount": "secret",
            "type": "kv-v2",
            "path": vault_path(name),
            "refreshAfter": refresh_after,
            "destination": {"name": name, "create": True},
        },
    }


async def create_auth(kube: Kube, namespace: str) -> None:
    body = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultAuth",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {
            "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
            "method": "kubernetes",
            "kubernetes": {"role": ROLE, "serviceAccount": "default"},
        },
    }
    await kube.request(
        "POST", f"{GROUP_PATH}/namespaces/{namespace}/vaultauths", body, ok=(201, 409)
    )


async def create_vss(
    kube: Kube, namespace: str, names: list[str], refresh_after: str
) -> dict[str, float]:
    """Create the VaultStaticSecrets at once (bounded concurrency); start time of each POST."""
    started: dict[str, float] = {}
    path = f"{GROUP_PATH}/namespaces/{namespace}/vaultstaticsecrets"

    async def one(name: str) -> None:
        started[name] = time.monotonic()
        await kube.request("POST", path, vss_body(name, refresh_after))

    await bounded(CREATE_CONCURRENCY, [one(n) for n in names])
    return started


async def patch_refresh(kube: Kube, namespace: str, names: list[str], refresh_after: str) -> None:
    patch = {"spec": {"refreshAfter": refresh_after}}
    base = f"{GROUP_PATH}/namespaces/{namespace}/vaultstaticsecrets"
    await bounded(
        CREATE_CONCURRENCY,
        [
            kube.request("PATCH", f"{base}/{n}", patch, content_type="application/merge-patch+json")
            for n in names
        ],
    )


async def patch_instant(kube: Kube, namespace: str, names: list[str]) -> None:
    patch = {"spec": {"refreshAfter": "1h", "syncConfig": {"instantUpdates": True}}}
    base = f"{GROUP_PATH}/namespaces/{namespace}/vaultstaticsecrets"
    await bounded(
        CREATE_CONCURRENCY,
        [
            kube.request("PATCH", f"{base}/{n}", patch, content_type="application/merge-patch+json")
            for n in names
        ],
    )


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {
        k: base64.b64decode(v).decode(errors="replace")
        for k, v in (secret.get("data") or {}).items()
    }


def matches(secret: dict[str, Any], expected: dict[str, str]) -> bool:
    data = _decoded(secret)
    return all(data.get(k) == v for k, v in expected.items())


@dataclass
class SecretObserver:
    """Watches one namespace's Secrets; records when each reaches its expected data."""

    kube: Kube
    namespace: str
    expected: dict[str, dict[str, str]] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/secrets"
        listed = await self.kube.request("GET", path)
        for item in listed.get("items", []):
            self._see(item)
        self._task = asyncio.create_task(self._run(path, listed["metadata"]["resourceVersion"]))

    async def _run(self, path: str, rv: str) -> None:
        async for event in self.kube.watch(path, rv):
            if event["type"] in ("ADDED", "MODIFIED"):
                self._see(event["object"])

    def _see(self, secret: dict[str, Any]) -> None:
        name = secret["metadata"]["name"]
        want = self.expected.get(name)
        if want is not None and name not in self.arrived and matches(secret, want):
            self.arrived[name] = time.monotonic()
            self._changed.set()

    def expect(self, name: str, data: dict[str, str]) -> None:
        """(Re)arm: the next matching version of the Secret counts as its arrival."""
        self.expected[name] = data
        self.arrived.pop(name, None)

    async def wait(self, names: list[str], within: float) -> dict[str, float]:
        deadline = time.monotonic() + within
        while True:
            missing = [n for n in names if n not in self.arrived]
            if not missing:
                return {n: self.arrived[n] for n in names}
            if self._task is not None and self._task.done():
                self._task.result()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{len(missing)} of {len(names)} Secrets in {self.namespace} not in sync "
                    f"after {within:.0f}s (e.g. {missing[:3]})"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 5))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def wrong_secrets(
    kube: Kube, namespace: str, expected: dict[str, dict[str, str]]
) -> list[str]:
    """Names whose Secret is missing or differs, from a fresh LIST (not the watch)."""
    listed = await kube.request("GET", f"/api/v1/namespaces/{namespace}/secrets")
    live = {s["metadata"]["name"]: s for s in listed.get("items", [])}
    return sorted(
        name for name, want in expected.items() if name not in live or not matches(live[name], want)
    )


async def clear_bench_namespaces(kube: Kube, prefix: str = "bench-") -> None:
    listed = await kube.request("GET", "/api/v1/namespaces")
    names = [
        ns["metadata"]["name"]
        for ns in listed.get("items", [])
        if ns["metadata"]["name"].startswith(prefix)
    ]
    await asyncio.gather(*(kube.delete_namespace(n) for n in names))
