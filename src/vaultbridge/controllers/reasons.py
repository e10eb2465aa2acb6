# ruff: noqa: S105 - condition reasons such as "AuthSecretNotFound" are not passwords
"""The reasons a sync fails, each with where the failure comes from.

The strings are what users see in conditions and events (and what docs and alerts match), so
they never change; what a reason *means* for the object is its `Origin`, declared here once
instead of being guessed from a `Vault` prefix:

- `VAULT`: talking to Vault failed (down, sealed, refused, odd answer). The object is also
  marked not `Healthy`, and its event reason is the coarser `VaultClientError`.
- `KUBERNETES`: something in the cluster is missing or refused (a referenced object, a
  ServiceAccount, the destination Secret, an API call).
- `SPEC`: only an edit can fix it (invalid spec, policy refusal, a transformation that does
  not apply to the data).

Reasons produced elsewhere keep their string (`VaultError.reason`, `DataError.reason`, a path
policy verdict); `origin()` maps any of them, unknown strings to `KUBERNETES` (never "Vault":
an unknown reason must not mark a healthy Vault connection unhealthy).
"""

from __future__ import annotations

from enum import Enum, StrEnum

INJECT_READY = "InjectReady"
"""Ready reason of an object with `delivery: inject`: references and policy check out; the
agents of the pods that use it fetch its data (the operator reads nothing from Vault for it)."""


class Origin(Enum):
    VAULT = "vault"
    KUBERNETES = "kubernetes"
    SPEC = "spec"


class Reason(StrEnum):
    # Vault side: every VaultError subclass's `reason`, plus the answers we judge ourselves.
    VAULT_ERROR = "VaultError"
    VAULT_INVALID_REQUEST = "VaultInvalidRequest"
    VAULT_INVALID_PATH = "VaultInvalidPath"
    VAULT_NAMESPACES_UNSUPPORTED = "VaultNamespacesUnsupported"
    VAULT_PERMISSION_DENIED = "VaultPermissionDenied"
    VAULT_NOT_FOUND = "VaultNotFound"
    VAULT_SECRET_VERSION_DELETED = "VaultSecretVersionDeleted"
    VAULT_THROTTLED = "VaultThrottled"
    VAULT_SEALED_OR_UNAVAILABLE = "VaultSealedOrUnavailable"
    VAULT_SERVER_ERROR = "VaultServerError"
    VAULT_UNREACHABLE = "VaultUnreachable"
    VAULT_TLS_ERROR = "VaultTLSError"
    VAULT_TIMEOUT = "VaultTimeout"
    VAULT_BAD_RESPONSE = "VaultBadResponse"
    VAULT_EMPTY_RESPONSE = "VaultEmptyResponse"
    VAULT_LOGIN_FAILED = "VaultLoginFailed"
    VAULT_ADDRESS_NOT_ALLOWED = "VaultAddressNotAllowed"
    # Kubernetes side: objects in the cluster and API calls.
    VAULT_AUTH_NOT_FOUND = "VaultAuthNotFound"
    VAULT_CONNECTION_NOT_FOUND = "VaultConnectionNotFound"
    VAULT_AUTH_GLOBAL_NOT_FOUND = "VaultAuthGlobalNotFound"
    SERVICE_ACCOUNT_NOT_FOUND = "ServiceAccountNotFound"
    TOKEN_REQUEST_FAILED = "TokenRequestFailed"
    AUTH_SECRET_NOT_FOUND = "AuthSecretNotFound"
    AUTH_SECRET_INVALID = "AuthSecretInvalid"
    CA_CERT_SECRET_NOT_FOUND = "CACertSecretNotFound"
    CA_CERT_SECRET_INVALID = "CACertSecretInvalid"
    SECRET_TRANSFORMATION_NOT_FOUND = "SecretTransformationNotFound"
    TOKEN_STORE_UNAVAILABLE = "TokenStoreUnavailable"
    KUBERNETES_ERROR = "KubernetesError"
    FINALIZER_UPDATE_FAILED = "FinalizerUpdateFailed"
    DESTINATION_CONFLICT = "DestinationConflict"
    DESTINATION_NOT_FOUND = "DestinationNotFound"
    DESTINATION_INVALID = "DestinationInvalid"
    DESTINATION_WRITE_FAILED = "DestinationWriteFailed"
    DRIFT_CONFLICT = "DriftConflict"
    ROLLOUT_RESTART_FAILED = "RolloutRestartFailed"
    AUDIENCE_CHECK_FAILED = "AudienceCheckFailed"
    # Spec side: only an edit (of this object or one it refers to) helps.
    INVALID_SPEC = "InvalidSpec"
    INVALID_VAULT_AUTH = "InvalidVaultAuth"
    INVALID_VAULT_CONNECTION = "InvalidVaultConnection"
    INVALID_VAULT_AUTH_GLOBAL = "InvalidVaultAuthGlobal"
    VAULT_AUTH_GLOBAL_NAMESPACE_NOT_ALLOWED = "VaultAuthGlobalNamespaceNotAllowed"
    NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
    PATH_NOT_ALLOWED = "PathNotAllowed"
    SYNC_FORBIDDEN = "SyncForbidden"
    TRANSFORMATION_ERROR = "TransformationError"
    TEMPLATE_ERROR = "TemplateError"
    KEY_COLLISION = "KeyCollision"
    INVALID_KEY = "InvalidKey"
    INVALID_REGEX = "InvalidRegex"
    SECRET_TOO_LARGE = "SecretTooLarge"
    # The credential guard (credential_guard.py) refuses a login: only an edit helps.
    AUDIENCE_NOT_ALLOWED = "AudienceNotAllowed"
    SERVICE_ACCOUNT_NOT_ALLOWED = "ServiceAccountNotAllowed"
    CONNECTION_NAMESPACE_NOT_ALLOWED = "ConnectionNamespaceNotAllowed"
    # Inject mode (inject.py): the VaultAuth's method cannot log in with a pod's own token.
    INJECT_AUTH_METHOD_NOT_SUPPORTED = "InjectAuthMethodNotSupported"

    @property
    def origin(self) -> Origin:
        return ORIGINS[self]


