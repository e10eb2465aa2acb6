"""From a secret resource to a logged-in Vault client: VaultAuth → VaultConnection → token
(resolution.py resolves the references and checks them; this module logs in).

Resolution reads the informer caches (no API calls), enforces `allowedNamespaces` before
anything touches Vault, and logs in through the shared client cache, so every resource that
uses the same VaultAuth (and, for service-account methods, the same service account) shares
one Vault token instead of logging in per resource.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import replace
from typing import Any

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.errors import KubeError, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.observability import metrics
from vaultbridge.persistence.token_store import ClientKey
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import VaultError
from vaultbridge.vault.models import AuthToken
from vaultbridge.vault.persist import TokenStoreUnavailable

from .auth_providers import LoginRequest, provider_for
from .context import OperatorContext
from .credential_guard import TokenGrant
from .errors import ReconcileProblem
from .reasons import Reason
from .resolution import AuthResolver, ResolvedAuth

log = logging.getLogger(__name__)


class VaultAccess(AuthResolver):
    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        # VaultAuth → ((auth uid, generation, connection uid, generation), global version)
        # last purged for. Persisted tokens of an older global version are not purged here
        # (the store's labels do not carry it): nothing reads them again, and the store's
        # sweep deletes them once their token expires.
        self._purged: dict[ObjectKey, tuple[tuple[str, int, str, int], str]] = {}

    # -- login -----------------------------------------------------------------------------

    def cache_key(self, resolved: ResolvedAuth, consumer_namespace: str) -> ClientKey:
        auth = resolved.auth
        enc = auth.storage_encryption
        # A change of either object's spec bumps its generation and so gives a new login.
        base = ClientKey(
            auth_namespace=resolved.auth_key.namespace,
            auth_name=resolved.auth_key.name,
            auth_uid=objects.uid(resolved.auth_obj),
            auth_generation=objects.generation(resolved.auth_obj),
            connection_uid=objects.uid(resolved.connection_obj),
            connection_generation=objects.generation(resolved.connection_obj),
            encryption=(enc.mount, enc.key_name) if enc is not None else None,
            # A change of the VaultAuthGlobal merged in changes the login as much as one of
            # the VaultAuth's own spec.
            auth_global=resolved.global_version(),
            # A static token is in a Secret already; storing a copy would add nothing.
            persist=auth.method != "token",
        )
        provider = provider_for(auth)
        if provider is None:
            return base
        return replace(base, consumer_namespace=consumer_namespace, subject=provider.subject())

    async def purge_stale_tokens(
        self, auth_key: ObjectKey, auth_obj: dict[str, Any] | None
    ) -> None:
        """Forget the tokens of other generations of a VaultAuth (all of them once it is gone),
        in memory and in the token store; cheap when nothing changed since the last call."""
        current: tuple[str, int, str, int] | None = None
        current_global = ""
        if auth_obj is None:
            self.forget_auth(auth_key)
        else:
            try:
                resolved = await self.resolve(
                    auth_key.namespace, f"{auth_key.namespace}/{auth_key.name}"
                )
            except ReconcileProblem:
                return  # cannot tell the current connection; the next reconcile will
            current = (
                objects.uid(resolved.auth_obj),
                objects.generation(resolved.auth_obj),
                objects.uid(resolved.connection_obj),
                objects.generation(resolved.connection_obj),
            )
            current_global = resolved.global_version()
        if current is not None and self._purged.get(auth_key) == (current, current_global):
            return

        def stale(key: Hashable) -> bool:
            return (
                isinstance(key, ClientKey)
                and (key.auth_namespace, key.auth_name) == (auth_key.namespace, auth_key.name)
                and (
                    current is None
                    or (
                        key.auth_uid,
                        key.auth_generation,
                        key.connection_uid,
                        key.connection_generation,
                    )
                    != current
                    or key.auth_global != current_global
                )
            )

        self.ctx.clients.purge(stale)
        store = self.ctx.token_store
        if store is not None:
            try:
                await store.purge_auth(auth_key.namespace, auth_key.name, current)
            except KubeError as exc:
                log.warning(
                    "purging persisted Vault tokens of VaultAuth %s failed: %s", auth_key, exc
                )
                return
        if current is None:
            self._purged.pop(auth_key, None)
        else:
            self._purged[auth_key] = (current, current_global)

    async def client(self, resolved: ResolvedAuth, consumer_namespace: str) -> VaultClient:
        key = self.cache_key(resolved, consumer_namespace)
        hit = key in self.ctx.clients
        metrics.CLIENT_CACHE.labels("hit" if hit else "miss").inc()
        try:
            return await self.ctx.clients.get(
                key,
                self._login_fn(resolved, consumer_namespace),
                resolved.settings,
                resolved.auth.namespace,
            )
        except TokenStoreUnavailable as exc:
            raise ReconcileProblem(
                Reason.TOKEN_STORE_UNAVAILABLE,
                f"cannot read the persisted Vault token of VaultAuth {resolved.auth_key}: {exc}",
            ) from exc
        except VaultError as exc:
            metrics.VAULT_LOGINS.labels(resolved.auth.method, "error").inc()
            raise ReconcileProblem(
                Reason.VAULT_LOGIN_FAILED,
                f"login to Vault with VaultAuth {resolved.auth_key} "
                f"(method {resolved.auth.method}) failed: {exc}",
            ) from exc

    def invalidate(self, resolved: ResolvedAuth, consumer_namespace: str) -> None:
        self.ctx.clients.invalidate(self.cache_key(resolved, consumer_namespace))

    async def token_replaced(
        self, resolved: ResolvedAuth, consumer_namespace: str, client: VaultClient
    ) -> bool:
        """After a 403 to `client`: True when its token was gone and is being replaced (retry
        once); False when a policy denies the request (report it; the token stays)."""
        key = self.cache_key(resolved, consumer_namespace)
        return (await self.ctx.clients.check_denied(key, client)).retry

    def _login_fn(
        self, resolved: ResolvedAuth, consumer_namespace: str
    ) -> Callable[[], Awaitable[AuthToken]]:
        auth = resolved.auth
        provider = provider_for(auth)
        assert provider is not None, "the VaultAuth model requires the method's block"
        request = LoginRequest(resolved, consumer_namespace, self)

        async def login() -> AuthToken:
            # Gather the credential first: nothing is sent to Vault without one.
            credential = await provider.gather(request)
            client = VaultClient(
                self.ctx.vault_transport, resolved.settings, namespace=auth.namespace
            )
            token = await provider.login(client, auth.effective_mount(), credential)
            metrics.VAULT_LOGINS.labels(auth.method, "success").inc()
            log.info(
                "logged in to Vault with VaultAuth %s (method %s) for namespace %s",
                resolved.auth_key,
                auth.method,
                consumer_namespace,
            )
            return token

        return login

    # -- CredentialSource (auth_providers.py) ---------------------------------------------

    async def service_account_token(
        self,
        resolved: ResolvedAuth,
        namespace: str,
        service_account: str,
        audiences: list[str],
        expiration: int,
    ) -> str:
        """The only place the operator mints a ServiceAccount token for a Vault login; every
        check that must precede the TokenRequest (audience, ServiceAccount opt-in, the Vault
        address) happens in the credential guard, called here and nowhere else."""
        grant = TokenGrant(
            auth_key=resolved.auth_key,
            connection_key=resolved.connection_key,
            connection=self.connection_spec(resolved.connection_key, resolved.connection_obj),
            namespace=namespace,
            service_account=service_account,
            audiences=tuple(audiences),
            expiration_seconds=expiration,
        )
        # The only TokenRequest of the operator; every check happens in the guard, before it.
        return await self.guard.service_account_token(grant)

    async def secret_value(self, namespace: str, name: str, key: str) -> str:
        try:
            secret = await self.ctx.kube.get(SECRETS, name, namespace)
        except NotFound as exc:
            raise ReconcileProblem(
                Reason.AUTH_SECRET_NOT_FOUND, f"Secret {namespace}/{name} does not exist"
            ) from exc
        raw = (secret.get("data") or {}).get(key)
        if not raw:
            raise ReconcileProblem(
                Reason.AUTH_SECRET_INVALID, f"Secret {namespace}/{name} has no key {key!r}"
            )
        return base64.b64decode(raw).decode("utf-8").strip()
