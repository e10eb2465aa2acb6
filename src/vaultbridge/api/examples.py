"""One realistic manifest per kind.

They appear in docs/crd-reference.md and the unit tests parse them with the models, so the
documentation cannot show a manifest that the operator would reject.
"""

from __future__ import annotations

from typing import Any

from vaultbridge.api.common import API_VERSION


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": spec,
    }


EXAMPLES: dict[str, dict[str, Any]] = {
    "VaultConnection": _manifest(
        "VaultConnection",
        "default",
        {
            "address": "https://vault.vault.svc:8200",
            "caCertSecretRef": "vault-ca",
            "timeout": "10s",
        },
    ),
    "VaultAuthGlobal": {
        **_manifest(
            "VaultAuthGlobal",
            "default",
            {
                "allowedNamespaces": ["team-a", "team-b"],
                "vaultConnectionRef": "vaultbridge-system/default",
                "defaultAuthMethod": "kubernetes",
                "headers": {"X-Team": "platform"},
                "kubernetes": {
                    "mount": "kubernetes",
                    "role": "reader",
                    "serviceAccount": "default",
                    "audiences": ["vault"],
                },
            },
        ),
        "metadata": {"name": "default", "namespace": "platform"},
    },
    "VaultAuth": _manifest(
        "VaultAuth",
        "default",
        {
            "vaultConnectionRef": "default",
            "method": "kubernetes",
            "mount": "kubernetes",
            "allowedNamespaces": ["team-a", "team-b"],
            "kubernetes": {
                "role": "team-a-reader",
                "serviceAccount": "default",
                "audiences": ["vault"],
                "tokenExpirationSeconds": 600,
            },
        },
    ),
    "VaultStaticSecret": _manifest(
        "VaultStaticSecret",
        "db-credentials",
        {
            "vaultAuthRef": "default",
            "mount": "secret",
            "path": "team-a/db",
            "type": "kv-v2",
            "refreshAfter": "1h",
            "rolloutRestartTargets": [{"kind": "Deployment", "name": "api"}],
            "destination": {
                "name": "db-credentials",
                "create": True,
                "labels": {"app.kubernetes.io/name": "api"},
                "transformation": {
                    "templates": {
                        "DATABASE_URL": {
                            "text": (
                                "postgres://{{ secrets.username }}:{{ secrets.password }}"
                                "@db:5432/app"
                            )
                        }
                    },
                    "excludes": ["^password$"],
                },
            },
        },
    ),
    "VaultDynamicSecret": _manifest(
        "VaultDynamicSecret",
        "db-dynamic",
        {
            "vaultAuthRef": "team-a/default",
            "mount": "database",
            "path": "creds/app",
            "renewalPercent": 67,
            "revoke": True,
            "destination": {"name": "db-dynamic", "create": True},
        },
    ),
    "VaultPKISecret": _manifest(
        "VaultPKISecret",
        "api-tls",
        {
            "mount": "pki",
            "role": "internal",
            "commonName": "api.team-a.svc",
            "altNames": ["api.team-a.svc.cluster.local"],
            "ttl": "720h",
            "expiryOffset": "24h",
            "destination": {"name": "api-tls", "create": True, "type": "kubernetes.io/tls"},
        },
    ),
    "SecretTransformation": _manifest(
        "SecretTransformation",
        "app-config",
        {
            "templates": {
                "config.json": {"text": '{"user": "{{ secrets.username }}"}'},
            },
            "includes": ["^config\\.json$"],
        },
    ),
    "VaultPathPolicy": {
        "apiVersion": API_VERSION,
        "kind": "VaultPathPolicy",
        "metadata": {"name": "team-a-prod"},
        "spec": {
            "namespaces": ["team-a-prod"],
            "allow": [
                "secret/data/team-a/prod/*",
                "database/creds/team-a-*",
                "secret/data/{namespace}/*",
            ],
            "neverSync": ["secret/data/*/signing-keys/*"],
        },
    },
}
"""Kind name → a manifest that the API server and the models both accept."""
