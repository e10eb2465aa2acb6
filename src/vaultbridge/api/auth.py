"""VaultAuth: how to log in to Vault, and which namespaces may use that login."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from vaultbridge.api.common import (
    AllowedNamespaces,
    ApiModel,
    CelRule,
    DNSSubdomain,
    ObjectKey,
    ObjectRef,
    ShortString,
    StringMap,
    VaultNamespace,
    VaultPath,
    resolve_ref,
)
from vaultbridge.api.conditions import Conditions

AuthMethod = Literal["kubernetes", "jwt", "appRole", "token"]

DEFAULT_MOUNTS: dict[str, str] = {
    "kubernetes": "kubernetes",
    "jwt": "jwt",
    "appRole": "approle",
    "token": "token",
}

JWT_SECRET_KEY = "jwt"  # noqa: S105 (a key name, not a secret)
"""The key read from the Secret named by jwt.secretRef."""
APPROLE_SECRET_KEY = "id"  # noqa: S105
"""The key read from the Secret named by appRole.secretRef (the SecretID)."""
TOKEN_SECRET_KEY = "token"  # noqa: S105
"""The key read from the Secret named by token.secretRef."""

VAULT_LOGIN_ANNOTATION = "vaultbridge.dev/vault-login"
"""A ServiceAccount whose token the operator may request for Vault logins carries this
annotation with the value "true" (docs/security.md, "Tokens the operator mints")."""
MIN_TOKEN_EXPIRATION = 600
DEFAULT_AUDIENCE = "vault"
"""The audience a ServiceAccount token for Vault carries unless a VaultAuth names others. Never
the API server's own: a token Vault accepts must be useless against the API server (the
operator checks it, see controllers/credential_guard.py)."""

Audiences = Annotated[list[ShortString], Field(max_length=16)]
TokenExpiration = Annotated[int, Field(ge=MIN_TOKEN_EXPIRATION, le=2**32)]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class KubernetesAuth(ApiModel):
    """Log in with a service account token through Vault's kubernetes auth method."""

    role: RoleName
    """Vault role to log in as."""
    service_account: DNSSubdomain
    """Service account, in the namespace of the object being synced, whose token is presented
    to Vault."""
    audiences: Audiences = [DEFAULT_AUDIENCE]
    """Audiences requested for the service account token (default `vault`; give the Vault role
    the same `audience`). An audience the Kubernetes API server accepts is always refused,
    and only the audiences allowed by --allowed-token-audiences may be asked for."""
    token_expiration_seconds: TokenExpiration = MIN_TOKEN_EXPIRATION
    """Lifetime requested for the service account token, in seconds."""


class JWTAuth(ApiModel):
    """Log in with a JWT through Vault's jwt auth method."""

    cel_rules = (
        CelRule(
            rule="has(self.serviceAccount) != has(self.secretRef)",
            message="exactly one of serviceAccount and secretRef must be set",
        ),
    )

    role: RoleName
    """Vault role to log in as."""
    service_account: DNSSubdomain | None = None
    """Service account whose token is presented as the JWT. Exclusive with secretRef."""
    secret_ref: DNSSubdomain | None = None
    """Name of a Secret whose `jwt` key holds the JWT. Exclusive with serviceAccount."""
    audiences: Audiences = [DEFAULT_AUDIENCE]
    """Audiences requested for the service account token (default `vault`). An audience the
    Kubernetes API server accepts is always refused, and only the audiences allowed by
    --allowed-token-audiences may be asked for."""
    token_expiration_seconds: TokenExpiration = MIN_TOKEN_EXPIRATION
    """Lifetime requested for the service account token, in seconds."""

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.service_account is None) == (self.secret_ref is None):
            raise ValueError("exactly one of serviceAccount and secretRef must be set")
        return self


class AppRoleAuth(ApiModel):
    """Log in with a RoleID and SecretID through Vault's approle auth method."""

    role_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """RoleID of the AppRole."""
    secret_ref: DNSSubdomain
    """Name of a Secret whose `id` key holds the SecretID."""


