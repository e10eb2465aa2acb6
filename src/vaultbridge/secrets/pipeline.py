"""From Vault responses and a transformation to the final data of a destination Secret.

The controllers map the `vaultbridge.api` models onto the plain dataclasses below (this
package does not import `api`) and call `build_secret_data[_async]`.

Order of one build:

1. each source's Vault data becomes Secret data (`data.vault_data_to_secret_data`: strings as
   UTF-8, other values as compact JSON, plus `_raw` unless `exclude_raw`);
2. the sources are merged, each key written as `prefix + key`; a key produced twice is a
   `KeyCollisionError` (with several sources, each `_raw` lands under `prefix + "_raw"`);
3. `excludes` drop matching keys, then non-empty `includes` keep only matching keys
   (`re.search` semantics, see `filters`); filters apply to source keys only;
4. the templates render against the full merged data (before filtering, so `excludes: [".*"]`
   plus templates publishes exactly the templated keys); a rendered key replaces a source key
   of the same name;
5. the total size is checked (`MAX_SECRET_DATA_BYTES`).

Combining an inline transformation with SecretTransformation references
(`combine_transformations`):

- templates: each reference contributes all its templates under their own keys, or only those
  named by its `template_refs` (optionally under `key_override`); two references rendering the
  same key is an error; an inline template replaces a referenced one of the same key (a local
  override);
- source templates: the union; the same name with different text in two references is an error;
  an inline source template replaces a referenced one of the same name;
- includes/excludes: inline patterns plus each reference's, unless the reference sets
  `ignore_includes` / `ignore_excludes`;
- `exclude_raw`: set when the inline transformation or any reference sets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaultbridge.secrets.data import (
    MAX_SECRET_DATA_BYTES,
    check_size,
    merge_sources,
    validate_key,
    vault_data_to_secret_data,
)
from vaultbridge.secrets.errors import TransformationError, quote
from vaultbridge.secrets.filters import compile_filter
from vaultbridge.secrets.limits import DEFAULT_LIMITS, RenderLimits
from vaultbridge.secrets.redact import SecretData


@dataclass(frozen=True, repr=False)
class Source:
    """One Vault read: its data (top-level keys), metadata, full response data for `_raw`."""

    data: Mapping[str, Any]
    prefix: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] | None = None
    """What `_raw` holds; defaults to `data`. For KV v2 pass the response's `data` object
    (with its `data` and `metadata`)."""

    def __repr__(self) -> str:
        return f"Source(prefix={self.prefix!r}, keys={sorted(self.data)!r}, values=<redacted>)"


@dataclass(frozen=True)
class TransformationSpec:
    """Templates and filters, inline in a secret object or from a SecretTransformation."""

    templates: Mapping[str, str] = field(default_factory=dict)
    """Secret key -> template text."""
    source_templates: Mapping[str, str] = field(default_factory=dict)
    """Name -> template text, includable by the templates."""
    includes: Sequence[str] = ()
    excludes: Sequence[str] = ()
    exclude_raw: bool = False


@dataclass(frozen=True)
class TemplateRef:
    """Pick one template of a referenced SecretTransformation."""

    name: str
    key_override: str | None = None


@dataclass(frozen=True)
class TransformationRef:
    """A referenced SecretTransformation, already read, with how to use it."""

    name: str
    """For messages, e.g. "namespace/name"."""
    spec: TransformationSpec
    template_refs: Sequence[TemplateRef] = ()
    ignore_includes: bool = False
    ignore_excludes: bool = False


def combine_transformations(
    inline: TransformationSpec | None, refs: Sequence[TransformationRef] = ()
) -> TransformationSpec:
    """The effective transformation (rules in the module docstring)."""
    inline = inline or TransformationSpec()
    templates: dict[str, str] = {}
    template_origin: dict[str, str] = {}
    source_templates: dict[str, str] = {}
    source_origin: dict[str, str] = {}
    includes = list(inline.includes)
    excludes = list(inline.excludes)
    exclude_raw = inline.exclude_raw

    for ref in refs:
        if ref.template_refs:
            chosen: list[tuple[str, str]] = []
            for template_ref in ref.template_refs:
                if template_ref.name not in ref.spec.templates:
                    raise TransformationError(
                        f"SecretTransformation {quote(ref.name)} has no template "
                        f"{quote(template_ref.name)}"
                    )
                key = template_ref.key_override or template_ref.name
                chosen.append((key, ref.spec.templates[template_ref.name]))
        else:
            chosen = list(ref.spec.templates.items())
        for key, text in chosen:
            if key in templates:
                raise TransformationError(
                    f"key {quote(key)} is rendered by templates of both "
                    f"{quote(template_origin[key])} and {quote(ref.name)}"
                )
            templates[key] = text
            template_origin[key] = ref.name
        for name, text in ref.spec.source_templates.items():
            if name in source_templates and source_templates[name] != text:
                raise TransformationError(
                    f"source template {quote(name)} is defined differently by "
                    f"{quote(source_origin[name])} and {quote(ref.name)}"
                )
            source_templates[name] = text
            source_origin[name] = ref.name
        if not ref.ignore_includes:
            includes.extend(ref.spec.includes)
        if not ref.ignore_excludes:
            excludes.extend(ref.spec.excludes)
        exclude_raw = exclude_raw or ref.spec.exclude_raw

    templates.update(inline.templates)
    source_templates.update(inline.source_templates)
    return TransformationSpec(
        templates=templates,
        source_templates=source_templates,
        includes=tuple(includes),
        excludes=tuple(excludes),
        exclude_raw=exclude_raw,
    )


def validate_transformation(
    spec: TransformationSpec, *, limits: RenderLimits = DEFAULT_LIMITS
) -> None:
    """Check what can be checked without data: keys, patterns, template syntax, includes.

    For the status of SecretTransformation objects and early errors on secret objects.
    """
    for key in spec.templates:
        validate_key(key)
    compile_filter(spec.includes, spec.excludes)
    from vaultbridge.secrets.templates import check_templates  # Jinja2 only when needed

    check_templates(spec.templates, source_templates=spec.source_templates, limits=limits)


def build_secret_data(
    sources: Sequence[Source],
    transformation: TransformationSpec | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
    max_bytes: int = MAX_SECRET_DATA_BYTES,
) -> SecretData:
    """The destination Secret data (steps in the module docstring). CPU-bound: see `_async`."""
    spec = transformation or TransformationSpec()
    key_filter = compile_filter(spec.includes, spec.excludes)
    converted = [
        (
            source.prefix,
            vault_data_to_secret_data(source.data, raw=source.raw, exclude_raw=spec.exclude_raw),
        )
        for source in sources
    ]
    merged = merge_sources(converted)
    result = key_filter.apply(merged)
    if spec.templates:
        # Jinja2 and the sandbox load with the first template (not for every plain copy).
        from vaultbridge.secrets.templates import TemplateContext, render_templates

        context = TemplateContext(
            secrets={
                source.prefix + key: value
                for source in sources
                for key, value in source.data.items()
            },
            metadata=dict(sources[0].metadata) if sources else {},
            labels=labels or {},
            annotations=annotations or {},
            extra={
                "sources": [
                    {
                        "prefix": source.prefix,
                        "secrets": dict(source.data),
                        "metadata": dict(source.metadata),
                    }
                    for source in sources
                ]
            },
        )
        rendered = render_templates(
            spec.templates, context, source_templates=spec.source_templates, limits=limits
        )
        result.update(rendered)
    check_size(result, max_bytes)
    return SecretData(result)


async def build_secret_data_async(
    sources: Sequence[Source],
    transformation: TransformationSpec | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
    max_bytes: int = MAX_SECRET_DATA_BYTES,
) -> SecretData:
    """`build_secret_data` off the event loop when it has templates or filters to run.

    A plain conversion (no templates, no patterns) is a few dict operations and runs inline;
    templates and regular expressions may take up to their time budgets, so they run in a
    worker thread.
    """
    spec = transformation or TransformationSpec()
    if not spec.templates and not spec.includes and not spec.excludes:
        return build_secret_data(
            sources, spec, labels=labels, annotations=annotations, limits=limits,
            max_bytes=max_bytes,
        )  # fmt: skip
    return await asyncio.to_thread(
        build_secret_data,
        sources,
        spec,
        labels=labels,
        annotations=annotations,
        limits=limits,
        max_bytes=max_bytes,
    )
