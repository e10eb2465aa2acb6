"""Credentials the operator mints are a trust boundary: whose ServiceAccount token may be
requested, for which audience, and to which server it may go. Decided here, and only here.

The threat (docs/security.md, "Tokens the operator mints"): the operator may create a token for
any ServiceAccount (`create serviceaccounts/token`, cluster-wide) and sends it to the address of
a VaultConnection. Whoever may write vaultbridge objects in a namespace chooses the
ServiceAccount, the audiences and, through a VaultConnection, the address. Unchecked, "may
create a VaultAuth in N" becomes "may act as every ServiceAccount of N against the API server".

Guarantees, in the order they are checked; each refusal is a `ReconcileProblem` (a condition and
an event the user can act on) and, for 1-4, happens before any TokenRequest:

1. The VaultConnection's address is on --allowed-vault-addresses (when the list is set), and the
   VaultConnection allows the namespace of the VaultAuth that uses it (`allowedNamespaces`, the
   VaultAuth rule one level up). `check_connection` is also called on every resolve, so a
   VaultConnection outside the list is never contacted at all, whatever the auth method.
2. The ServiceAccount opted in: it carries the annotation `vaultbridge.dev/vault-login: "true"`.
   Setting it needs `patch serviceaccounts`, which tenants who only write vaultbridge objects
   do not have.
3. Every requested audience is on --allowed-token-audiences (default `vault`), and the list is
   not empty (empty would mean the API server's own audience).
4. No audience is the API server's: not its issuer (service-account issuer discovery,
   `/.well-known/openid-configuration`), and not an audience set that an earlier TokenReview
   found the API server accepts (cached, see 5).
5. After the TokenRequest, the first token for an audience set is reviewed by the API server
   itself: a TokenReview without `audiences` asks "would you accept this token?". If it would,
   the token is dropped (never sent, never logged) and the login refused; the verdict is cached
   for AUDIENCE_VERDICT_SECONDS, so later logins for that audience set are refused before the
   TokenRequest, and later logins for a set the API server refused skip the review. A review
   that fails (RBAC, outage) fails closed.

The only caller is `VaultAccess.service_account_token` (the CredentialSource of the auth
providers), one line, so the login code can move without this module. Tokens never reach
logs, events, status or exceptions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaultbridge.api.auth import VAULT_LOGIN_ANNOTATION
from vaultbridge.api.connection import VaultConnectionSpec
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.guard.addresses import AddressAllowList
from vaultbridge.kube import objects
from vaultbridge.kube.api import KubeApi
from vaultbridge.kube.errors import ApiError, KubeError, NotFound
from vaultbridge.kube.resources import SERVICE_ACCOUNTS, TOKEN_REVIEWS
from vaultbridge.settings import Settings

from .errors import ReconcileProblem
from .reasons import Reason

log = logging.getLogger(__name__)

AUDIENCE_VERDICT_SECONDS = 600.0
"""How long an answer of the API server about an audience set (and its issuer) is reused. The
API server's audiences change only with its flags, i.e. on a restart of the control plane."""

AUDIENCE_NOT_ALLOWED = "AudienceNotAllowed"
ADDRESS_NOT_ALLOWED = "VaultAddressNotAllowed"
CONNECTION_NOT_ALLOWED = "ConnectionNamespaceNotAllowed"
SERVICE_ACCOUNT_NOT_ALLOWED = "ServiceAccountNotAllowed"


@dataclass(frozen=True)
class TokenGrant:
    """One ServiceAccount token the login code wants, and where it would go."""

    auth_key: ObjectKey
    connection_key: ObjectKey
    connection: VaultConnectionSpec
    namespace: str
    """Namespace of the ServiceAccount (the consumer's own)."""
    service_account: str
    audiences: tuple[str, ...]
    expiration_seconds: int


def parse_audiences(text: str) -> frozenset[str]:
    return frozenset(a.strip() for a in text.split(",") if a.strip())


def opted_in(service_account: dict[str, Any]) -> bool:
    return objects.annotations(service_account).get(VAULT_LOGIN_ANNOTATION) == "true"


