"""SecretTransformation: templates and key filters shared by many secret objects.

Regular expressions in includes/excludes are compiled when the spec is parsed. CEL cannot check
that a string is a valid regular expression, so the API server accepts a broken one; the
controller then reports it through `status.valid=false` and `status.error`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from vaultbridge.api.common import ApiModel
from vaultbridge.api.conditions import Conditions
from vaultbridge.api.destination import KeyRegex, SourceTemplate, Templates


class SecretTransformationSpec(ApiModel):
    """Reusable templates and key filters, referenced from a destination's transformationRefs."""

    templates: Templates = Field(default_factory=dict)
    """Templates keyed by the Secret key they render."""
    source_templates: Annotated[list[SourceTemplate], Field(max_length=64)] = Field(
        default_factory=list
    )
    """Named templates that the templates above can include."""
    includes: Annotated[list[KeyRegex], Field(max_length=64)] = Field(default_factory=list)
    """Keep only the keys matching one of these regular expressions."""
    excludes: Annotated[list[KeyRegex], Field(max_length=64)] = Field(default_factory=list)
    """Drop the keys matching any of these regular expressions."""


class SecretTransformationStatus(ApiModel):
    """Result of the operator's last check of the templates and filters."""

    valid: bool | None = None
    """Whether every template and regular expression compiles."""
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    """What does not compile."""
    conditions: Conditions = Field(default_factory=list)
    """Current state of the SecretTransformation."""
