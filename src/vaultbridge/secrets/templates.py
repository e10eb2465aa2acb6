"""Render the `templates` of a transformation into Secret values (Jinja2, sandboxed, bounded).

Template variables:

| name | holds |
|---|---|
| `secrets` | the data read from Vault, key -> value, typed as Vault returned it (string, |
| | number, boolean, null, list, object); with several sources keys carry their prefix |
| `metadata` | Vault metadata of the first source (KV v2: `version`, `custom_metadata`, ...) |
| `labels` | labels of the custom resource |
| `annotations` | annotations of the custom resource |
| `sources` | every source in order as `{"prefix", "secrets", "metadata"}` (pipeline only) |

Helpers: see `vaultbridge.secrets.template_helpers` (base64, JSON, YAML, PEM, docker config,
sha256), plus Jinja2's deterministic built-in filters and tests, `range`, `dict`, `namespace`,
and the `break`/`continue` loop controls. Undefined names and keys are errors, not empty
strings, so a typo cannot silently produce an empty credential. Output keeps a trailing
newline when the template has one.

`source_templates` are named templates that the others can `{% include %}`, `{% import %}` or
`{% extends %}`; nothing else can be loaded (no files, environment or network).

Every failure is a `TemplateError` naming the template key and the line, with any secret value
scrubbed from the message. Limits are described in `vaultbridge.secrets.sandbox`.

`render_templates_async` always hands the rendering to a worker thread (`asyncio.to_thread`):
a cheap render costs a thread hop of tens of microseconds, while an expensive one may take up to
the time budget, which must never stall the event loop; deciding up front which is which would
need the rendering itself.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta

from vaultbridge.secrets.data import validate_key
from vaultbridge.secrets.errors import TemplateError, quote
from vaultbridge.secrets.redact import redact_text
from vaultbridge.secrets.sandbox import (
    CODE_CACHE,
    DEFAULT_LIMITS,
    BoundedSandbox,
    Budget,
    RenderLimits,
    source_filename,
    template_filename,
)

_MAX_MESSAGE = 600


@dataclass(frozen=True)
class TemplateContext:
    """What templates can see. `secrets` values are scrubbed from error messages."""

    secrets: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further variables (the pipeline adds `sources`); also scrubbed from messages."""

    def variables(self) -> dict[str, Any]:
        return {
            **self.extra,
            "secrets": dict(self.secrets),
            "metadata": dict(self.metadata),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }

    def __repr__(self) -> str:
        return f"TemplateContext(secrets=<{len(self.secrets)} keys redacted>, ...)"