class CredentialGuard:
    def __init__(
        self,
        kube: KubeApi,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.addresses = AddressAllowList.parse(settings.allowed_vault_addresses)
        self.allowed_audiences = parse_audiences(settings.allowed_token_audiences)
        self._clock = clock
        # Audience set -> (when decided, whether the API server accepts a token for it).
        self._verdicts: dict[frozenset[str], tuple[float, bool]] = {}
        self._issuer: tuple[float, str | None] | None = None

    # -- 1. where credentials may go ---------------------------------------------------------

    def check_connection(
        self, connection_key: ObjectKey, spec: VaultConnectionSpec, *, auth_namespace: str | None
    ) -> None:
        """Refuse a VaultConnection outside the address allow-list, or one that does not allow
        the namespace of the VaultAuth using it (`auth_namespace`; None: no VaultAuth yet)."""
        refusal = self.addresses.refusal(spec.address)
        if refusal is not None:
            raise ReconcileProblem(
                ADDRESS_NOT_ALLOWED, f"VaultConnection {connection_key}: {refusal}", retry=False
            )
        if auth_namespace is not None and not spec.allows_namespace(
            auth_namespace, own_namespace=connection_key.namespace
        ):
            raise ReconcileProblem(
                CONNECTION_NOT_ALLOWED,
                f"VaultConnection {connection_key} does not allow VaultAuths of namespace "
                f"{auth_namespace!r} (add it to spec.allowedNamespaces of the VaultConnection)",
                retry=False,
            )

    # -- 2-5. the token ------------------------------------------------------------------

    async def service_account_token(self, grant: TokenGrant) -> str:
        """A token for `grant`, or a ReconcileProblem saying why there is none."""
        self.check_connection(
            grant.connection_key, grant.connection, auth_namespace=grant.auth_key.namespace
        )
        await self._check_service_account(grant)
        audiences = frozenset(grant.audiences)
        await self._check_audiences_before(grant, audiences)
        token = await self._token_request(grant)
        await self._check_audiences_after(grant, audiences, token)
        return token

    async def check_projected_audiences(self, grant: TokenGrant) -> None:
        """Inject mode: the kubelet, not the operator, mints the pod's projected token, so only
        the checks that come before a TokenRequest apply (1, 3, 4; no opt-in: a pod may always
        mount a token of its own ServiceAccount). Same rules, same messages as a login."""
        self.check_connection(
            grant.connection_key, grant.connection, auth_namespace=grant.auth_key.namespace
        )
        await self._check_audiences_before(grant, frozenset(grant.audiences))

    async def _check_service_account(self, grant: TokenGrant) -> None:
        who = f"{grant.namespace}/{grant.service_account}"
        try:
            sa = await self._kube.get(SERVICE_ACCOUNTS, grant.service_account, grant.namespace)
        except NotFound as exc:
            raise ReconcileProblem(
                Reason.SERVICE_ACCOUNT_NOT_FOUND, f"ServiceAccount {who} does not exist"
            ) from exc
        except KubeError as exc:
            raise ReconcileProblem(
                Reason.KUBERNETES_ERROR, f"reading ServiceAccount {who}: {exc}"
            ) from exc
        if not opted_in(sa):
            raise ReconcileProblem(
                SERVICE_ACCOUNT_NOT_ALLOWED,
                f"ServiceAccount {who} is not enabled for Vault logins: the operator requests "
                f'tokens only for ServiceAccounts annotated {VAULT_LOGIN_ANNOTATION}="true" '
                "(set by someone allowed to edit ServiceAccounts in the namespace)",
                # Retried on the normal backoff: the opt-in is an edit of a ServiceAccount,
                # which the operator does not watch (it caches no ServiceAccounts), so only a
                # retry sees it. A retry costs one ServiceAccount GET: no TokenRequest, no
                # Vault request. (Found by `make demo`: its apply annotates `default` right
                # after the ServiceAccount controller creates it.)
            )

    async def _check_audiences_before(self, grant: TokenGrant, audiences: frozenset[str]) -> None:
        if not audiences:
            raise self._refuse(
                grant,
                "no audience requested: the token would carry the Kubernetes API server's own "
                "audience (set audiences, e.g. [vault], and the same audience on the Vault role)",
            )
        extra = sorted(audiences - self.allowed_audiences)
        if extra:
            raise self._refuse(
                grant,
                f"audience(s) {', '.join(extra)} not allowed (allowed: "
                f"{', '.join(sorted(self.allowed_audiences)) or 'none'}; a platform admin sets "
                "--allowed-token-audiences)",
            )
        issuer = await self._api_issuer()
        if issuer is not None and issuer in audiences:
            self._verdicts[audiences] = (self._clock(), True)
            raise self._refuse(
                grant, f"audience {issuer} is the Kubernetes API server's own (its issuer)"
            )
        verdict = self._cached_verdict(audiences)
        if verdict is True:
            raise self._refuse(grant, self._accepted_message(audiences))

    async def _check_audiences_after(
        self, grant: TokenGrant, audiences: frozenset[str], token: str
    ) -> None:
        if self._cached_verdict(audiences) is False:
            return
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            # No audiences: the API server checks the token against its own.
            "spec": {"token": token},
        }
        try:
            review = await self._kube.create_object(TOKEN_REVIEWS, body)
        except KubeError as exc:
            raise ReconcileProblem(
                Reason.AUDIENCE_CHECK_FAILED,
                f"cannot verify that the API server refuses tokens for audience(s) "
                f"{', '.join(sorted(audiences))} (TokenReview failed: {exc}); no token is sent",
            ) from None
        accepted = bool((review.get("status") or {}).get("authenticated"))
        self._verdicts[audiences] = (self._clock(), accepted)
        if accepted:
            log.warning(
                "refused a ServiceAccount token for %s/%s: the API server accepts audience(s) %s",
                grant.namespace,
                grant.service_account,
                ", ".join(sorted(audiences)),
            )
            raise self._refuse(grant, self._accepted_message(audiences))

    async def _token_request(self, grant: TokenGrant) -> str:
        who = f"{grant.namespace}/{grant.service_account}"
        try:
            return await self._kube.create_token(
                grant.namespace,
                grant.service_account,
                audiences=list(grant.audiences),
                expiration_seconds=grant.expiration_seconds,
            )
        except NotFound as exc:
            raise ReconcileProblem(
                Reason.SERVICE_ACCOUNT_NOT_FOUND, f"ServiceAccount {who} does not exist"
            ) from exc
        except ApiError as exc:
            raise ReconcileProblem(
                Reason.TOKEN_REQUEST_FAILED, f"TokenRequest for ServiceAccount {who} failed: {exc}"
            ) from exc

    # -- the API server's audiences --------------------------------------------------------

    def _cached_verdict(self, audiences: frozenset[str]) -> bool | None:
        cached = self._verdicts.get(audiences)
        if cached is None or self._clock() - cached[0] >= AUDIENCE_VERDICT_SECONDS:
            return None
        return cached[1]

    async def _api_issuer(self) -> str | None:
        """The API server's service-account issuer, which is also its default audience; None
        when discovery is unavailable (the TokenReview after the TokenRequest still decides)."""
        now = self._clock()
        if self._issuer is not None and now - self._issuer[0] < AUDIENCE_VERDICT_SECONDS:
            return self._issuer[1]
        try:
            doc = await self._kube.openid_configuration()
            issuer = str(doc.get("issuer") or "") or None
        except KubeError as exc:
            log.debug("service-account issuer discovery unavailable: %s", exc)
            issuer = None
        self._issuer = (now, issuer)
        return issuer

    @staticmethod
    def _accepted_message(audiences: frozenset[str]) -> str:
        return (
            f"the Kubernetes API server accepts tokens for audience(s) "
            f"{', '.join(sorted(audiences))}: such a token would let the Vault server act as the "
            "ServiceAccount against the cluster"
        )

    @staticmethod
    def _refuse(grant: TokenGrant, why: str) -> ReconcileProblem:
        return ReconcileProblem(
            AUDIENCE_NOT_ALLOWED,
            f"VaultAuth {grant.auth_key}: no token for ServiceAccount "
            f"{grant.namespace}/{grant.service_account}: {why}",
            retry=False,
        )
