"""Parse one Vault/OpenBao JSON audit entry into the little the operator needs from it.

An entry is a JSON object per line (file and TCP socket devices) or per datagram (UDP), written
after the device's optional ``prefix``. Only the request path, the operation, the mount type
(Vault 1.16+ and OpenBao write ``request.mount_type``; older servers omit it), the namespace
and whether the request failed are read. Every value in an entry is HMAC'd by Vault and is
ignored: an entry never carries data to the operator, it only says "path P was written".

Vault writes two entries per request: ``type: request`` before it runs and ``type: response``
after. Only responses count: a request entry does not say whether the write succeeded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .index import Operation, normalise

#: Largest entry read (bytes). A KV write's response entry is a few KiB; anything much larger is
#: not a KV change (or is forged) and is dropped before it is parsed.
MAX_ENTRY_BYTES = 64 * 1024

_OPERATIONS: dict[str, Operation] = {
    "create": "write",
    "update": "write",
    "patch": "write",
    "delete": "delete",
}


class MalformedEntry(ValueError):
    """Not a JSON audit entry (garbage, truncated, wrong shape). Never carries the input."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one response entry says about a request."""

    path: str
    """Request path relative to its Vault namespace, normalised (``secret/data/app``)."""
    operation: str
    """Vault's operation name: read, list, create, update, patch, delete, ..."""
    failed: bool
    """True when the response carries an error (permission denied, invalid request, ...)."""
    mount_type: str | None = None
    namespace: str = ""

    @property
    def change(self) -> Operation | None:
        """``write``/``delete`` when this is a successful request that may change data."""
        if self.failed:
            return None
        if self.mount_type not in (None, "", "kv", "system"):
            return None  # e.g. a database or pki engine: never a KV change
        return _OPERATIONS.get(self.operation)


def parse_entry(raw: bytes | str) -> AuditEntry | None:
    """The response entry in ``raw``, or None for a well-formed entry that is not a response.

    Raises ``MalformedEntry`` for anything that is not a JSON audit entry.
    """
    if len(raw) > MAX_ENTRY_BYTES:
        raise MalformedEntry("entry too large")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEntry("not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedEntry("not a JSON object")
    kind = doc.get("type")
    if not isinstance(kind, str):
        raise MalformedEntry("no entry type")
    if kind != "response":
        return None
    request = doc.get("request")
    if not isinstance(request, dict):
        raise MalformedEntry("no request object")
    path = request.get("path")
    operation = request.get("operation")
    if not isinstance(path, str) or not isinstance(operation, str):
        raise MalformedEntry("no request path or operation")
    mount_type = request.get("mount_type")
    namespace = request.get("namespace")
    ns_path = namespace.get("path") if isinstance(namespace, dict) else None
    error = doc.get("error")
    return AuditEntry(
        path=normalise(path),
        operation=operation,
        failed=bool(error),
        mount_type=mount_type if isinstance(mount_type, str) else None,
        namespace=normalise(ns_path) if isinstance(ns_path, str) else "",
    )
