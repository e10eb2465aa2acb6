"""Pure logic for destination data: conversion, merge, key filters, templates, HMAC, redaction.

No network, Kubernetes or Vault imports. Controllers call `build_secret_data_async` with
`Source`s and the `TransformationSpec` from `combine_transformations`, compare
`compute_mac(key, data)` with their status, and turn `DataError.reason` into a condition.
"""

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
from vaultbridge.secrets.sandbox import DEFAULT_LIMITS, RenderLimits
from vaultbridge.secrets.templates import (
    TemplateContext,
    check_templates,
    render_templates,
    render_templates_async,
)

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
