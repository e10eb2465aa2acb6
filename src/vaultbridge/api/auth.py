"""VaultAuth: how to log in to Vault, and which namespaces may use that login."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from vaultbridge.api.common import (
    AllowedNamespaces,
    ApiModel,
    CelRule,
    DNSLabel,
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


class KubernetesAuthFields(ApiModel):
    """The kubernetes method's settings, each optional: a VaultAuth that uses a VaultAuthGlobal
    sets only what differs from it (the merged result must be complete)."""

    role: RoleName | None = None
    """Vault role to log in as."""
    service_account: DNSSubdomain | None = None
    """Service account, in the namespace of the object being synced, whose token is presented
    to Vault."""
    audiences: Audiences | None = None
    """Audiences requested for the service account token (default `vault`)."""
    token_expiration_seconds: TokenExpiration | None = None
    """Lifetime requested for the service account token, in seconds (default 600)."""


class JWTAuthFields(ApiModel):
    """The jwt method's settings, each optional (merged with a VaultAuthGlobal's)."""

    cel_rules = (
        CelRule(
            rule="!has(self.serviceAccount) || !has(self.secretRef)",
            message="exactly one of serviceAccount and secretRef must be set, not both",
        ),
    )

    role: RoleName | None = None
    """Vault role to log in as."""
    service_account: DNSSubdomain | None = None
    """Service account whose token is presented as the JWT. Exclusive with secretRef."""
    secret_ref: DNSSubdomain | None = None
    """Name of a Secret whose `jwt` key holds the JWT. Exclusive with serviceAccount."""
    audiences: Audiences | None = None
    """Audiences requested for the service account token (default `vault`)."""
    token_expiration_seconds: TokenExpiration | None = None
    """Lifetime requested for the service account token, in seconds (default 600)."""

    @model_validator(mode="after")
    def _exclusive(self) -> Self:
        if self.service_account is not None and self.secret_ref is not None:
            raise ValueError("exactly one of serviceAccount and secretRef must be set, not both")
        return self


class AppRoleAuthFields(ApiModel):
    """The appRole method's settings, each optional (merged with a VaultAuthGlobal's)."""

    role_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """RoleID of the AppRole."""
    secret_ref: DNSSubdomain | None = None
    """Name of a Secret whose `id` key holds the SecretID."""


MergeStrategyName = Literal["none", "union", "replace"]


class MergeStrategy(ApiModel):
    """How a VaultAuth's `headers` and `params` combine with its VaultAuthGlobal's."""

    headers: MergeStrategyName = "none"
    """`none`: only the VaultAuth's own headers. `union`: the global's defaults, then the
    global's method block, then the VaultAuth's own (later ones win per key). `replace`: the
    first non-empty of the VaultAuth's own, the global method block's, the global defaults."""
    params: MergeStrategyName = "none"
    """Same choices as `headers`, for the login `params`."""


class VaultAuthGlobalRef(ApiModel):
    """The VaultAuthGlobal whose defaults fill this VaultAuth's empty fields."""

    cel_rules = (
        CelRule(
            rule="has(self.name) || (has(self.allowDefault) && self.allowDefault)",
            message="name is required unless allowDefault is true",
        ),
    )

    name: DNSSubdomain | None = None
    """Name of the VaultAuthGlobal. Unset with allowDefault: the one named `default`."""
    namespace: DNSLabel | None = None
    """Its namespace (default: the VaultAuth's own; for the `default` lookup without a
    namespace, the VaultAuth's namespace first, then the operator's). A global in another
    namespace must list the VaultAuth's namespace in its allowedNamespaces."""
    allow_default: bool = False
    """Without a name, use the VaultAuthGlobal named `default`."""
    merge_strategy: MergeStrategy | None = None
    """How headers and params combine with the global's (default: `none` for both)."""

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.name and not self.allow_default:
            raise ValueError("name is required unless allowDefault is true")
        return self


class _VaultAuthCommon(ApiModel):
    """The fields a VaultAuth has whether or not it uses a VaultAuthGlobal."""

    vault_connection_ref: ObjectRef = ""
    """VaultConnection to use: `name` (in this namespace) or `namespace/name`. Empty uses the
    VaultAuthGlobal's, if any, else the VaultConnection named `default` in the operator's
    namespace."""
    namespace: VaultNamespace | None = None
    """Vault Enterprise / OpenBao namespace to log in to."""
    allowed_namespaces: AllowedNamespaces = Field(default_factory=list)
    """Namespaces whose objects may use this VaultAuth. Unset or empty: only this VaultAuth's
    own namespace. ["*"]: every namespace. Otherwise the listed namespaces (and its own)."""
    mount: VaultPath | None = None
    """Path where the auth method is mounted in Vault. Defaults to the method's usual path:
    kubernetes, jwt, approle or token."""
    params: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Extra parameters sent with the login request."""
    headers: StringMap = Field(default_factory=dict, max_length=32, repr=False)
    """Extra HTTP headers sent with every request made with this login."""
    token: TokenAuth | None = None
    """Settings of the token method."""
    storage_encryption: StorageEncryption | None = None
    """Encrypt the operator's persisted Vault client tokens with this transit key."""


