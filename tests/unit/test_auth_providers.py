"""Auth providers: each method gathers its own credential and sends its own login request."""

from __future__ import annotations

import typing
from typing import Any, cast

import pytest

from vaultbridge.api.auth import AuthMethod, VaultAuthSpec
from vaultbridge.controllers.auth_providers import PROVIDERS, LoginRequest, provider_for
from vaultbridge.controllers.resolution import ResolvedAuth
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.models import AuthToken


class Credentials:
    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    async def service_account_token(
        self,
        resolved: ResolvedAuth,
        namespace: str,
        service_account: str,
        audiences: list[str],
        expiration: int,
    ) -> str:
        self.asked.append(("sa", namespace, service_account, tuple(audiences), expiration))
        return "sa-jwt"

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        self.asked.append(("secret", namespace, name, key))
        return f"{name}:{key}"


class Client:
    def __init__(self) -> None:
        self.logins: list[tuple[str, ...]] = []

    async def login_kubernetes(self, mount: str, role: str, jwt: str) -> AuthToken:
        self.logins.append(("kubernetes", mount, role, jwt))
        return cast(AuthToken, None)

    async def login_jwt(self, mount: str, role: str, jwt: str) -> AuthToken:
        self.logins.append(("jwt", mount, role, jwt))
        return cast(AuthToken, None)

    async def login_approle(self, mount: str, role_id: str, secret_id: str | None) -> AuthToken:
        self.logins.append(("approle", mount, role_id, str(secret_id)))
        return cast(AuthToken, None)

    async def use_token(self, token: str) -> AuthToken:
        self.logins.append(("token", token))
        return cast(AuthToken, None)


SPECS: dict[str, dict[str, Any]] = {
    "kubernetes": {"kubernetes": {"role": "r", "serviceAccount": "app", "audiences": ["vault"]}},
    "jwt": {"jwt": {"role": "r", "secretRef": "jwt-secret"}},
    "appRole": {"appRole": {"roleId": "rid", "secretRef": "approle"}},
    "token": {"token": {"secretRef": "tok"}},
}
EXPECTED = {
    "kubernetes": (
        [("sa", "team", "app", ("vault",), 600)],
        [("kubernetes", "kubernetes", "r", "sa-jwt")],
        "app",
    ),
    "jwt": (
        [("secret", "team", "jwt-secret", "jwt")],
        [("jwt", "jwt", "r", "jwt-secret:jwt")],
        "jwt-secret",
    ),
    "appRole": (
        [("secret", "team", "approle", "id")],
        [("approle", "approle", "rid", "approle:id")],
        None,
    ),
    "token": ([("secret", "team", "tok", "token")], [("token", "tok:token")], None),
}


def test_every_method_has_a_provider() -> None:
    assert set(PROVIDERS) == set(typing.get_args(AuthMethod)) == set(SPECS)


@pytest.mark.parametrize("method", sorted(SPECS))
async def test_provider_gathers_then_logs_in(method: str) -> None:
    auth = VaultAuthSpec.model_validate({"method": method, **SPECS[method]})
    provider = provider_for(auth)
    assert provider is not None and provider.method == method
    creds, client = Credentials(), Client()
    req = LoginRequest(cast(ResolvedAuth, None), "team", creds)
    credential = await provider.gather(req)
    await provider.login(cast(VaultClient, client), auth.effective_mount(), credential)
    asked, logins, subject = EXPECTED[method]
    assert creds.asked == asked
    assert client.logins == logins
    assert provider.subject() == subject


async def test_jwt_from_a_service_account_is_minted_not_read() -> None:
    auth = VaultAuthSpec.model_validate(
        {"method": "jwt", "jwt": {"role": "r", "serviceAccount": "app"}}
    )
    provider = provider_for(auth)
    assert provider is not None
    creds = Credentials()
    assert await provider.gather(LoginRequest(cast(ResolvedAuth, None), "team", creds)) == "sa-jwt"
    assert [a[0] for a in creds.asked] == ["sa"]
