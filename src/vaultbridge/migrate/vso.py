"""Facts about VSO (v1.x, API `secrets.hashicorp.com/v1beta1`) that the migration relies on.

Written from VSO's public API description and observed behaviour, not from its source: the field
lists say which spec fields exist in VSO's schema, so that a field VSO does not know is reported
as unknown rather than silently dropped (our models ignore unknown fields by design).
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "secrets.hashicorp.com"
VERSION: Final = "v1beta1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

# Labels VSO puts on every Secret it creates (destination.create: true), and its owner reference
# (apiVersion secrets.hashicorp.com/v1beta1, kind and name of the VSO object, no controller flag).
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VSO: Final = "hashicorp-vso"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_OWNER_UID: Final = "secrets.hashicorp.com/vso-ownerRefUID"
OWNER_LABELS: Final = {
    LABEL_COMPONENT: "secret-sync",
    LABEL_MANAGED_BY: MANAGED_BY_VSO,
    LABEL_NAME: "vault-secrets-operator",
}
"""Fixed-value labels VSO sets (plus LABEL_OWNER_UID, whose value is the owner's uid)."""

RESTARTED_AT_ANNOTATION: Final = "vso.secrets.hashicorp.com/restartedAt"
"""Pod-template annotation VSO's rollout restart sets."""

# Plural of every kind VSO serves, for reading a live cluster.
PLURALS: Final = {
    "VaultConnection": "vaultconnections",
    "VaultAuth": "vaultauths",
    "VaultAuthGlobal": "vaultauthglobals",
    "VaultStaticSecret": "vaultstaticsecrets",
    "VaultDynamicSecret": "vaultdynamicsecrets",
    "VaultPKISecret": "vaultpkisecrets",
    "SecretTransformation": "secrettransformations",
    "HCPAuth": "hcpauths",
    "HCPVaultSecretsApp": "hcpvaultsecretsapps",
    "CSISecrets": "csisecrets",
}

# Kinds of the group that have no vaultbridge counterpart, and why.
UNSUPPORTED_KINDS: Final = {
    "HCPAuth": "HCP Vault Secrets is a HashiCorp cloud service; vaultbridge talks to Vault and "
    "OpenBao servers only",
    "HCPVaultSecretsApp": "HCP Vault Secrets is a HashiCorp cloud service; vaultbridge talks to "
    "Vault and OpenBao servers only",
    "CSISecrets": "the CSI driver mode (secrets mounted as files, never stored in a Secret) "
    "is not part of vaultbridge",
    "VaultTokenSecret": "not part of vaultbridge",
}

# --- spec fields of VSO's schema, per kind (nested objects as dicts of their own fields) ------

_ROLLOUT_TARGET = {"kind": None, "name": None}
_TEMPLATE = {"name": None, "text": None}
_TEMPLATE_REF = {"name": None, "keyOverride": None}
_TRANSFORMATION_REF = {
    "namespace": None,
    "name": None,
    "templateRefs": [_TEMPLATE_REF],
    "ignoreIncludes": None,
    "ignoreExcludes": None,
}
_TRANSFORMATION = {
    "templates": {"*": _TEMPLATE},
    "transformationRefs": [_TRANSFORMATION_REF],
    "includes": None,
    "excludes": None,
    "excludeRaw": None,
}
_DESTINATION = {
    "name": None,
    "create": None,
    "overwrite": None,
    "labels": None,
    "annotations": None,
    "type": None,
    "transformation": _TRANSFORMATION,
}
_SYNCED = {
    "vaultAuthRef": None,
    "namespace": None,
    "rolloutRestartTargets": [_ROLLOUT_TARGET],
    "destination": _DESTINATION,
}
_K8S_AUTH = {
    "role": None,
    "serviceAccount": None,
    "audiences": None,
    "tokenExpirationSeconds": None,
}
_JWT_AUTH = {**_K8S_AUTH, "secretRef": None}
_APPROLE_AUTH = {"roleId": None, "secretRef": None}
_AWS_AUTH = {
    "role": None,
    "region": None,
    "headerValue": None,
    "sessionName": None,
    "stsEndpoint": None,
    "iamEndpoint": None,
    "secretRef": None,
    "irsaServiceAccount": None,
}
_GCP_AUTH = {
    "role": None,
    "workloadIdentityServiceAccount": None,
    "region": None,
    "clusterName": None,
    "projectID": None,
}
_PER_METHOD_EXTRA = {"namespace": None, "mount": None, "params": None, "headers": None}

SPEC_FIELDS: Final[dict[str, dict[str, object]]] = {
    "VaultConnection": {
        "address": None,
        "headers": None,
        "tlsServerName": None,
        "caCertSecretRef": None,
        "skipTLSVerify": None,
        "timeout": None,
    },
    "VaultAuth": {
        "vaultConnectionRef": None,
        "vaultAuthGlobalRef": {
            "name": None,
            "namespace": None,
            "mergeStrategy": {"headers": None, "params": None},
            "allowDefault": None,
        },
        "namespace": None,
        "allowedNamespaces": None,
        "method": None,
        "mount": None,
        "params": None,
        "headers": None,
        "kubernetes": _K8S_AUTH,
        "appRole": _APPROLE_AUTH,
        "jwt": _JWT_AUTH,
        "aws": _AWS_AUTH,
        "gcp": _GCP_AUTH,
        "storageEncryption": {"mount": None, "keyName": None},
    },
    "VaultAuthGlobal": {
        "allowedNamespaces": None,
        "vaultConnectionRef": None,
        "defaultVaultNamespace": None,
        "defaultAuthMethod": None,
        "defaultMount": None,
        "params": None,
        "headers": None,
        "kubernetes": {**_K8S_AUTH, **_PER_METHOD_EXTRA},
        "appRole": {**_APPROLE_AUTH, **_PER_METHOD_EXTRA},
        "jwt": {**_JWT_AUTH, **_PER_METHOD_EXTRA},
        "aws": {**_AWS_AUTH, **_PER_METHOD_EXTRA},
        "gcp": {**_GCP_AUTH, **_PER_METHOD_EXTRA},
    },
    "VaultStaticSecret": {
        **_SYNCED,
        "mount": None,
        "path": None,
        "version": None,
        "type": None,
        "refreshAfter": None,
        "hmacSecretData": None,
        "syncConfig": {"instantUpdates": None},
    },
    "VaultDynamicSecret": {
        **_SYNCED,
        "mount": None,
        "requestHTTPMethod": None,
        "path": None,
        "params": None,
        "renewalPercent": None,
        "revoke": None,
        "allowStaticCreds": None,
        "refreshAfter": None,
    },
    "VaultPKISecret": {
        **_SYNCED,
        "vaultAuthRefNamespace": None,
        "mount": None,
        "role": None,
        "revoke": None,
        "clear": None,
        "expiryOffset": None,
        "issuerRef": None,
        "commonName": None,
        "altNames": None,
        "ipSans": None,
        "uriSans": None,
        "otherSans": None,
        "userIDs": None,
        "ttl": None,
        "format": None,
        "privateKeyFormat": None,
        "notAfter": None,
        "excludeCNFromSans": None,
    },
    "SecretTransformation": {
        "templates": {"*": _TEMPLATE},
        "sourceTemplates": [_TEMPLATE],
        "includes": None,
        "excludes": None,
    },
}
"""Known spec fields per kind. A value of None is a leaf (scalar, list of scalars or free map);
a dict describes a nested object (key "*" = map of such objects); a one-item list describes a
list of such objects."""


def unknown_fields(kind: str, spec: object) -> list[str]:
    """Dotted paths of the fields in `spec` that VSO's schema for `kind` does not have."""
    shape = SPEC_FIELDS.get(kind)
    if shape is None:
        return []
    out: list[str] = []
    _walk(shape, spec, "spec", out)
    return out


def _walk(shape: object, value: object, path: str, out: list[str]) -> None:
    if shape is None or value is None:
        return
    if isinstance(shape, list):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(shape[0], item, f"{path}[{i}]", out)
        return
    if not isinstance(shape, dict) or not isinstance(value, dict):
        return
    if set(shape) == {"*"}:
        for key, item in value.items():
            _walk(shape["*"], item, f"{path}.{key}", out)
        return
    for key, item in value.items():
        if key not in shape:
            out.append(f"{path}.{key}")
        else:
            _walk(shape[key], item, f"{path}.{key}", out)