_METHODS = ("kubernetes", "jwt", "appRole", "token")


class VaultAuthResourceSpec(_VaultAuthCommon):
    """A way to log in to Vault and the namespaces allowed to use it: complete by itself, or
    completed by the VaultAuthGlobal named in `vaultAuthGlobalRef`.

    Without `vaultAuthGlobalRef` every setting the login needs must be set here (the rules
    below). With it, the operator first fills the empty fields from the global, and the merged
    result must be complete (else `valid: false`, reason `InvalidVaultAuth`).
    """

    # The CRD's schema. The merged spec is parsed with `VaultAuthSpec` (api/auth_global.py).

    cel_rules = (
        CelRule(
            rule="has(self.vaultAuthGlobalRef) || has(self.method)",
            message="method is required unless vaultAuthGlobalRef is set",
        ),
        *(
            CelRule(
                rule=(
                    "has(self.vaultAuthGlobalRef) || !has(self.method) || "
                    f"self.method != '{method}' || has(self.{method})"
                ),
                message=f"{method} must be set when method is {method}",
            )
            for method in _METHODS
        ),
        CelRule(
            rule=(
                "has(self.vaultAuthGlobalRef) || !has(self.kubernetes) || "
                "(has(self.kubernetes.role) && has(self.kubernetes.serviceAccount))"
            ),
            message="kubernetes needs role and serviceAccount unless vaultAuthGlobalRef is set",
        ),
        CelRule(
            rule=(
                "has(self.vaultAuthGlobalRef) || !has(self.jwt) || (has(self.jwt.role) && "
                "(has(self.jwt.serviceAccount) || has(self.jwt.secretRef)))"
            ),
            message=(
                "jwt needs role and exactly one of serviceAccount and secretRef unless "
                "vaultAuthGlobalRef is set"
            ),
        ),
        CelRule(
            rule=(
                "has(self.vaultAuthGlobalRef) || !has(self.appRole) || "
                "(has(self.appRole.roleId) && has(self.appRole.secretRef))"
            ),
            message="appRole needs roleId and secretRef unless vaultAuthGlobalRef is set",
        ),
    )

    vault_auth_global_ref: VaultAuthGlobalRef | None = None
    """A VaultAuthGlobal whose defaults fill the fields left empty here (method, mount, Vault
    namespace, vaultConnectionRef, the method's settings; headers and params per
    mergeStrategy). Fields set here always win."""
    method: AuthMethod | None = None
    """Auth method: kubernetes, jwt, appRole or token. The field of the same name configures it.
    Required unless vaultAuthGlobalRef is set (then the global's defaultAuthMethod applies)."""
    kubernetes: KubernetesAuthFields | None = None
    """Settings of the kubernetes method."""
    jwt: JWTAuthFields | None = None
    """Settings of the jwt method."""
    app_role: AppRoleAuthFields | None = None
    """Settings of the appRole method."""

    @model_validator(mode="after")
    def _complete_without_global(self) -> Self:
        if self.vault_auth_global_ref is None:
            # Without a global the spec is the effective one: the same checks as VaultAuthSpec.
            VaultAuthSpec.model_validate(self.model_dump(by_alias=True, exclude_none=True))
        return self


class VaultAuthSpec(_VaultAuthCommon):
    """A complete VaultAuth: a way to log in to Vault and the namespaces allowed to use it.

    What the controllers use: a VaultAuth's spec as written when it has no
    `vaultAuthGlobalRef`, else the spec merged with the global's defaults.
    """

    method: AuthMethod
    """Auth method: kubernetes, jwt, appRole or token. The field of the same name configures it."""
    kubernetes: KubernetesAuth | None = None
    """Settings of the kubernetes method."""
    jwt: JWTAuth | None = None
    """Settings of the jwt method."""
    app_role: AppRoleAuth | None = None
    """Settings of the appRole method."""

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
        return namespace_allowed(
            self.allowed_namespaces, consumer_namespace, own_namespace=own_namespace
        )


def namespace_allowed(
    allowed_namespaces: list[str], consumer_namespace: str, *, own_namespace: str
) -> bool:
    """The one `allowedNamespaces` rule (VaultAuth, VaultAuthGlobal): own namespace always,
    `["*"]` every namespace, else the listed ones."""
    if consumer_namespace == own_namespace:
        return True
    if allowed_namespaces == ["*"]:
        return True
    return consumer_namespace in allowed_namespaces


class VaultAuthStatus(ApiModel):
    """Result of the operator's last check of this VaultAuth."""

    valid: bool | None = None
    """Whether the configuration is complete and its references resolve."""
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """Why the VaultAuth is not valid."""
    conditions: Conditions = Field(default_factory=list)
    """Current state of the VaultAuth."""
