"""The floor: the irreducible work of syncing VaultStaticSecrets, on raw aiohttp.

For each VaultStaticSecret that appears in one namespace: one Vault read, one Secret create
and one status write; no engine, no checks, no models. It runs as its own process, with the
same number of workers as the operator, so the two are measured the same way (wall time
seen by the same observer, CPU from /proc).

    python -m bench.floor --api URL --ca CA --cert CERT --key KEY --vault-addr ADDR \
        --namespace NS --role ROLE --workers 8

Prints `ready` once it watches, then works until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import signal
import sys
from pathlib import Path
from typing import Any

from bench.clients import Kube, Vault, tls_context

GROUP = "/apis/vaultbridge.dev/v1beta1"


async def _service_account_token(kube: Kube, namespace: str) -> str:
    resp = await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/default/token",
        # The Vault-specific audience, as the operator requests it (the bench role demands it).
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": ["vault"]},
        },
    )
    return str(resp["status"]["token"])


async def _sync_one(kube: Kube, vault: Vault, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    spec = obj["spec"]
    ns, name = meta["namespace"], meta["name"]
    read = await vault.call("GET", f"{spec['mount']}/data/{spec['path']}")
    values = read["data"]["data"]
    dest = spec["destination"]["name"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": dest, "namespace": ns},
        "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in values.items()},
    }
    await kube.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
    status = {
        "status": {
            "lastGeneration": meta.get("generation", 1),
            "destinationName": dest,
            "conditions": [
                {
                    "type": "SecretSynced",
                    "status": "True",
                    "reason": "Synced",
                    "message": "synced",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    await kube.request(
        "PATCH",
        f"{GROUP}/namespaces/{ns}/vaultstaticsecrets/{name}/status",
        status,
        content_type="application/merge-patch+json",
    )


async def run(args: argparse.Namespace) -> None:
    kube = Kube(args.api, tls_context(Path(args.ca), Path(args.cert), Path(args.key)))
    vault = Vault(args.vault_addr)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        path = f"{GROUP}/namespaces/{args.namespace}/vaultstaticsecrets"
        listed = await kube.request("GET", path)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for item in listed.get("items", []):
            queue.put_nowait(item)

        async def watch() -> None:
            async for event in kube.watch(path, listed["metadata"]["resourceVersion"]):
                if event["type"] == "ADDED":
                    queue.put_nowait(event["object"])

        async def worker() -> None:
            while True:
                obj = await queue.get()
                try:
                    await _sync_one(kube, vault, obj)
                except Exception as exc:  # keep working; the harness notices missing Secrets
                    print(f"floor: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

        # The login happens after `ready`: the operator's first login also falls inside the
        # timed window (it logs in on the first reconcile that needs the identity).
        login_jwt = await _service_account_token(kube, args.namespace)
        tasks = [asyncio.create_task(watch())]
        print("ready", flush=True)
        await vault.login_kubernetes(args.role, login_jwt)
        tasks += [asyncio.create_task(worker()) for _ in range(args.workers)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await kube.close()
        await vault.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    for flag in ("--api", "--ca", "--cert", "--key", "--vault-addr", "--namespace", "--role"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--workers", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