_VAULT = Origin.VAULT
_KUBE = Origin.KUBERNETES
_SPEC = Origin.SPEC

ORIGINS: dict[Reason, Origin] = {
    Reason.VAULT_ERROR: _VAULT,
    Reason.VAULT_INVALID_REQUEST: _VAULT,
    Reason.VAULT_INVALID_PATH: _VAULT,
    # A namespace asked of HashiCorp Vault CE, refused by the client before anything is sent.
    Reason.VAULT_NAMESPACES_UNSUPPORTED: _VAULT,
    Reason.VAULT_PERMISSION_DENIED: _VAULT,
    Reason.VAULT_NOT_FOUND: _VAULT,
    Reason.VAULT_SECRET_VERSION_DELETED: _VAULT,
    Reason.VAULT_THROTTLED: _VAULT,
    Reason.VAULT_SEALED_OR_UNAVAILABLE: _VAULT,
    Reason.VAULT_SERVER_ERROR: _VAULT,
    Reason.VAULT_UNREACHABLE: _VAULT,
    Reason.VAULT_TLS_ERROR: _VAULT,
    Reason.VAULT_TIMEOUT: _VAULT,
    Reason.VAULT_BAD_RESPONSE: _VAULT,
    Reason.VAULT_EMPTY_RESPONSE: _VAULT,
    Reason.VAULT_LOGIN_FAILED: _VAULT,
    # A refused Vault address counted as Vault side under the former "Vault" prefix rule
    # (Healthy=False, event VaultClientError); kept so, as users and alerts see it today.
    Reason.VAULT_ADDRESS_NOT_ALLOWED: _VAULT,
    Reason.VAULT_AUTH_NOT_FOUND: _KUBE,
    Reason.VAULT_CONNECTION_NOT_FOUND: _KUBE,
    Reason.VAULT_AUTH_GLOBAL_NOT_FOUND: _KUBE,
    Reason.SERVICE_ACCOUNT_NOT_FOUND: _KUBE,
    Reason.TOKEN_REQUEST_FAILED: _KUBE,
    Reason.AUTH_SECRET_NOT_FOUND: _KUBE,
    Reason.AUTH_SECRET_INVALID: _KUBE,
    Reason.CA_CERT_SECRET_NOT_FOUND: _KUBE,
    Reason.CA_CERT_SECRET_INVALID: _KUBE,
    Reason.SECRET_TRANSFORMATION_NOT_FOUND: _KUBE,
    Reason.TOKEN_STORE_UNAVAILABLE: _KUBE,
    Reason.KUBERNETES_ERROR: _KUBE,
    Reason.FINALIZER_UPDATE_FAILED: _KUBE,
    Reason.DESTINATION_CONFLICT: _KUBE,
    Reason.DESTINATION_NOT_FOUND: _KUBE,
    Reason.DESTINATION_INVALID: _KUBE,
    Reason.DESTINATION_WRITE_FAILED: _KUBE,
    Reason.DRIFT_CONFLICT: _KUBE,
    Reason.ROLLOUT_RESTART_FAILED: _KUBE,
    Reason.AUDIENCE_CHECK_FAILED: _KUBE,
    Reason.INVALID_SPEC: _SPEC,
    Reason.INVALID_VAULT_AUTH: _SPEC,
    Reason.INVALID_VAULT_CONNECTION: _SPEC,
    Reason.INVALID_VAULT_AUTH_GLOBAL: _SPEC,
    Reason.VAULT_AUTH_GLOBAL_NAMESPACE_NOT_ALLOWED: _SPEC,
    Reason.NAMESPACE_NOT_ALLOWED: _SPEC,
    Reason.PATH_NOT_ALLOWED: _SPEC,
    Reason.SYNC_FORBIDDEN: _SPEC,
    Reason.TRANSFORMATION_ERROR: _SPEC,
    Reason.TEMPLATE_ERROR: _SPEC,
    Reason.KEY_COLLISION: _SPEC,
    Reason.INVALID_KEY: _SPEC,
    Reason.INVALID_REGEX: _SPEC,
    Reason.SECRET_TOO_LARGE: _SPEC,
    Reason.AUDIENCE_NOT_ALLOWED: _SPEC,
    Reason.SERVICE_ACCOUNT_NOT_ALLOWED: _SPEC,
    Reason.CONNECTION_NAMESPACE_NOT_ALLOWED: _SPEC,
    Reason.INJECT_AUTH_METHOD_NOT_SUPPORTED: _SPEC,
}

