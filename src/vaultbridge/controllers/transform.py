"""Map a destination's transformation (inline + SecretTransformation references) and the Vault
reads onto the pure pipeline in `vaultbridge.secrets.pipeline`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from vaultbridge.api.common import describe_validation_error
from vaultbridge.api.destination import Destination
from vaultbridge.api.kinds import SECRET_TRANSFORMATIONS
from vaultbridge.api.transformation import SecretTransformationSpec
from vaultbridge.fetch import SourceRead, kv_pipeline_sources
from vaultbridge.kube import objects
from vaultbridge.secrets import pipeline
from vaultbridge.secrets.errors import DataError
from vaultbridge.secrets.redact import SecretData

from .context import OperatorContext
from .errors import ReconcileProblem
from .reasons import Reason


def transformation_spec(spec: SecretTransformationSpec) -> pipeline.TransformationSpec:
    return pipeline.TransformationSpec(
        templates={k: t.text for k, t in spec.templates.items()},
        source_templates={t.name: t.text for t in spec.source_templates},
        includes=tuple(spec.includes),
        excludes=tuple(spec.excludes),
    )


def resolve_transformation(
    ctx: OperatorContext, namespace: str, dest: Destination
) -> pipeline.TransformationSpec:
    tr = dest.transformation
    inline = pipeline.TransformationSpec(
        templates={k: t.text for k, t in tr.templates.items()},
        includes=tuple(tr.includes),
        excludes=tuple(tr.excludes),
        exclude_raw=tr.exclude_raw,
    )
    refs: list[pipeline.TransformationRef] = []
    store = ctx.informer(SECRET_TRANSFORMATIONS).store
    for ref in tr.transformation_refs:
        key = ref.key(namespace)
        obj = store.get(key)
        if obj is None:
            raise ReconcileProblem(
                Reason.SECRET_TRANSFORMATION_NOT_FOUND,
                f"SecretTransformation {key} named in transformationRefs does not exist",
            )
        try:
            parsed = SecretTransformationSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            raise ReconcileProblem(
                Reason.TRANSFORMATION_ERROR,
                f"SecretTransformation {key} is invalid: {describe_validation_error(exc)}",
                retry=False,
            ) from exc
        refs.append(
            pipeline.TransformationRef(
                name=str(key),
                spec=transformation_spec(parsed),
                template_refs=tuple(
                    pipeline.TemplateRef(t.name, t.key_override) for t in ref.template_refs
                ),
                ignore_includes=ref.ignore_includes,
                ignore_excludes=ref.ignore_excludes,
            )
        )
    try:
        return pipeline.combine_transformations(inline, refs)
    except DataError as exc:
        raise ReconcileProblem(exc.reason, str(exc), retry=False) from exc


async def build_data(
    reads: list[SourceRead], spec: pipeline.TransformationSpec, owner: Mapping[str, Any]
) -> SecretData:
    return await pipeline.build_secret_data_async(
        kv_pipeline_sources(reads),
        spec,
        labels=objects.labels(dict(owner)),
        annotations=objects.annotations(dict(owner)),
    )
