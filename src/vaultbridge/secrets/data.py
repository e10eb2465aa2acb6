"""Turn Vault response data into Kubernetes Secret data, merge several sources, check the size.

Conversion rules (`vault_data_to_secret_data`):

- every top-level key becomes a Secret key;
- a string value is stored as its UTF-8 bytes;
- any other JSON value (number, bool, null, list, object) is stored as compact JSON
  (`separators=(",", ":")`, object keys sorted, non-ASCII kept as UTF-8), so `true` becomes
  `b"true"`, `null` becomes `b"null"`, `{"b": 1, "a": [1]}` becomes `b'{"a":[1],"b":1}'`;
- `_raw` holds the compact JSON of the whole response data (`raw` when given, for example a
  KV v2 response with both `data` and `metadata`, else `data`), unless `exclude_raw`.

Sorting object keys makes the bytes, and so the HMAC kept in status, independent of the
order in which Vault happened to send the keys.

Multi-source merge (`merge_sources`): each source's keys are written as `prefix + key`. Each
source's `_raw` is an ordinary key of that source, so it lands under `prefix + "_raw"`; two
sources with the same prefix (for example both empty) therefore collide on `_raw` unless
`exclude_raw` is set. Any key produced twice is a `KeyCollisionError`; nothing is silently
overwritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vaultbridge.secrets.errors import (
    InvalidKeyError,
    KeyCollisionError,
    SecretTooLargeError,
    TransformationError,
)

RAW_KEY = "_raw"

#: Kubernetes rejects Secrets whose data (keys plus values) exceeds 1 MiB (1,048,576 bytes).
#: We stop earlier, at 1,000,000 bytes of data, to leave room for the rest of the object
#: (metadata, labels, annotations, managedFields) within etcd's request limit and to fail
#: with our own clear message instead of an API server rejection.
MAX_SECRET_DATA_BYTES = 1_000_000

MAX_KEY_LENGTH = 253
_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")


def validate_key(key: str) -> None:
    """Raise `InvalidKeyError` unless `key` is accepted by Kubernetes as a Secret data key."""
    if not isinstance(key, str):
        raise InvalidKeyError(repr(key), "keys must be strings")
    if not key:
        raise InvalidKeyError(key, "it is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(key, f"it is longer than {MAX_KEY_LENGTH} characters")
    if not _KEY_RE.fullmatch(key):
        raise InvalidKeyError(
            key, "only letters, digits, '-', '_' and '.' are allowed (regex [-._a-zA-Z0-9]+)"
        )
    if key in {".", ".."} or key.startswith(".."):
        raise InvalidKeyError(key, "it must not be '.' or '..' nor start with '..'")


def to_json_bytes(value: Any) -> bytes:
    """Compact, key-sorted JSON of a Vault value, as UTF-8 bytes."""
    try:
        text = json.dumps(
            value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        # The json module's messages name types and float specials, not string content.
        raise TransformationError(f"the Vault data cannot be encoded as JSON: {exc}") from None
    return text.encode("utf-8")


def value_to_bytes(value: Any) -> bytes:
    """One Vault value as Secret bytes: strings as UTF-8, anything else as compact JSON."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return to_json_bytes(value)


def vault_data_to_secret_data(
    data: Mapping[str, Any],
    *,
    raw: Mapping[str, Any] | None = None,
    exclude_raw: bool = False,
) -> dict[str, bytes]:
    """Secret data for one Vault response (see the module docstring for the rules)."""
    result: dict[str, bytes] = {}
    for key, value in data.items():
        validate_key(key)
        result[key] = value_to_bytes(value)
    if not exclude_raw:
        if RAW_KEY in result:
            raise KeyCollisionError(
                RAW_KEY,
                0,
                0,
                hint="the Vault data has its own '_raw' key, which collides with the generated "
                "'_raw'; set excludeRaw: true to keep the Vault one",
            )
        result[RAW_KEY] = to_json_bytes(dict(raw if raw is not None else data))
    return result


def merge_sources(sources: Sequence[tuple[str, Mapping[str, bytes]]]) -> dict[str, bytes]:
    """Merge (prefix, data) pairs into one mapping of `prefix + key` to value.

    Source indexes in errors are 0-based positions in `sources`.
    """
    merged: dict[str, bytes] = {}
    origin: dict[str, int] = {}
    for index, (prefix, data) in enumerate(sources):
        for key, value in data.items():
            full = prefix + key
            validate_key(full)
            if full in merged:
                raise KeyCollisionError(
                    full,
                    origin[full],
                    index,
                    hint="give the sources distinct prefixes"
                    + (" or set excludeRaw: true" if key == RAW_KEY else ""),
                )
            merged[full] = value
            origin[full] = index
    return merged


def secret_data_size(data: Mapping[str, bytes]) -> int:
    """Bytes Kubernetes counts against the Secret limit: UTF-8 keys plus raw values."""
    return sum(len(key.encode("utf-8")) + len(value) for key, value in data.items())


def check_size(data: Mapping[str, bytes], limit: int = MAX_SECRET_DATA_BYTES) -> int:
    """Return the data size, or raise `SecretTooLargeError` when it is over `limit`."""
    size = secret_data_size(data)
    if size > limit:
        raise SecretTooLargeError(size, limit)
    return size
