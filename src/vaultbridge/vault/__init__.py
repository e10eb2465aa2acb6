"""Thin typed async Vault/OpenBao client on the operator's shared aiohttp stack.

``Transport`` (one per process) → ``VaultClient`` (one identity on one connection) →
``ClientCache`` (one logged-in client per (auth, connection, service account)).
"""

from vaultbridge.vault.cache import ClientCache, TokenCheck
from vaultbridge.vault.client import (
    KVVersion,
    LeaseRevocation,
    RevokeOutcome,
    VaultClient,
    revoke_outcome,
)
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
    VaultThrottled,
    VaultTimeout,
    VaultTLSError,
    VaultUnreachable,
)
from vaultbridge.vault.models import AuthToken, HealthStatus, KVSecret, LeaseInfo, VaultResponse
from vaultbridge.vault.ratelimit import AdaptiveRate, TokenBucket

__all__ = [
    "AdaptiveRate",
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
    "LeaseRevocation",
    "NamespacesUnsupported",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestHook",
    "RevokeOutcome",
    "SealedOrUnavailable",
    "SecretVersionDeleted",
    "ServerError",
    "TokenBucket",
    "TokenCheck",
    "Transport",
    "VaultClient",
    "VaultError",
    "VaultResponse",
    "VaultTLSError",
    "VaultThrottled",
    "VaultTimeout",
    "VaultUnreachable",
    "revoke_outcome",
]
