"""Thin typed async Vault/OpenBao client on the operator's shared aiohttp stack.

``Transport`` (one per process) → ``VaultClient`` (one identity on one connection) →
``ClientCache`` (one logged-in client per (auth, connection, service account)).
"""

from vaultbridge.vault.cache import ClientCache
from vaultbridge.vault.client import KVVersion, VaultClient
from vaultbridge.vault.connection import ConnectionSettings, RequestHook, Transport
from vaultbridge.vault.errors import (
    BadResponse,
    InvalidPath,
    InvalidRequest,
    NamespacesUnsupported,
    NotFound,
    PermissionDenied,
    RateLimited,
    SealedOrUnavailable,
    SecretVersionDeleted,
    ServerError,
    VaultError,
    VaultTimeout,
    VaultTLSError,
    VaultUnreachable,
)
from vaultbridge.vault.models import AuthToken, HealthStatus, KVSecret, LeaseInfo, VaultResponse
from vaultbridge.vault.ratelimit import TokenBucket

__all__ = [
    "AuthToken",
    "BadResponse",
    "ClientCache",
    "ConnectionSettings",
    "HealthStatus",
    "InvalidPath",
    "InvalidRequest",
    "KVSecret",
    "KVVersion",
    "LeaseInfo",
    "NamespacesUnsupported",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestHook",
    "SealedOrUnavailable",
    "SecretVersionDeleted",
    "ServerError",
    "TokenBucket",
    "Transport",
    "VaultClient",
    "VaultError",
    "VaultResponse",
    "VaultTLSError",
    "VaultTimeout",
    "VaultUnreachable",
]
