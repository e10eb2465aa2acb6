"""Vault auth methods as providers: one small class per method behind one protocol.

A provider answers two questions for a VaultAuth: which credential to gather in the consumer's
namespace (a ServiceAccount token, a JWT or AppRole secret from a Secret, a static token),
and which login request to send with it. `VaultAccess` only asks `provider_for(auth)` and
never switches on the method, so a new method is one class here and one line in `PROVIDERS`.

Credentials come from a `CredentialSource` (implemented by `VaultAccess`):
`service_account_token` is the only way a provider gets a ServiceAccount token, so every
check that must happen before the operator mints one (audience, ServiceAccount, Vault
address: the credential guard) has that one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from vaultbridge.api.auth import AppRoleAuth, JWTAuth, KubernetesAuth, TokenAuth, VaultAuthSpec
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.models import AuthToken

if TYPE_CHECKING:
    from .resolution import ResolvedAuth


T = TypeVar("T")


class CredentialSource(Protocol):
    """Where providers get credentials from (the Kubernetes side)."""

    async def service_account_token(
        self,
        resolved: ResolvedAuth,
        namespace: str,
        service_account: str,
        audiences: list[str],
        expiration: int,
    ) -> str:
        """A token for `namespace/service_account`, minted for a login with `resolved`."""
        ...

    async def secret_value(self, namespace: str, name: str, key: str) -> str: ...


@dataclass(frozen=True)
class LoginRequest:
    """Who logs in, for whom, and where credentials come from."""

    resolved: ResolvedAuth
    consumer_namespace: str
    credentials: CredentialSource


class AuthProvider(Protocol):
    method: ClassVar[str]

    def subject(self) -> str | None:
        """What, besides the consumer namespace, makes two logins differ (cache key)."""
        ...

    async def gather(self, req: LoginRequest) -> str:
        """The credential to log in with (never logged)."""
        ...

    async def login(self, client: VaultClient, mount: str, credential: str) -> AuthToken: ...


@dataclass(frozen=True)
class KubernetesProvider:
    spec: KubernetesAuth
    method: ClassVar[str] = "kubernetes"

    def subject(self) -> str | None:
        # The ServiceAccount is looked up in the consumer's namespace: one token per SA.
        return self.spec.service_account

    async def gather(self, req: LoginRequest) -> str:
        return await req.credentials.service_account_token(
            req.resolved,
            req.consumer_namespace,
            self.spec.service_account,
            self.spec.audiences,
            self.spec.token_expiration_seconds,
        )

    async def login(self, client: VaultClient, mount: str, credential: str) -> AuthToken:
        return await client.login_kubernetes(mount, self.spec.role, credential)


@dataclass(frozen=True)
class JWTProvider:
    spec: JWTAuth
    method: ClassVar[str] = "jwt"

    def subject(self) -> str | None:
        return self.spec.service_account or self.spec.secret_ref

    async def gather(self, req: LoginRequest) -> str:
        if self.spec.service_account:
            return await req.credentials.service_account_token(
                req.resolved,
                req.consumer_namespace,
                self.spec.service_account,
                self.spec.audiences,
                self.spec.token_expiration_seconds,
            )
        assert self.spec.secret_ref is not None
        return await req.credentials.secret_value(
            req.consumer_namespace, self.spec.secret_ref, "jwt"
        )

    async def login(self, client: VaultClient, mount: str, credential: str) -> AuthToken:
        return await client.login_jwt(mount, self.spec.role, credential)


@dataclass(frozen=True)
class AppRoleProvider:
    spec: AppRoleAuth
    method: ClassVar[str] = "appRole"

    def subject(self) -> str | None:
        return None

    async def gather(self, req: LoginRequest) -> str:
        return await req.credentials.secret_value(
            req.consumer_namespace, self.spec.secret_ref, "id"
        )

    async def login(self, client: VaultClient, mount: str, credential: str) -> AuthToken:
        return await client.login_approle(mount, self.spec.role_id, credential)


@dataclass(frozen=True)
class TokenProvider:
    spec: TokenAuth
    method: ClassVar[str] = "token"

    def subject(self) -> str | None:
        return None

    async def gather(self, req: LoginRequest) -> str:
        return await req.credentials.secret_value(
            req.consumer_namespace, self.spec.secret_ref, "token"
        )

    async def login(self, client: VaultClient, mount: str, credential: str) -> AuthToken:
        return await client.use_token(credential)


def _maybe(
    make: Callable[[T], AuthProvider], block: Callable[[VaultAuthSpec], T | None]
) -> Callable[[VaultAuthSpec], AuthProvider | None]:
    def build(auth: VaultAuthSpec) -> AuthProvider | None:
        spec = block(auth)
        return None if spec is None else make(spec)

    return build


PROVIDERS: dict[str, Callable[[VaultAuthSpec], AuthProvider | None]] = {
    KubernetesProvider.method: _maybe(KubernetesProvider, lambda a: a.kubernetes),
    JWTProvider.method: _maybe(JWTProvider, lambda a: a.jwt),
    AppRoleProvider.method: _maybe(AppRoleProvider, lambda a: a.app_role),
    TokenProvider.method: _maybe(TokenProvider, lambda a: a.token),
}
"""Each method's provider, built from the VaultAuth's block of the same name."""


def provider_for(auth: VaultAuthSpec) -> AuthProvider | None:
    """The provider of a VaultAuth's method (None: the method's block is missing, which the
    CRD's CEL rules and the model already refuse)."""
    make = PROVIDERS.get(auth.method)
    return None if make is None else make(auth)
