"""VaultConnection: is Vault reachable, trusted and unsealed? Checked on change and periodically."""

from __future__ import annotations

import logging
from typing import Any

from vaultbridge.api.kinds import VAULT_CONNECTION, VAULT_CONNECTIONS
from vaultbridge.engine.backoff import jittered
from vaultbridge.engine.controller import Controller, Result, ignore_status_only
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import VaultError, VaultTLSError, VaultUnreachable

from .context import OperatorContext
from .errors import ReconcileProblem
from .status import get_condition, report_validity
from .vault_access import VaultAccess
from .watches import Sources

log = logging.getLogger(__name__)

RECHECK_SECONDS = 300.0
RETRY_SECONDS = 30.0


class VaultConnectionReconciler:
    kind = VAULT_CONNECTION.kind

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        self.ctx = ctx
        self.access = access

    def setup_with_manager(self, ctl: Controller, sources: Sources) -> None:
        ctl.watch(sources.connections, priority_fn=ignore_status_only)

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(VAULT_CONNECTIONS).store.get(key)
        if obj is None:
            self.access.forget_connection(key)
            return Result()
        status: dict[str, Any] = dict(obj.get("status") or {})
        ok, reason, message = await self._check(key, obj, status)
        await report_validity(
            self.ctx.kube,
            self.ctx.events,
            VAULT_CONNECTIONS,
            obj,
            status,
            ok=ok,
            reason=reason,
            message=message,
        )
        return Result(requeue_after=jittered(RECHECK_SECONDS if ok else RETRY_SECONDS))

    async def _check(
        self, key: ObjectKey, obj: dict[str, Any], status: dict[str, Any]
    ) -> tuple[bool, str, str]:
        try:
            settings = await self.access.connection_settings(key, obj)
        except ReconcileProblem as problem:
            return False, problem.reason, problem.message
        if settings.skip_tls_verify and settings.is_tls:
            # Every token and secret on this connection could be read by anyone on the path.
            insecure = (
                f"skipTLSVerify is true: the certificate of {settings.address} is not verified "
                "(development only; set caCertSecretRef instead)"
            )
            log.warning("VaultConnection %s: %s", key, insecure)
            ready = get_condition(obj, "Ready") or {}
            if ready.get("observedGeneration") != objects.generation(obj):
                self.ctx.events.emit(obj, "Warning", "InsecureSkipTLSVerify", insecure)
        client = VaultClient(self.ctx.vault_transport, settings)
        try:
            health = await client.sys_health()
        except VaultTLSError as exc:
            return False, "TLSError", f"TLS handshake with {settings.address} failed: {exc}"
        except VaultUnreachable as exc:
            return False, "VaultUnreachable", f"cannot reach {settings.address}: {exc}"
        except VaultError as exc:
            return False, exc.reason, f"{settings.address}: {exc}"
        status["vaultVersion"] = health.version
        status["sealed"] = health.sealed
        if not health.initialized:
            return False, "VaultNotInitialized", f"Vault at {settings.address} is not initialized"
        if health.sealed:
            return False, "VaultSealed", f"Vault at {settings.address} is sealed"
        return True, "Connected", f"Vault {health.version} at {settings.address} is unsealed"
