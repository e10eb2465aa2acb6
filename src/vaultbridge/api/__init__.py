"""Our custom resources: pydantic models, the kind registry and the CRD generator.

The delivery flow (controllers/delivery.py) parses objects read from the API server with
`KindInfo.parse_spec(obj)`; status is still computed as the plain dict the API server returns
(controllers/status.py), the status models serve the CRD schema and the tests.
`python -m vaultbridge.api.crdgen` turns the same models into deploy/crds/.
"""

from vaultbridge.api.auth import VaultAuthSpec, VaultAuthStatus
from vaultbridge.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    ApiModel,
    ObjectKey,
    describe_validation_error,
    resolve_ref,
)
from vaultbridge.api.conditions import (
    HEALTHY,
    READY,
    SECRET_SYNCED,
    Condition,
    find_condition,
    set_condition,
    utc_now,
)
from vaultbridge.api.connection import VaultConnectionSpec, VaultConnectionStatus
from vaultbridge.api.destination import (
    Destination,
    RolloutRestartTarget,
    Template,
    Transformation,
    TransformationRef,
)
from vaultbridge.api.duration import format_duration, parse_duration
from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec, VaultDynamicSecretStatus
from vaultbridge.api.kinds import (
    KINDS,
    SECRET_TRANSFORMATION,
    VAULT_AUTH,
    VAULT_CONNECTION,
    VAULT_DYNAMIC_SECRET,
    VAULT_PKI_SECRET,
    VAULT_STATIC_SECRET,
    KindInfo,
    kind_info,
)
from vaultbridge.api.pki_secret import VaultPKISecretSpec, VaultPKISecretStatus
from vaultbridge.api.static_secret import KVSource, VaultStaticSecretSpec, VaultStaticSecretStatus
from vaultbridge.api.transformation import SecretTransformationSpec, SecretTransformationStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "HEALTHY",
    "KINDS",
    "READY",
    "SECRET_SYNCED",
    "SECRET_TRANSFORMATION",
    "VAULT_AUTH",
    "VAULT_CONNECTION",
    "VAULT_DYNAMIC_SECRET",
    "VAULT_PKI_SECRET",
    "VAULT_STATIC_SECRET",
    "VERSION",
    "ApiModel",
    "Condition",
    "Destination",
    "KVSource",
    "KindInfo",
    "ObjectKey",
    "RolloutRestartTarget",
    "SecretTransformationSpec",
    "SecretTransformationStatus",
    "Template",
    "Transformation",
    "TransformationRef",
    "VaultAuthSpec",
    "VaultAuthStatus",
    "VaultConnectionSpec",
    "VaultConnectionStatus",
    "VaultDynamicSecretSpec",
    "VaultDynamicSecretStatus",
    "VaultPKISecretSpec",
    "VaultPKISecretStatus",
    "VaultStaticSecretSpec",
    "VaultStaticSecretStatus",
    "describe_validation_error",
    "find_condition",
    "format_duration",
    "kind_info",
    "parse_duration",
    "resolve_ref",
    "set_condition",
    "utc_now",
]
