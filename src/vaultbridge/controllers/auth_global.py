"""VaultAuthGlobal: its spec checked and reported in status valid/error.

A global does nothing by itself: the VaultAuths that reference it merge it in when they are
resolved (controllers/vault_access.py), and its changes requeue them (controllers/auth.py).
So this reconcile touches neither Vault nor other objects; a spec the API server let through
but the model refuses (an older CRD) is reported here, and by every VaultAuth using it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from vaultbridge.api.auth_global import VaultAuthGlobalSpec
from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.kinds import VAULT_AUTH_GLOBAL, VAULT_AUTH_GLOBALS
from vaultbridge.engine.controller import Controller, Result, ignore_status_only
from vaultbridge.engine.keys import ObjectKey

from .context import OperatorContext
from .reasons import Reason
from .status import report_validity
from .watches import Sources


class VaultAuthGlobalReconciler:
    kind = VAULT_AUTH_GLOBAL.kind

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    def setup_with_manager(self, ctl: Controller, sources: Sources) -> None:
        ctl.watch(sources.auth_globals(), priority_fn=ignore_status_only)

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(VAULT_AUTH_GLOBALS).store.get(key)
        if obj is None:
            return Result()
        status: dict[str, Any] = dict(obj.get("status") or {})
        try:
            VaultAuthGlobalSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            ok, reason = False, str(Reason.INVALID_VAULT_AUTH_GLOBAL)
            message = f"VaultAuthGlobal {key} is invalid: {describe_validation_error(exc)}"
            status["error"] = message
        else:
            ok, reason, message = True, "Accepted", "the VaultAuthGlobal's spec is valid"
            status.pop("error", None)
        # Only Ready: a global reaches nothing by itself, so it has no health of its own.
        await report_validity(
            self.ctx.kube,
            self.ctx.events,
            VAULT_AUTH_GLOBALS,
            obj,
            status,
            ok=ok,
            reason=reason,
            message=message,
            healthy=False,
        )
        return Result()
