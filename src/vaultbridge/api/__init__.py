"""Our custom resources: pydantic models, the kind registry and the CRD generator.

The delivery flow (controllers/delivery.py) parses objects read from the API server with
`KindInfo.parse_spec(obj)`. Status has one model: the status models here are its schema (the
CRD generator's input), and the controllers write it as the dict the API server stores,
setting conditions with the one rule in controllers/status.py (which says why).
`python -m vaultbridge.api.crdgen` turns the same models into deploy/crds/.

Exports are resolved lazily (PEP 562): importing one model module (say
`vaultbridge.api.static_secret`, as `vaultbridge agent` does) must not load the kind registry,
which names Kubernetes resources, and through it the Kubernetes client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaultbridge.lazy import lazy_exports

if TYPE_CHECKING:
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
    from vaultbridge.api.static_secret import (
        KVSource,
        VaultStaticSecretSpec,
        VaultStaticSecretStatus,
    )
    from vaultbridge.api.transformation import SecretTransformationSpec, SecretTransformationStatus

_WHERE: dict[str, str] = {
    "VaultAuthSpec": "vaultbridge.api.auth",
    "VaultAuthStatus": "vaultbridge.api.auth",
    "API_VERSION": "vaultbridge.api.common",
    "ApiModel": "vaultbridge.api.common",
    "GROUP": "vaultbridge.api.common",
    "ObjectKey": "vaultbridge.api.common",
    "VERSION": "vaultbridge.api.common",
    "describe_validation_error": "vaultbridge.api.common",
    "resolve_ref": "vaultbridge.api.common",
    "Condition": "vaultbridge.api.conditions",
    "HEALTHY": "vaultbridge.api.conditions",
    "READY": "vaultbridge.api.conditions",
    "SECRET_SYNCED": "vaultbridge.api.conditions",
    "VaultConnectionSpec": "vaultbridge.api.connection",
    "VaultConnectionStatus": "vaultbridge.api.connection",
    "Destination": "vaultbridge.api.destination",
    "RolloutRestartTarget": "vaultbridge.api.destination",
    "Template": "vaultbridge.api.destination",
    "Transformation": "vaultbridge.api.destination",
    "TransformationRef": "vaultbridge.api.destination",
    "format_duration": "vaultbridge.api.duration",
    "parse_duration": "vaultbridge.api.duration",
    "VaultDynamicSecretSpec": "vaultbridge.api.dynamic_secret",
    "VaultDynamicSecretStatus": "vaultbridge.api.dynamic_secret",
    "KINDS": "vaultbridge.api.kinds",
    "KindInfo": "vaultbridge.api.kinds",
    "SECRET_TRANSFORMATION": "vaultbridge.api.kinds",
    "VAULT_AUTH": "vaultbridge.api.kinds",
    "VAULT_CONNECTION": "vaultbridge.api.kinds",
    "VAULT_DYNAMIC_SECRET": "vaultbridge.api.kinds",
    "VAULT_PKI_SECRET": "vaultbridge.api.kinds",
    "VAULT_STATIC_SECRET": "vaultbridge.api.kinds",
    "kind_info": "vaultbridge.api.kinds",
    "VaultPKISecretSpec": "vaultbridge.api.pki_secret",
    "VaultPKISecretStatus": "vaultbridge.api.pki_secret",
    "KVSource": "vaultbridge.api.static_secret",
    "VaultStaticSecretSpec": "vaultbridge.api.static_secret",
    "VaultStaticSecretStatus": "vaultbridge.api.static_secret",
    "SecretTransformationSpec": "vaultbridge.api.transformation",
    "SecretTransformationStatus": "vaultbridge.api.transformation",
}


__getattr__ = lazy_exports(__name__, _WHERE, globals())

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
    "format_duration",
    "kind_info",
    "parse_duration",
    "resolve_ref",
]
