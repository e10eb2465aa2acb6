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
from .status import patch_status_if_changed, set_condition
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
        generation = int(obj["metadata"].get("generation") or 0)
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
        status["valid"] = ok
        if ok:
            status.pop("error", None)
            reason, message = "Valid", "every template and pattern compiles"
        else:
            status["error"] = error
            reason, message = "TransformationError", str(error)
        set_condition(status, "Ready", ok, reason, message, generation)
        set_condition(status, "Healthy", ok, reason, message, generation)
        old_valid = (obj.get("status") or {}).get("valid")
        await patch_status_if_changed(self.ctx.kube, SECRET_TRANSFORMATIONS, obj, status)
        if old_valid != ok:
            self.ctx.events.emit(obj, "Normal" if ok else "Warning", reason, message)
        return Result()
