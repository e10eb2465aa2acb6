"""Typed Vault errors, so controllers can turn every failure into a condition without parsing.

Each class carries a short ``reason`` usable verbatim as a Kubernetes condition reason. Messages
are built only from the HTTP status, the request path and Vault's own ``errors`` strings — never
from a token, a request body or response ``data``, so an exception can be logged and put into an
event as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

# Vault's error strings are short; a misbehaving proxy may return anything, so we bound what we
# carry around (it ends up in status conditions, which have a size limit).
_MAX_ERROR_CHARS = 300
_MAX_ERRORS = 5


class VaultError(Exception):
    """Anything that went wrong talking to Vault; subclasses say what exactly."""

    reason: ClassVar[str] = "VaultError"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Sequence[str] = (),
        path: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.status = status
        self.errors: list[str] = [_tidy(e) for e in list(errors)[:_MAX_ERRORS]]
        self.path = path
        self.operation = operation
        super().__init__(self._compose(message))

    def _compose(self, message: str) -> str:
        parts = [message]
        if self.operation:
            parts.append(f"operation={self.operation}")
        if self.path is not None:
            parts.append(f"path={self.path}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        text = ", ".join(parts)
        if self.errors:
            text += ": " + "; ".join(self.errors)
        return text


class InvalidRequest(VaultError):
    """Vault rejected the request as malformed (400), or we refused to send it at all."""

    reason = "VaultInvalidRequest"


class NamespacesUnsupported(InvalidRequest):
    """A Vault namespace was asked for, but the server has no namespaces: we refuse to send it.

    HashiCorp Vault Community Edition ignores `X-Vault-Namespace` altogether, so a namespaced
    login or read would silently happen in the root namespace, with the root namespace's roles
    and data. Namespaces exist in Vault Enterprise and OpenBao (>= 2.3).
    """

    reason = "VaultNamespacesUnsupported"


class InvalidPath(InvalidRequest):
    """A mount or path failed local validation (``..``, empty segments, leading ``/``).

    Raised before any byte is sent: defence in depth against a user-supplied path escaping the
    mount the path guard approved.
    """

    reason = "VaultInvalidPath"


class PermissionDenied(VaultError):
    """403: the token lacks a policy for the path, or the token itself is invalid or revoked.

    Vault answers 403 for both; ``ClientCache.check_denied`` tells them apart with one
    ``lookup-self`` (no login). ``capability`` is the policy capability the request needed
    (``read``, ``update``, ``delete``, ``list``; see ``capability_for``), so the message names
    what a policy must grant on ``path``.
    """

    reason = "VaultPermissionDenied"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Sequence[str] = (),
        path: str | None = None,
        operation: str | None = None,
        capability: str | None = None,
    ) -> None:
        self.capability = capability
        super().__init__(message, status=status, errors=errors, path=path, operation=operation)

    def _compose(self, message: str) -> str:
        text = super()._compose(message)
        if self.capability and self.path is not None:
            text += f" (a policy must grant {self.capability!r} on {self.path!r})"
        return text


class NotFound(VaultError):
    """404: nothing at the path (Vault KV answers 404 for missing secrets, with no errors)."""

    reason = "VaultNotFound"


class SecretVersionDeleted(NotFound):
    """404 with data: the requested kv-v2 version exists but is soft-deleted or destroyed.

    ``version_metadata`` is the (non-secret) kv-v2 version metadata Vault returned, with
    ``deletion_time`` and ``destroyed``.
    """

    reason = "VaultSecretVersionDeleted"

    def __init__(
        self,
        message: str,
        *,
        version_metadata: Mapping[str, Any],
        status: int | None = None,
        errors: Sequence[str] = (),
        path: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.version_metadata: dict[str, Any] = dict(version_metadata)
        super().__init__(message, status=status, errors=errors, path=path, operation=operation)

    @property
    def destroyed(self) -> bool:
        return bool(self.version_metadata.get("destroyed"))

    @property
    def version(self) -> int | None:
        v = self.version_metadata.get("version")
        return v if isinstance(v, int) else None


class VaultThrottled(VaultError):
    """429: a Vault rate-limit quota rejected the request, and kept rejecting its retries.

    Not a failure of the object that sent it: Vault asks the whole operator to slow down
    (``ratelimit.AdaptiveRate`` lowers the global rate on every 429). Controllers requeue the
    object after ``retry_after`` (Vault's ``Retry-After`` when it sent one, else None) without
    a failure condition or a Warning event.
    """

    reason = "VaultThrottled"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Sequence[str] = (),
        path: str | None = None,
        operation: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, errors=errors, path=path, operation=operation)


RateLimited = VaultThrottled
"""The former name of ``VaultThrottled``."""


class SealedOrUnavailable(VaultError):
    """503 (sealed, or no active node) or a gateway in front of Vault reporting it down."""

    reason = "VaultSealedOrUnavailable"


class ServerError(VaultError):
    """5xx other than unavailability: an internal error inside Vault or a plugin."""

    reason = "VaultServerError"


class VaultUnreachable(VaultError):
    """No HTTP answer at all: connection refused or reset, DNS failure."""

    reason = "VaultUnreachable"


class VaultTLSError(VaultUnreachable):
    """The TLS handshake failed (untrusted CA, hostname mismatch, protocol error)."""

    reason = "VaultTLSError"


class VaultTimeout(VaultUnreachable):
    """The request did not complete within the connection's timeout."""

    reason = "VaultTimeout"


class BadResponse(VaultError):
    """Vault (or something pretending to be it) answered with non-JSON or an unexpected shape."""

    reason = "VaultBadResponse"


def _tidy(error: object) -> str:
    """Collapse Vault's multi-line ``1 error occurred:\\n\\t* ...`` strings into one line."""
    text = " ".join(str(error).split())
    if text.startswith("1 error occurred: * "):
        text = text[len("1 error occurred: * ") :]
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text


def errors_from_body(body: object) -> list[str]:
    """The ``errors`` strings of a Vault error body; nothing else of the body is ever kept."""
    if isinstance(body, Mapping):
        raw = body.get("errors")
        if isinstance(raw, list):
            return [e for e in raw if isinstance(e, str)]
    return []


_CAPABILITIES = {
    "GET": "read",
    "LIST": "list",
    "DELETE": "delete",
    "PUT": "update",
    "POST": "update",
}


def capability_for(method: str | None) -> str | None:
    """The policy capability a request with this HTTP method needs (Vault maps PUT/POST to
    ``create`` on a path that does not exist yet and to ``update`` otherwise; ``update`` is
    what a policy for writes to existing paths, lease revocation and logins-by-path needs)."""
    return _CAPABILITIES.get(method.upper()) if method else None


def classify(
    status: int,
    body: object,
    *,
    path: str | None = None,
    operation: str | None = None,
    method: str | None = None,
    retry_after: float | None = None,
) -> VaultError:
    """Map a non-2xx answer to the typed error a controller acts on.

    ``method`` (the HTTP method) gives a 403 its ``capability``; ``retry_after`` (Vault's
    ``Retry-After`` header) rides on a 429. ``body`` is the parsed JSON (or None when it was
    absent or not JSON). A 404 that carries a
    kv-v2 ``metadata`` block with a deletion time or ``destroyed`` is a deleted version, not a
    missing secret: the data is gone but the secret (and its later versions) may not be.
    """
    errors = errors_from_body(body)
    kw: dict[str, Any] = {"status": status, "errors": errors, "path": path, "operation": operation}
    if status == 400:
        return InvalidRequest("invalid request", **kw)
    if status == 403:
        return PermissionDenied("permission denied", capability=capability_for(method), **kw)
    if status == 404:
        meta = _deleted_version_metadata(body)
        if meta is not None:
            return SecretVersionDeleted("secret version deleted", version_metadata=meta, **kw)
        return NotFound("not found", **kw)
    if status == 429:
        return VaultThrottled("rate limited by Vault", retry_after=retry_after, **kw)
    if status in (502, 503, 504):
        sealed = any("sealed" in e.lower() for e in errors)
        return SealedOrUnavailable("vault is sealed" if sealed else "vault unavailable", **kw)
    if 500 <= status < 600:
        return ServerError("vault server error", **kw)
    if 400 <= status < 500:
        return InvalidRequest(f"request rejected ({status})", **kw)
    if 300 <= status < 400:
        return BadResponse(
            f"redirect ({status}) not followed: the token is never sent to another address",
            **kw,
        )
    return BadResponse(f"unexpected status {status}", **kw)


def _deleted_version_metadata(body: object) -> dict[str, Any] | None:
    if not isinstance(body, Mapping):
        return None
    data = body.get("data")
    if not isinstance(data, Mapping):
        return None
    meta = data.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    if meta.get("deletion_time") or meta.get("destroyed"):
        return dict(meta)
    return None
