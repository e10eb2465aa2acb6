"""Raw aiohttp clients for the Kubernetes API and OpenBao, shared by the harness and the floor.

Deliberately not `vaultbridge.kube` / `vaultbridge.vault`: the floor must measure the
irreducible cost of the work, and the harness must not depend on the code it measures.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

Obj = dict[str, Any]


class HttpError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        # Bodies here are API error messages, never secret data (reads that succeed return).
        super().__init__(f"{method} {url} -> {status}: {body[:300]}")
        self.status = status


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class Kube:
    """Just enough of the Kubernetes REST API: JSON requests and a line-delimited watch."""

    def __init__(self, server: str, ctx: ssl.SSLContext, limit: int = 64) -> None:
        self.server = server
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=limit),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (200, 201),
        within: float = 60,
    ) -> Obj:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(30):
            async with self._session.request(
                method,
                self.server + path,
                data=data,
                headers={"Content-Type": content_type, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=within),
            ) as resp:
                raw = await resp.read()
                # 429: a CRD's storage is still initialising right after it was installed.
                if resp.status == 429 and attempt < 29:
                    await asyncio.sleep(1)
                    continue
                if resp.status not in ok:
                    raise HttpError(method, path, resp.status, raw.decode(errors="replace"))
                return json.loads(raw) if raw else {}
        raise AssertionError("unreachable")

    async def status(self, method: str, path: str, body: Any = None) -> int:
        """Status code only (for existence checks and idempotent deletes)."""
        data = json.dumps(body).encode() if body is not None else None
        async with self._session.request(
            method,
            self.server + path,
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=60),
        ) as resp:
            await resp.read()
            return resp.status

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[Obj]:
        """Watch events from `resource_version` on; reconnects when the server ends a watch."""
        rv = resource_version
        while True:
            sep = "&" if "?" in path else "?"
            url = (
                f"{self.server}{path}{sep}watch=1&resourceVersion={rv}"
                "&allowWatchBookmarks=true&timeoutSeconds=900"
            )
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
            ) as resp:
                if resp.status != 200:
                    raise HttpError("WATCH", path, resp.status, (await resp.text())[:300])
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise HttpError("WATCH", path, int(obj.get("code") or 0), str(obj))
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if event.get("type") != "BOOKMARK":
                        yield event

    async def wait_service_account(self, namespace: str, within: float = 60) -> None:
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
        deadline = asyncio.get_running_loop().time() + within
        while await self.status("GET", path) != 200:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"ServiceAccount default in {namespace} never appeared")
            await asyncio.sleep(0.1)

    async def ensure_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.request("POST", "/api/v1/namespaces", body, ok=(201, 409))
        await self.wait_service_account(name)
        # The operator mints tokens only for ServiceAccounts that opted in (docs/security.md).
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{name}/serviceaccounts/default",
            {"metadata": {"annotations": {"vaultbridge.dev/vault-login": "true"}}},
            content_type="application/merge-patch+json",
        )

    async def delete_namespace(self, name: str, within: float = 600) -> None:
        """Delete and wait until it is gone, so no object of it reaches the next phase."""
        path = f"/api/v1/namespaces/{name}"
        await self.request("DELETE", path, ok=(200, 202, 404))
        deadline = asyncio.get_running_loop().time() + within
        while await self.status("GET", path) != 404:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"namespace {name} still terminating after {within}s")
            await asyncio.sleep(0.5)


class Vault:
    """Token-authenticated OpenBao calls."""

    def __init__(self, addr: str, token: str = "", limit: int = 64) -> None:
        self.addr = addr
        self.token = token
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def close(self) -> None:
        await self._session.close()

    async def call(self, method: str, path: str, body: Any = None) -> Obj:
        headers = {"X-Vault-Token": self.token} if self.token else {}
        async with self._session.request(
            method, f"{self.addr}/v1/{path}", json=body, headers=headers
        ) as resp:
            raw = await resp.read()
            if resp.status not in (200, 204):
                raise HttpError(method, path, resp.status, raw.decode(errors="replace"))
            return json.loads(raw) if raw else {}

    async def login_kubernetes(self, role: str, jwt: str) -> str:
        resp = await self.call("POST", "auth/kubernetes/login", {"role": role, "jwt": jwt})
        self.token = str(resp["auth"]["client_token"])
        return self.token


async def bounded(concurrency: int, jobs: list[Any]) -> list[Any]:
    """Run coroutines with at most `concurrency` in flight; results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> Any:
        async with sem:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))