class TokenAuth(ApiModel):
    """Use a Vault token stored in a Secret."""

    secret_ref: DNSSubdomain
    """Name of a Secret whose `token` key holds the Vault token."""


class StorageEncryption(ApiModel):
    """Transit key used to encrypt the Vault client tokens the operator persists."""

    mount: VaultPath
    """Mount of the transit secrets engine."""
    key_name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Name of the transit key."""


class VaultAuthSpec(ApiModel):
    """A way to log in to Vault and the namespaces allowed to use it."""

    cel_rules = tuple(
        CelRule(
            rule=f"self.method != '{method}' || has(self.{method})",
            message=f"{method} must be set when method is {method}",
        )
        for method in ("kubernetes", "jwt", "appRole", "token")
    )

    vault_connection_ref: ObjectRef = ""
    """VaultConnection to use: `name` (in this namespace) or `namespace/name`. Empty uses the
    VaultConnection named `default` in the operator's namespace."""
    namespace: VaultNamespace | None = None
    """Vault Enterprise / OpenBao namespace to log in to."""
    allowed_namespaces: AllowedNamespaces = Field(default_factory=list)
    """Namespaces whose objects may use this VaultAuth. Unset or empty: only this VaultAuth's
    own namespace. ["*"]: every namespace. Otherwise the listed namespaces (and its own)."""
    method: AuthMethod
    """Auth method: kubernetes, jwt, appRole or token. The field of the same name configures it."""
    mount: VaultPath | None = None
    """Path where the auth method is mounted in Vault. Defaults to the method's usual path:
    kubernetes, jwt, approle or token."""
    params: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Extra parameters sent with the login request."""
    headers: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Extra HTTP headers sent with every request made with this login."""
    kubernetes: KubernetesAuth | None = None
    """Settings of the kubernetes method."""
    jwt: JWTAuth | None = None
    """Settings of the jwt method."""
    app_role: AppRoleAuth | None = None
    """Settings of the appRole method."""
    token: TokenAuth | None = None
    """Settings of the token method."""
    storage_encryption: StorageEncryption | None = None
    """Encrypt the operator's persisted Vault client tokens with this transit key."""

    @model_validator(mode="after")
    def _method_settings(self) -> Self:
        settings = {
            "kubernetes": self.kubernetes,
            "jwt": self.jwt,
            "appRole": self.app_role,
            "token": self.token,
        }
        if settings[self.method] is None:
            raise ValueError(f"{self.method} must be set when method is {self.method}")
        if "*" in self.allowed_namespaces and len(self.allowed_namespaces) != 1:
            raise ValueError("allowedNamespaces: '*' must be the only entry")
        return self

    def effective_mount(self) -> str:
        """The auth mount to log in at: `mount` if set, else the method's default path."""
        return self.mount or DEFAULT_MOUNTS[self.method]

    def connection_ref(self, *, own_namespace: str, operator_namespace: str) -> ObjectKey:
        """The VaultConnection this VaultAuth uses."""
        return resolve_ref(
            self.vault_connection_ref,
            own_namespace=own_namespace,
            operator_namespace=operator_namespace,
        )

    def allows_namespace(self, consumer_namespace: str, *, own_namespace: str) -> bool:
        """Whether an object in `consumer_namespace` may use this VaultAuth.

        The VaultAuth's own namespace is always allowed: whoever may create a VaultAuth there
        may also create the objects that use it.
        """
        if consumer_namespace == own_namespace:
            return True
        if self.allowed_namespaces == ["*"]:
            return True
        return consumer_namespace in self.allowed_namespaces


class VaultAuthStatus(ApiModel):
    """Result of the operator's last check of this VaultAuth."""

    valid: bool | None = None
    """Whether the configuration is complete and its references resolve."""
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Why the VaultAuth is not valid."""
    conditions: Conditions = Field(default_factory=list)
    """Current state of the VaultAuth."""
