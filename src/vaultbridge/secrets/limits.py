"""`RenderLimits`: the bounds of one template render, apart from the sandbox that enforces
them (`sandbox.py`), so that code which only passes limits along (the pipeline) does not load
Jinja2 before a template is rendered."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderLimits:
    """Bounds on one `render_templates` call (all its templates together, except the output
    limit per template)."""

    max_template_chars: int = 65_536
    """Longest template source accepted (matches the CRD limit)."""
    max_output_bytes: int = 1_048_576
    """Largest rendered value of one template, in UTF-8 bytes."""
    max_total_output_bytes: int = 1_048_576
    """Largest sum of all rendered values."""
    max_string_chars: int = 1_048_576
    """Longest string any operation may build."""
    max_items: int = 100_000
    """Longest list/tuple any operation may build, and the largest `range`."""
    max_operations: int = 250_000
    """Loop iterations, calls, lookups, operators, filters, tests and outputs."""
    max_work: int = 32 * 1_048_576
    """Characters and items produced in total by all operations."""
    max_int_bits: int = 8_192
    """Largest integer `*` and `**` may produce."""
    max_format_width: int = 4_096
    """Largest width or precision in `%`-formatting, `str.format` and `format`."""
    timeout_seconds: float = 30.0
    """Wall-clock guard, the last resort only: the counted limits above stop every template
    long before it (the heaviest accepted template, `max_operations` and `max_work` at their
    limits, renders in well under a second on an idle core), so what a spec is allowed to do
    never depends on how busy the machine is. It exists for a gap in the counting, not as a
    limit users meet."""


DEFAULT_LIMITS = RenderLimits()