class _Renderer:
    def __init__(
        self,
        templates: Mapping[str, str],
        context: TemplateContext,
        source_templates: Mapping[str, str],
        limits: RenderLimits,
    ) -> None:
        self.templates = templates
        self.context = context
        self.source_templates = source_templates
        self.limits = limits
        self.where: dict[str, tuple[str | None, str]] = {}
        for name in source_templates:
            self.where[source_filename(name)] = ("source", name)
        for key in templates:
            self.where[template_filename(key)] = ("template", key)

    def _fail(
        self, key: str | None, message: str, line: int | None, source: str | None
    ) -> TemplateError:
        secrets_seen = [self.context.secrets, self.context.extra]
        clean = redact_text(message, secrets_seen)
        if len(clean) > _MAX_MESSAGE:
            clean = clean[: _MAX_MESSAGE - 3] + "..."
        return TemplateError(clean, template=key, line=line, source_template=source)

    def _locate(self, exc: BaseException) -> tuple[int | None, str | None]:
        """The innermost template line in the traceback, and the source template if any."""
        if isinstance(exc, jinja2.TemplateSyntaxError) and exc.lineno:
            if exc.filename in self.where:
                kind, name = self.where[exc.filename]
                return exc.lineno, (name if kind == "source" else None)
            return exc.lineno, None
        line: int | None = None
        source: str | None = None
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            place = self.where.get(frame.f_code.co_filename)
            if place is not None:
                line = lineno
                source = place[1] if place[0] == "source" else None
        return line, source

    @staticmethod
    def _describe(exc: BaseException) -> str:
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return f"syntax error: {exc.message}"
        if isinstance(exc, jinja2.TemplateNotFound):
            return f"no source template named {quote(str(exc.name or ''))}"
        if isinstance(exc, jinja2.TemplateError):
            return str(exc.message or type(exc).__name__)
        if isinstance(exc, RecursionError):
            return "recursion too deep (does a template or macro call itself without end?)"
        if isinstance(exc, MemoryError):
            return "out of memory"
        return f"{type(exc).__name__}: {exc}"

    def render(self) -> dict[str, bytes]:
        for key, text in self.templates.items():
            validate_key(key)
            self._check_source(key, text)
        for name, text in self.source_templates.items():
            self._check_source(name, text, source=True)
        budget = Budget(self.limits)
        env = BoundedSandbox(budget, self.source_templates)
        variables = self.context.variables()
        rendered: dict[str, bytes] = {}
        total = 0
        for key, text in self.templates.items():
            # The error is built outside the `except` block so that the original exception,
            # whose message may quote a secret, is not chained to it.
            failure: TemplateError | None = None
            try:
                value = self._render_one(env, key, text, variables)
            except Exception as exc:  # every template failure becomes a TemplateError
                line, source = self._locate(exc)
                failure = self._fail(key, self._describe(exc), line, source)
            if failure is not None:
                raise failure
            total += len(value)
            if total > self.limits.max_total_output_bytes:
                raise TemplateError(
                    f"the rendered templates exceed {self.limits.max_total_output_bytes} "
                    "bytes together",
                    template=key,
                )
            rendered[key] = value
        return rendered

    def _check_source(self, name: str, text: str, *, source: bool = False) -> None:
        template, source_template = (None, name) if source else (name, None)
        if not isinstance(text, str):
            raise TemplateError(
                "the template text must be a string",
                template=template,
                source_template=source_template,
            )
        if len(text) > self.limits.max_template_chars:
            raise TemplateError(
                f"the template is longer than {self.limits.max_template_chars} characters",
                template=template,
                source_template=source_template,
            )

    def check(self) -> None:
        """Compile every template and source template; check that includes name known ones."""
        for key, text in self.templates.items():
            validate_key(key)
            self._check_source(key, text)
        for name, text in self.source_templates.items():
            self._check_source(name, text, source=True)
        env = BoundedSandbox(Budget(self.limits), self.source_templates)
        entries: list[tuple[str | None, str | None, str]] = [
            (key, None, text) for key, text in self.templates.items()
        ]
        entries += [(None, name, text) for name, text in self.source_templates.items()]
        for entry_key, source, text in entries:
            failure: TemplateError | None = None
            name = entry_key or source or ""
            filename = template_filename(name) if entry_key else source_filename(name)
            try:
                tree = env.parse(text, name=name, filename=filename)
                env.compile(tree, name=name, filename=filename)
                missing = sorted(
                    str(ref)
                    for ref in meta.find_referenced_templates(tree)
                    if ref is not None and ref not in self.source_templates
                )
            except Exception as exc:  # syntax errors and budget errors of constant folding
                line, _ = self._locate(exc)
                failure = self._fail(entry_key, self._describe(exc), line, source)
            if failure is not None:
                raise failure
            if missing:
                raise TemplateError(
                    f"no source template named {quote(missing[0])}",
                    template=entry_key,
                    source_template=source,
                )

    def _render_one(
        self, env: BoundedSandbox, key: str, text: str, variables: dict[str, Any]
    ) -> bytes:
        code = CODE_CACHE.get(env, text, key, template_filename(key))
        template = env.template_class.from_code(env, code, env.make_globals(None))
        limit = self.limits.max_output_bytes
        size = 0
        chunks: list[str] = []
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > limit:
                raise jinja2.TemplateRuntimeError(f"the output is larger than {limit} bytes")
            chunks.append(chunk)
        data = "".join(chunks).encode("utf-8")
        if len(data) > limit:
            raise jinja2.TemplateRuntimeError(f"the output is larger than {limit} bytes")
        return data


def render_templates(
    templates: Mapping[str, str],
    context: TemplateContext,
    *,
    source_templates: Mapping[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> dict[str, bytes]:
    """Render each template (key -> Jinja2 text) to UTF-8 bytes, in the given key order.

    Raises `TemplateError` (and `InvalidKeyError` for a key that cannot be a Secret key). The
    limits apply to the whole call; see `RenderLimits`.
    """
    return _Renderer(templates, context, source_templates or {}, limits).render()


def check_templates(
    templates: Mapping[str, str],
    *,
    source_templates: Mapping[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> None:
    """Raise `TemplateError` for a template or source template that does not compile, or that
    includes/imports/extends a constant name that is not a source template. Needs no data."""
    _Renderer(templates, TemplateContext(), source_templates or {}, limits).check()


async def render_templates_async(
    templates: Mapping[str, str],
    context: TemplateContext,
    *,
    source_templates: Mapping[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> dict[str, bytes]:
    """`render_templates` in a worker thread (see the module docstring for why always)."""
    if not templates:
        return {}
    return await asyncio.to_thread(
        render_templates, templates, context, source_templates=source_templates, limits=limits
    )
