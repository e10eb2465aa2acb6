"""SecretTransformation: check that every template and pattern compiles; report it in status.

Invalid regular expressions pass the API server (CEL cannot compile them), and template syntax
can only be checked by Jinja2, so this controller is where a user learns about them before a
secret resource that references the transformation fails.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.kinds import SECRET_TRANSFORMATION, SECRET_TRANSFORMATIONS
from vaultbridge.api.transformation import SecretTransformationSpec
from vaultbridge.engine.controller import Controller, Result, ignore_status_only
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.pipeline import validate_transformation

from .context import OperatorContext
from .status import report_validity
from .transform import transformation_spec
from .watches import Sources


class SecretTransformationReconciler:
    kind = SECRET_TRANSFORMATION.kind

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    def setup_with_manager(self, ctl: Controller, sources: Sources) -> None:
        ctl.watch(sources.transformations, priority_fn=ignore_status_only)

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.ctx.informer(SECRET_TRANSFORMATIONS).store.get(key)
        if obj is None:
            return Result()
        status: dict[str, Any] = dict(obj.get("status") or {})
        error: str | None = None
        try:
            spec = SecretTransformationSpec.model_validate(obj.get("spec") or {})
            validate_transformation(transformation_spec(spec))
        except ValidationError as exc:
            error = describe_validation_error(exc)
        except DataError as exc:
            error = str(exc)
        ok = error is None
        if ok:
            status.pop("error", None)
            reason, message = "Valid", "every template and pattern compiles"
        else:
            status["error"] = error
            reason, message = "TransformationError", str(error)
        await report_validity(
            self.ctx.kube,
            self.ctx.events,
            SECRET_TRANSFORMATIONS,
            obj,
            status,
            ok=ok,
            reason=reason,
            message=message,
        )
        return Result()
