"""Read and write etcd directly, below the API server, for fault-injection tests.

The tests use it to change a custom resource while the API server is down (the change an
operator must pick up when its watches come back) and to check what lands in etcd. Custom
resources are stored as JSON under `/registry/<group>/<plural>/<namespace>/<name>`; etcd's
v3 JSON gateway (`/v3/kv/...`, keys and values base64) needs no extra client.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from .environment import DevState


def _call(state: DevState, op: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310 - loopback URL from the state file
        f"{state.etcd_url}/v3/kv/{op}", data=json.dumps(body).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        parsed = json.loads(resp.read())
    return parsed if isinstance(parsed, dict) else {}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def custom_resource_key(group: str, plural: str, namespace: str, name: str) -> str:
    return f"/registry/{group}/{plural}/{namespace}/{name}"


def get_raw(state: DevState, key: str) -> bytes | None:
    kvs = _call(state, "range", {"key": _b64(key.encode())}).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]) if kvs else None


def get_json(state: DevState, key: str) -> dict[str, Any] | None:
    raw = get_raw(state, key)
    if raw is None:
        return None
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, dict) else None


def put_json(state: DevState, key: str, obj: dict[str, Any]) -> None:
    """Store `obj` as the JSON value of `key` (custom resources only: built-in kinds are
    protobuf-encoded, and Secrets are encrypted at rest by the dev environment)."""
    _call(state, "put", {"key": _b64(key.encode()), "value": _b64(json.dumps(obj).encode())})
