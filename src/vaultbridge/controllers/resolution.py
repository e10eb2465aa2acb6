"""From a reference to what a login needs: VaultAuth (merged with its VaultAuthGlobal) →
VaultConnection → connection settings, with every tenancy and address check on the way.

Resolution reads the informer caches (no API calls but the CA Secret: ca_bundle.py) and
enforces `allowedNamespaces` and the address allow-list before anything touches Vault.
`VaultAccess` (vault_access.py) builds on it to log in; the inject webhook uses the same
resolution, so a pod can never get a configuration the reconcile would refuse.

Every reconcile resolves its reference, and thousands of objects share one VaultAuth and
one VaultConnection: their parsed specs (pydantic validation, the VaultAuthGlobal merge, the
connection settings) are remembered per object *version* — the informer stores a new dict
for every version, so "the stored object is the one parsed" is an identity check
(`_Parsed`). Only successes are remembered (a refusal is recomputed, its message fresh), and
every per-consumer check (allowed namespaces, the address allow-list) still runs on every
resolve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.auth import VaultAuthSpec
from vaultbridge.api.auth_global import (
    GlobalKey,
    GlobalNotAllowed,
    GlobalNotFound,
    GlobalRefError,
    VaultAuthGlobalSpec,
    effective_auth_spec,
)
from vaultbridge.api.common import describe_validation_error, resolve_ref
from vaultbridge.api.connection import VaultConnectionSpec
from vaultbridge.api.kinds import VAULT_AUTH_GLOBALS, VAULT_AUTHS, VAULT_CONNECTIONS
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.vault.connection import ConnectionSettings

from .ca_bundle import CaBundles
from .context import OperatorContext
from .credential_guard import CredentialGuard
from .errors import ReconcileProblem
from .reasons import Reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedAuth:
    auth_key: ObjectKey
    auth_obj: dict[str, Any]
    auth: VaultAuthSpec
    connection_key: ObjectKey
    connection_obj: dict[str, Any]
    settings: ConnectionSettings
    global_obj: dict[str, Any] | None = None
    """The VaultAuthGlobal merged into `auth`, if the VaultAuth references one."""

    def global_version(self) -> str:
        """Identifies the global's spec as merged (empty: none), for the client-cache key."""
        if self.global_obj is None:
            return ""
        return (
            f"{objects.namespace(self.global_obj)}/{objects.name(self.global_obj)}"
            f"@{objects.uid(self.global_obj)}:{objects.generation(self.global_obj)}"
        )


@dataclass(frozen=True)
class _Parsed:
    """What was parsed from exactly these stored objects (compared by identity: a new
    version of either is a new dict in the informer store). The objects are held, so an
    identity cannot be reused by another object while the entry exists."""

    source: dict[str, Any]
    global_obj: dict[str, Any] | None
    global_key: GlobalKey | None
    value: Any


