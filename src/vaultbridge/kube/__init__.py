"""Thin async Kubernetes REST layer on aiohttp.

Objects are plain dicts; ``objects`` has typed accessors for the fields we read. Connection
settings come from ``load_config`` (kubeconfig parsing reused from ``lightkube.config``).
"""

from vaultbridge.kube.client import FIELD_MANAGER, KubeClient, ListResult, WatchEvent
from vaultbridge.kube.config import KubeConfig, load_config
from vaultbridge.kube.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    KubeConfigError,
    KubeError,
    KubeUnreachable,
    NotFound,
    ResourceExpired,
    TooManyRequests,
    Unauthorized,
)
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import Resource

__all__ = [
    "FIELD_MANAGER",
    "ApiError",
    "Conflict",
    "EventRecorder",
    "Forbidden",
    "Invalid",
    "KubeClient",
    "KubeConfig",
    "KubeConfigError",
    "KubeError",
    "KubeUnreachable",
    "ListResult",
    "NotFound",
    "Resource",
    "ResourceExpired",
    "TooManyRequests",
    "Unauthorized",
    "WatchEvent",
    "load_config",
]
