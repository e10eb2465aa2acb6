"""VaultAuth: validated by a real login with its method, reported in status valid/error.

The login goes through the shared client cache under the same key the secret resources of
the VaultAuth's own namespace use, so validating costs no extra Vault login for them.
"""

from __future__ import annotations

import logging
from typing import Any

from vaultbridge.api.kinds import VAULT_AUTH, VAULT_AUTHS
from vaultbridge.engine.backoff import jittered
from vaultbridge.engine.controller import Controller, Result, ignore_status_only
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects

from .context import OperatorContext
from .errors import ReconcileProblem
from .status import report_validity
from .vault_access import VaultAccess
from .watches import (
    Sources,
    auth_uses_connection,
    auth_uses_global,
    refs_to,
    spec_changes_only,
)

log = logging.getLogger(__name__)

RECHECK_SECONDS = 300.0
RETRY_SECONDS = 30.0


class VaultAuthReconciler:
    kind = VAULT_AUTH.kind

    def __init__(self, ctx: OperatorContext, access: VaultAccess) -> None:
        self.ctx = ctx
        self.access = access

    def setup_with_manager(self, ctl: Controller, sources: Sources) -> None:
        """Its objects, the connections they log in through and the globals they merge."""
        ctl.watch(sources.auths, priority_fn=ignore_status_only)
        ctl.watch(
            sources.connections,
            mapper=lambda conn: refs_to(
                sources.auths.store.list(),
                lambda a: auth_uses_connection(a, conn, sources.access),
            ),
            priority_fn=spec_changes_only,
        )
        # Creation and deletion of a global map too: a VaultAuth may be waiting for it, or
        # must now report it missing; updates only when the global's spec changed.
        ctl.watch(
            sources.auth_globals(),
            mapper=lambda glob: refs_to(
                sources.auths.store.list(),
                lambda a: auth_uses_global(a, glob, self.ctx.settings.namespace),
            ),
            priority_fn=spec_changes_only,
        )

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(VAULT_AUTHS).store.get(key)
        # Tokens of a deleted VaultAuth, or of its (or its connection's) old generations, are
        # never used again: drop them from memory and from the token store.
        await self.access.purge_stale_tokens(key, obj)
        if obj is None:
            return Result()
        status: dict[str, Any] = dict(obj.get("status") or {})
        retry = True
        try:
            # `name` alone resolves in the VaultAuth's own namespace, which it always allows.
            resolved = await self.access.resolve(key.namespace, f"{key.namespace}/{key.name}")
            await self.access.client(resolved, key.namespace)
        except ReconcileProblem as problem:
            ok, reason, message, retry = False, problem.reason, problem.message, problem.retry
        else:
            ok, reason = True, "LoginSucceeded"
            message = f"logged in to Vault with method {resolved.auth.method}"
            if resolved.global_obj is not None:
                message += (
                    " (merged with VaultAuthGlobal "
                    f"{objects.namespace(resolved.global_obj)}/{objects.name(resolved.global_obj)})"
                )
        if ok:
            status.pop("error", None)
        else:
            status["error"] = message
        await report_validity(
            self.ctx.kube,
            self.ctx.events,
            VAULT_AUTHS,
            obj,
            status,
            ok=ok,
            reason=reason,
            message=message,
        )
        if ok:
            return Result(requeue_after=jittered(RECHECK_SECONDS))
        return Result(requeue_after=jittered(RETRY_SECONDS) if retry else None)