class AuthResolver:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        # Who may get which ServiceAccount token, sent where: every check in one place.
        self.guard = CredentialGuard(ctx.kube, ctx.settings)
        self.ca_bundles = CaBundles(ctx.kube)
        # One entry per VaultAuth / VaultConnection key (see the module docstring).
        self._auths: dict[ObjectKey, _Parsed] = {}
        self._connections: dict[ObjectKey, _Parsed] = {}

    def forget_auth(self, key: ObjectKey) -> None:
        """The VaultAuth is gone: drop what was parsed of it (its reconciler calls this)."""
        self._auths.pop(key, None)

    def forget_connection(self, key: ObjectKey) -> None:
        """The VaultConnection is gone: drop what was parsed of it (the CA bundle cache,
        ca_bundle.py, is keyed by Secret, not by connection: nothing of it to drop here)."""
        self._connections.pop(key, None)

    # -- resolution ----------------------------------------------------------------------

    def auth_key_for(self, consumer_namespace: str, ref: str) -> ObjectKey:
        return resolve_ref(
            ref, own_namespace=consumer_namespace, operator_namespace=self.ctx.settings.namespace
        )

    async def resolve(self, consumer_namespace: str, ref: str) -> ResolvedAuth:
        auth_key = self.auth_key_for(consumer_namespace, ref)
        auth_obj = self.ctx.informer(VAULT_AUTHS).store.get(auth_key)
        if auth_obj is None:
            raise ReconcileProblem(
                Reason.VAULT_AUTH_NOT_FOUND,
                f"VaultAuth {auth_key} does not exist (vaultAuthRef {ref!r}; an empty ref means "
                f"`default` in the operator namespace {self.ctx.settings.namespace})",
            )
        auth, global_obj = self.effective_auth(auth_key, auth_obj)
        if not auth.allows_namespace(consumer_namespace, own_namespace=auth_key.namespace):
            raise ReconcileProblem(
                Reason.NAMESPACE_NOT_ALLOWED,
                f"VaultAuth {auth_key} does not allow namespace {consumer_namespace!r} "
                "(add it to spec.allowedNamespaces of the VaultAuth)",
                retry=False,
            )
        connection_key = auth.connection_ref(
            own_namespace=auth_key.namespace, operator_namespace=self.ctx.settings.namespace
        )
        conn_obj = self.ctx.informer(VAULT_CONNECTIONS).store.get(connection_key)
        if conn_obj is None:
            raise ReconcileProblem(
                Reason.VAULT_CONNECTION_NOT_FOUND,
                f"VaultConnection {connection_key} (used by VaultAuth {auth_key}) does not exist",
            )
        settings = await self.connection_settings(
            connection_key, conn_obj, auth_namespace=auth_key.namespace
        )
        return ResolvedAuth(
            auth_key, auth_obj, auth, connection_key, conn_obj, settings, global_obj
        )

    def effective_auth(
        self, auth_key: ObjectKey, auth_obj: dict[str, Any]
    ) -> tuple[VaultAuthSpec, dict[str, Any] | None]:
        """The VaultAuth's spec as used for logins (merged with its VaultAuthGlobal, if it
        references one) and that global; ReconcileProblem when either is unusable.
        Remembered while neither object changes (module docstring)."""
        globals_store = self.ctx.informer(VAULT_AUTH_GLOBALS).store
        known = self._auths.get(auth_key)
        if (
            known is not None
            and known.source is auth_obj
            and (
                known.global_key is None
                or globals_store.get(ObjectKey(known.global_key.namespace, known.global_key.name))
                is known.global_obj
            )
        ):
            auth: VaultAuthSpec = known.value
            return auth, known.global_obj
        auth, global_obj, global_key = self._parse_auth(auth_key, auth_obj)
        self._auths[auth_key] = _Parsed(auth_obj, global_obj, global_key, auth)
        return auth, global_obj

    def _parse_auth(
        self, auth_key: ObjectKey, auth_obj: dict[str, Any]
    ) -> tuple[VaultAuthSpec, dict[str, Any] | None, GlobalKey | None]:
        globals_store = self.ctx.informer(VAULT_AUTH_GLOBALS).store
        seen: dict[GlobalKey, dict[str, Any]] = {}

        def lookup(key: GlobalKey) -> dict[str, Any] | None:
            obj = globals_store.get(ObjectKey(key.namespace, key.name))
            if obj is None:
                return None
            seen[key] = obj
            try:
                VaultAuthGlobalSpec.model_validate(obj.get("spec") or {})
            except ValidationError as exc:
                raise ReconcileProblem(
                    Reason.INVALID_VAULT_AUTH_GLOBAL,
                    f"VaultAuthGlobal {key} (vaultAuthGlobalRef of VaultAuth {auth_key}) is "
                    f"invalid: {describe_validation_error(exc)}",
                    retry=False,
                ) from exc
            spec: dict[str, Any] = obj.get("spec") or {}
            return spec

        try:
            spec, global_key = effective_auth_spec(
                auth_obj.get("spec") or {},
                auth_namespace=auth_key.namespace,
                operator_namespace=self.ctx.settings.namespace,
                lookup=lookup,
            )
        except GlobalNotFound as exc:
            raise ReconcileProblem(
                Reason.VAULT_AUTH_GLOBAL_NOT_FOUND, f"VaultAuth {auth_key}: {exc}"
            ) from exc
        except GlobalNotAllowed as exc:
            raise ReconcileProblem(
                Reason.VAULT_AUTH_GLOBAL_NAMESPACE_NOT_ALLOWED,
                f"VaultAuth {auth_key}: {exc}",
                retry=False,
            ) from exc
        except GlobalRefError as exc:
            raise ReconcileProblem(
                Reason.INVALID_VAULT_AUTH, f"VaultAuth {auth_key}: {exc}", retry=False
            ) from exc
        try:
            auth = VaultAuthSpec.model_validate(spec)
        except ValidationError as exc:
            merged = f" (merged with VaultAuthGlobal {global_key})" if global_key else ""
            raise ReconcileProblem(
                Reason.INVALID_VAULT_AUTH,
                f"VaultAuth {auth_key}{merged} is invalid: {describe_validation_error(exc)}",
                retry=False,
            ) from exc
        return auth, (seen.get(global_key) if global_key else None), global_key

    async def connection_settings(
        self, key: ObjectKey, conn_obj: dict[str, Any], *, auth_namespace: str | None = None
    ) -> ConnectionSettings:
        """How to reach a VaultConnection; the only way to one, so an address outside the
        allow-list (or a connection that does not allow `auth_namespace`) is never contacted.
        Without a CA Secret the settings depend on the spec alone and are remembered with it
        (module docstring); the checks run every time."""
        known = self._connections.get(key)
        if known is not None and known.source is conn_obj:
            spec: VaultConnectionSpec = known.value[0]
            self.guard.check_connection(key, spec, auth_namespace=auth_namespace)
            settings: ConnectionSettings | None = known.value[1]
            if settings is not None:
                return settings
        else:
            spec = self.connection_spec(key, conn_obj)
            self.guard.check_connection(key, spec, auth_namespace=auth_namespace)
        ca_pem = None
        if spec.ca_cert_secret_ref:
            ca_pem = await self.ca_bundles.pem(key.namespace, spec.ca_cert_secret_ref)
        settings = self._settings(key, spec, ca_pem)
        self._connections[key] = _Parsed(
            conn_obj, None, None, (spec, None if spec.ca_cert_secret_ref else settings)
        )
        return settings

    @staticmethod
    def _settings(
        key: ObjectKey, spec: VaultConnectionSpec, ca_pem: bytes | None
    ) -> ConnectionSettings:
        try:
            return ConnectionSettings(
                address=spec.address,
                ca_pem=ca_pem,
                tls_server_name=spec.tls_server_name,
                skip_tls_verify=spec.skip_tls_verify,
                headers=dict(spec.headers),
                timeout=spec.timeout_seconds,
            )
        except ValueError as exc:
            raise ReconcileProblem(
                Reason.INVALID_VAULT_CONNECTION, f"VaultConnection {key}: {exc}", retry=False
            ) from exc

    @staticmethod
    def connection_spec(key: ObjectKey, conn_obj: dict[str, Any]) -> VaultConnectionSpec:
        try:
            return VaultConnectionSpec.model_validate(conn_obj.get("spec") or {})
        except ValidationError as exc:
            raise ReconcileProblem(
                Reason.INVALID_VAULT_CONNECTION,
                f"VaultConnection {key} is invalid: {describe_validation_error(exc)}",
                retry=False,
            ) from exc
