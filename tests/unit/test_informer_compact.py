"""`compact`: what an informer stores is the same JSON value with shared strings, and smaller."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

from vaultbridge.engine.informer import compact


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