TRANSFORMATION_REASONS = frozenset(
    {
        Reason.TRANSFORMATION_ERROR,
        Reason.TEMPLATE_ERROR,
        Reason.KEY_COLLISION,
        Reason.INVALID_KEY,
        Reason.INVALID_REGEX,
        Reason.SECRET_TOO_LARGE,
    }
)

GIVE_UP_ON_DELETE_REASONS = frozenset(
    {
        Reason.VAULT_AUTH_NOT_FOUND,
        Reason.VAULT_CONNECTION_NOT_FOUND,
        Reason.INVALID_VAULT_AUTH,
        Reason.INVALID_VAULT_CONNECTION,
        Reason.VAULT_AUTH_GLOBAL_NOT_FOUND,
        Reason.INVALID_VAULT_AUTH_GLOBAL,
        Reason.VAULT_AUTH_GLOBAL_NAMESPACE_NOT_ALLOWED,
        Reason.NAMESPACE_NOT_ALLOWED,
        Reason.SERVICE_ACCOUNT_NOT_FOUND,
        Reason.TOKEN_REQUEST_FAILED,
        Reason.AUTH_SECRET_NOT_FOUND,
        Reason.AUTH_SECRET_INVALID,
        Reason.CA_CERT_SECRET_NOT_FOUND,
        # The credential guard refuses the login: no waiting changes that either.
        Reason.SERVICE_ACCOUNT_NOT_ALLOWED,
        Reason.AUDIENCE_NOT_ALLOWED,
        Reason.VAULT_ADDRESS_NOT_ALLOWED,
        Reason.CONNECTION_NAMESPACE_NOT_ALLOWED,
    }
)
"""Reasons meaning the VaultAuth side is gone or broken. While deleting, waiting will not bring
it back (usually the whole namespace is being deleted), so the finalizer is released."""


def origin(reason: str) -> Origin:
    """Where a failure reason comes from (unknown strings: Kubernetes side)."""
    try:
        return Reason(reason).origin
    except ValueError:
        return Origin.KUBERNETES


def is_vault_side(reason: str) -> bool:
    """Whether the failure came from talking to Vault (it then makes the object unhealthy)."""
    return origin(reason) is Origin.VAULT


def event_reason(reason: str) -> str:
    """The event reason for a failure reason (events group failures more coarsely)."""
    if is_vault_side(reason):
        return "VaultClientError"
    if reason in TRANSFORMATION_REASONS:
        return str(Reason.TRANSFORMATION_ERROR)
    return str(reason)
