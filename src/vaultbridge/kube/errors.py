"""Typed errors of the Kubernetes REST layer.

Callers branch on the class (``except NotFound``), never on message text. Messages carry the
verb, the path and what the API server said; they never carry request bodies, because bodies
can hold Secret data or tokens.
"""

from __future__ import annotations

from typing import Any

# The API server's own messages are useful for diagnosis but unbounded in size; a Status
# message longer than this is cut so that a pathological response cannot flood the logs.
_MAX_MESSAGE = 1024


class KubeError(Exception):
    """Base class of every error raised by ``vaultbridge.kube``."""


class KubeConfigError(KubeError):
    """The kubeconfig / in-cluster configuration is missing or unusable."""


class KubeUnreachable(KubeError):
    """The API server could not be reached or the connection broke mid-request."""


class ApiError(KubeError):
    """The API server answered with an error ``Status``.

    ``status`` is the HTTP code, ``reason`` the machine-readable ``Status.reason`` (e.g.
    ``"AlreadyExists"``), ``message`` the server's human text and ``details`` the
    ``Status.details`` object (kind, name, causes) as a plain dict.
    """

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message[:_MAX_MESSAGE]
        self.details: dict[str, Any] = details or {}
        super().__init__(f"{status} {reason}: {self.message}" if reason else f"{status}: {message}")


class Unauthorized(ApiError):
    """401: the credentials were rejected."""


class Forbidden(ApiError):
    """403: RBAC denies the request."""


class NotFound(ApiError):
    """404: the object (or the resource type) does not exist."""


class Conflict(ApiError):
    """409: already exists, or a resourceVersion / uid precondition failed."""


class ResourceExpired(ApiError):
    """410 Gone: the requested resourceVersion is older than the server keeps; relist."""


class Invalid(ApiError):
    """422: the object failed validation."""


class TooManyRequests(ApiError):
    """429: throttled (API priority and fairness) or storage still initialising."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: ResourceExpired,
    422: Invalid,
    429: TooManyRequests,
}


def api_error_from_status(status: int, body: Any) -> ApiError:
    """Build the typed error for HTTP ``status`` from a decoded ``Status`` object (or junk)."""
    reason = ""
    message = ""
    details: dict[str, Any] | None = None
    if isinstance(body, dict):
        code = body.get("code")
        if isinstance(code, int) and code >= 400:
            # Watch ERROR events carry the real code inside the Status, not in the HTTP status.
            status = code
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
        raw_details = body.get("details")
        if isinstance(raw_details, dict):
            details = raw_details
    cls = _BY_STATUS.get(status, ApiError)
    return cls(status, reason, message, details)
