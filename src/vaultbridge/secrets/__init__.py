"""Pure logic for destination data: conversion, merge, key filters, templates, HMAC, redaction.

No network, Kubernetes or Vault imports. Controllers call `build_secret_data_async` with
`Source`s and the `TransformationSpec` from `combine_transformations`, compare
`compute_mac(key, data)` with their status, and turn `DataError.reason` into a condition.

Exports are resolved lazily (PEP 562): `vaultbridge agent` imports `secrets.pipeline` and must
not load Jinja2 or RE2 for an object without templates or filters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaultbridge.lazy import lazy_exports

if TYPE_CHECKING:
    from vaultbridge.secrets.data import (
        MAX_SECRET_DATA_BYTES,
        RAW_KEY,
        check_size,
        merge_sources,
        validate_key,
        vault_data_to_secret_data,
    )
    from vaultbridge.secrets.errors import (
        DataError,
        InvalidKeyError,
        InvalidRegexError,
        KeyCollisionError,
        SecretTooLargeError,
        TemplateError,
        TransformationError,
    )
    from vaultbridge.secrets.filters import KeyFilter, compile_filter, filter_keys
    from vaultbridge.secrets.hmac import compute_mac, generate_key, verify_mac
    from vaultbridge.secrets.limits import DEFAULT_LIMITS, RenderLimits
    from vaultbridge.secrets.pipeline import (
        Source,
        TemplateRef,
        TransformationRef,
        TransformationSpec,
        build_secret_data,
        build_secret_data_async,
        combine_transformations,
        validate_transformation,
    )
    from vaultbridge.secrets.redact import SecretData, SecretValue, Sensitive, redact_text
    from vaultbridge.secrets.templates import (
        TemplateContext,
        check_templates,
        render_templates,
        render_templates_async,
    )

_WHERE: dict[str, str] = {
    "MAX_SECRET_DATA_BYTES": "vaultbridge.secrets.data",
    "RAW_KEY": "vaultbridge.secrets.data",
    "check_size": "vaultbridge.secrets.data",
    "merge_sources": "vaultbridge.secrets.data",
    "validate_key": "vaultbridge.secrets.data",
    "vault_data_to_secret_data": "vaultbridge.secrets.data",
    "DataError": "vaultbridge.secrets.errors",
    "InvalidKeyError": "vaultbridge.secrets.errors",
    "InvalidRegexError": "vaultbridge.secrets.errors",
    "KeyCollisionError": "vaultbridge.secrets.errors",
    "SecretTooLargeError": "vaultbridge.secrets.errors",
    "TemplateError": "vaultbridge.secrets.errors",
    "TransformationError": "vaultbridge.secrets.errors",
    "KeyFilter": "vaultbridge.secrets.filters",
    "compile_filter": "vaultbridge.secrets.filters",
    "filter_keys": "vaultbridge.secrets.filters",
    "compute_mac": "vaultbridge.secrets.hmac",
    "generate_key": "vaultbridge.secrets.hmac",
    "verify_mac": "vaultbridge.secrets.hmac",
    "DEFAULT_LIMITS": "vaultbridge.secrets.limits",
    "RenderLimits": "vaultbridge.secrets.limits",
    "Source": "vaultbridge.secrets.pipeline",
    "TemplateRef": "vaultbridge.secrets.pipeline",
    "TransformationRef": "vaultbridge.secrets.pipeline",
    "TransformationSpec": "vaultbridge.secrets.pipeline",
    "build_secret_data": "vaultbridge.secrets.pipeline",
    "build_secret_data_async": "vaultbridge.secrets.pipeline",
    "combine_transformations": "vaultbridge.secrets.pipeline",
    "validate_transformation": "vaultbridge.secrets.pipeline",
    "SecretData": "vaultbridge.secrets.redact",
    "SecretValue": "vaultbridge.secrets.redact",
    "Sensitive": "vaultbridge.secrets.redact",
    "redact_text": "vaultbridge.secrets.redact",
    "TemplateContext": "vaultbridge.secrets.templates",
    "check_templates": "vaultbridge.secrets.templates",
    "render_templates": "vaultbridge.secrets.templates",
    "render_templates_async": "vaultbridge.secrets.templates",
}


__getattr__ = lazy_exports(__name__, _WHERE, globals())

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_SECRET_DATA_BYTES",
    "RAW_KEY",
    "DataError",
    "InvalidKeyError",
    "InvalidRegexError",
    "KeyCollisionError",
    "KeyFilter",
    "RenderLimits",
    "SecretData",
    "SecretTooLargeError",
    "SecretValue",
    "Sensitive",
    "Source",
    "TemplateContext",
    "TemplateError",
    "TemplateRef",
    "TransformationError",
    "TransformationRef",
    "TransformationSpec",
    "build_secret_data",
    "build_secret_data_async",
    "check_size",
    "check_templates",
    "combine_transformations",
    "compile_filter",
    "compute_mac",
    "filter_keys",
    "generate_key",
    "merge_sources",
    "redact_text",
    "render_templates",
    "render_templates_async",
    "validate_key",
    "validate_transformation",
    "vault_data_to_secret_data",
    "verify_mac",
]
