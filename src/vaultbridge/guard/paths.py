"""A secret resource's effective Vault paths: what the policies match against.

The effective path is the API path the operator reads, without the `v1/` prefix, so a policy
author writes the same strings as in the Vault policies they already have:

- VaultStaticSecret, KV v2: `mount/data/path` (the API path; `secret` + `team-a/db` →
  `secret/data/team-a/db`); KV v1: `mount/path`. Every `sources[]` entry counts.
- VaultDynamicSecret: `mount/path` (`database` + `creds/app` → `database/creds/app`).
- VaultPKISecret: `mount/issue/role`.

A Vault Enterprise / OpenBao namespace (`spec.namespace`) is not part of the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.api.static_secret import VaultStaticSecretSpec

SECRET_KINDS = ("VaultStaticSecret", "VaultDynamicSecret", "VaultPKISecret")

SpecModel = VaultStaticSecretSpec | VaultDynamicSecretSpec | VaultPKISecretSpec


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def spec_paths(spec: SpecModel) -> list[str]:
    """Effective paths of a parsed spec."""
    if isinstance(spec, VaultStaticSecretSpec):
        return [
            join(s.mount, "data", s.path) if s.type == "kv-v2" else join(s.mount, s.path)
            for s in spec.kv_sources()
        ]
    if isinstance(spec, VaultDynamicSecretSpec):
        return [join(spec.mount, spec.path)]
    return [join(spec.mount, "issue", spec.role)]


_MODELS: dict[str, type[SpecModel]] = {
    "VaultStaticSecret": VaultStaticSecretSpec,
    "VaultDynamicSecret": VaultDynamicSecretSpec,
    "VaultPKISecret": VaultPKISecretSpec,
}


def effective_paths(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """Effective paths of a raw spec (raises pydantic.ValidationError, KeyError for a kind that
    reads no Vault path)."""
    return spec_paths(_MODELS[kind].model_validate(spec))
