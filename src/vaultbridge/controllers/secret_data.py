"""A Secret's values as the operator handles them: base64 encoding, and the digests that let the
owned-Secret cache keep no values at all.

The owned-Secret informer's store keeps, per Secret, its key names and the HMAC of its values
— compared with `status.secretMAC` to decide whether to write, and with the HMAC of what a
reconciler is about to write to recognise its own write's event (engine/echoes.py) — never
the values. Secrets read directly from the API server
(`create: false` destinations, conflicts) still have their `data`; every function here takes
both shapes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from vaultbridge.engine.informer import strip_managed_fields
from vaultbridge.secrets.hmac import compute_mac


def encode_data(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode("ascii") for k, v in data.items()}


def decode_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The values of a Secret read from the API server (not of a digested cache entry)."""
    if secret is not None and DATA_MAC in secret:
        raise ValueError("a digested Secret has no values: compare with data_mac()")
    raw = (secret or {}).get("data") or {}
    return {k: base64.b64decode(v) for k, v in raw.items()}


#: In the owned-Secret cache a Secret's `data` is replaced by its key names and the HMAC of
#: its values (`digest_owned_secrets`, installed by operator.py as that informer's
#: transform): the values of every Secret the operator wrote do not stay in its memory, and
#: deciding whether to write needs only the comparison of two MACs.
DATA_KEYS = "vaultbridge:dataKeys"
DATA_MAC = "vaultbridge:dataMAC"


def digest_owned_secrets(mac_key: bytes) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def transform(obj: dict[str, Any]) -> dict[str, Any]:
        strip_managed_fields(obj)
        try:
            values = decode_data(obj)
        except ValueError:
            return obj  # not base64 (the API server never sends that): kept as it is
        obj.pop("data", None)
        obj[DATA_KEYS] = tuple(sorted(values))
        obj[DATA_MAC] = compute_mac(mac_key, values)
        return obj

    return transform


def data_keys(secret: Mapping[str, Any]) -> tuple[str, ...]:
    if DATA_MAC in secret:
        return tuple(secret[DATA_KEYS])
    return tuple(sorted(secret.get("data") or {}))


def data_mac(mac_key: bytes, secret: Mapping[str, Any]) -> str:
    """The HMAC of the Secret's values (as `status.secretMAC`), digested or not."""
    if DATA_MAC in secret:
        return str(secret[DATA_MAC])
    return compute_mac(mac_key, decode_data(secret))
