"""`compact`: what an informer stores is the same JSON value with shared strings, and smaller;
`compact_like`: an update is stored walking only what changed."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any, cast

from vaultbridge.api.kinds import VAULT_STATIC_SECRETS
from vaultbridge.engine.informer import Informer, compact, compact_like
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.client import KubeClient


def _vss(i: int) -> dict[str, Any]:
    name = f"s{i:05d}"
    text = json.dumps(
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultStaticSecret",
            "metadata": {
                "creationTimestamp": "2026-11-30T19:41:50Z",
                "generation": 1,
                "name": name,
                "namespace": "bench",
                "resourceVersion": str(100000 + i),
                "uid": f"5f1c7a8e-2b7d-4a36-9d1a-{i:012d}",
            },
            "spec": {
                "vaultAuthRef": "default",
                "mount": "secret",
                "type": "kv-v2",
                "path": f"bench/{name}",
                "refreshAfter": "1h",
                "destination": {"name": name, "create": True, "labels": {}},
            },
            "status": {
                "observedGeneration": 1,
                "secretMAC": "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXhmb28=",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Synced",
                        "message": "secret synced",
                        "lastTransitionTime": "2026-11-30T19:42:01Z",
                    }
                ],
                "long": "x" * 100,
                "tuple": ("a", "b"),
                "nothing": None,
                "ratio": 1.5,
            },
        }
    )
    return dict(json.loads(text))


def test_compact_returns_an_equal_value() -> None:
    raw = _vss(1)
    raw["status"]["tuple"] = ("a", ["b", {"c": "d"}])
    out = compact(raw)
    assert out == raw
    assert type(out["status"]["tuple"]) is tuple
    assert compact("plain") == "plain" and compact(3) == 3 and compact(None) is None


def test_compact_shares_keys_and_short_values_across_objects() -> None:
    a, b = compact(_vss(1)), compact(_vss(2))
    key_a = next(k for k in a["metadata"] if k == "creationTimestamp")
    key_b = next(k for k in b["metadata"] if k == "creationTimestamp")
    assert key_a is key_b
    assert a["status"]["conditions"][0]["reason"] is b["status"]["conditions"][0]["reason"]
    assert a["apiVersion"] is b["apiVersion"]
    # Long strings are left alone (no point in a table lookup for a certificate).
    assert a["status"]["long"] == b["status"]["long"]


def test_compact_halves_what_a_store_of_objects_holds() -> None:
    """Counted in bytes (tracemalloc), never in time."""

    def held(transform: Any) -> int:
        tracemalloc.start()
        try:
            keep = [transform(_vss(i)) for i in range(500)]
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(keep) == 500
        return size

    plain, compacted = held(lambda o: o), held(compact)
    assert compacted < 0.65 * plain


def _nodes(value: Any) -> list[Any]:
    """Every dict, list and tuple of a JSON value (the nodes `compact` walks)."""
    out: list[Any] = []
    if isinstance(value, dict):
        out.append(value)
        for v in value.values():
            out += _nodes(v)
    elif isinstance(value, list | tuple):
        out.append(value)
        for v in value:
            out += _nodes(v)
    return out


def _walked(result: Any, old: Any) -> int:
    """Nodes of `result` that are new (not taken over from `old`): the nodes built."""
    kept = {id(n) for n in _nodes(old)}
    return sum(1 for n in _nodes(result) if id(n) not in kept)


def _status_echo(stored: dict[str, Any]) -> dict[str, Any]:
    """The watch event of our own status write, as decoded: a fresh copy with a new status
    and resourceVersion, everything else as it was."""
    echo = json.loads(json.dumps(stored))
    echo["metadata"]["resourceVersion"] = "200001"
    echo["status"]["conditions"][0]["lastTransitionTime"] = "2026-11-30T23:00:00Z"
    echo["status"]["secretMAC"] = "bmV3"
    return dict(echo)


def test_an_update_walks_only_what_changed() -> None:
    """CPU (issue #13): our own status write comes back as a MODIFIED event; stored against
    the version the store holds, its spec and unchanged metadata are taken over as they are,
    counted in nodes built, never in time."""
    stored = compact(_vss(1))
    echo = _status_echo(stored)
    result = compact_like(echo, stored)
    assert result == compact(echo) == echo
    assert result["spec"] is stored["spec"]
    assert result["status"]["tuple"] is stored["status"]["tuple"]
    full, reused = _walked(compact(echo), stored), _walked(result, stored)
    # compact: root, metadata, spec, destination, labels, status, conditions, condition,
    # tuple = 9; compact_like: root, metadata, status, conditions, condition = 5.
    assert (full, reused) == (9, 5)
    # Strings are still the interned ones.
    assert result["metadata"]["namespace"] is stored["metadata"]["namespace"]


def test_compact_like_keeps_json_types_apart() -> None:
    """`True == 1 == 1.0` in Python, not in JSON: a subtree whose value changed type only is
    not taken over, so the store always holds what the API server sent."""
    stored = compact(_vss(1))
    stored["spec"]["destination"]["create"] = True
    stored["spec"]["extra"] = {"n": 1, "z": 0.0}
    new = json.loads(json.dumps(stored))
    new["spec"]["destination"]["create"] = 1
    new["spec"]["extra"] = {"n": 1.0, "z": -0.0}
    result = compact_like(new, stored)
    assert result["spec"] is not stored["spec"]
    assert type(result["spec"]["destination"]["create"]) is int
    assert type(result["spec"]["extra"]["n"]) is float
    assert str(result["spec"]["extra"]["z"]) == "-0.0"
    # A key that went away goes away; one that appears appears.
    del new["spec"]["extra"]
    new["spec"]["added"] = ["x"]
    result = compact_like(new, stored)
    assert "extra" not in result["spec"] and result["spec"]["added"] == ["x"]


async def test_the_informer_stores_an_update_against_the_previous_version() -> None:
    """Through the informer: the stored object after our status echo shares the previous
    version's spec, and equals the event's object."""
    informer = Informer(cast(KubeClient, None), VAULT_STATIC_SECRETS)
    first = _vss(1)
    informer._apply("ADDED", first)
    stored = informer.store.get(ObjectKey("bench", "s00001"))
    assert stored is not None
    echo = _status_echo(stored)
    informer._apply("MODIFIED", json.loads(json.dumps(echo)))
    now = informer.store.get(ObjectKey("bench", "s00001"))
    assert now == echo
    assert now is not None and now["spec"] is stored["spec"]
    assert informer.resource_version == "200001"
