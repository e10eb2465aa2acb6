"""A secret resource's effective Vault paths: what the policies match against.

The effective path is the API path the operator requests, without the `v1/` prefix, so a
policy author writes the same strings as in the Vault policies they already have:

- VaultStaticSecret, KV v2: `mount/data/path` (the API path; `secret` + `team-a/db` →
  `secret/data/team-a/db`); KV v1: `mount/path`. Every `sources[]` entry counts.
- VaultDynamicSecret: `mount/path` (`database` + `creds/app` → `database/creds/app`).
- VaultPKISecret: `mount/issue/role`.

Each spec model builds these with `vault.paths.request_path`, the same function the requests
are built with, so the path judged here is the path requested (tests/unit/
test_property_request_paths.py). A Vault Enterprise / OpenBao namespace (`spec.namespace`) is
not part of the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec
from vaultbridge.api.kinds import SECRET_KINDS as _SECRET_KIND_INFOS
from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.api.static_secret import VaultStaticSecretSpec

SECRET_KINDS = tuple(k.kind for k in _SECRET_KIND_INFOS)

SpecModel = VaultStaticSecretSpec | VaultDynamicSecretSpec | VaultPKISecretSpec

_MODELS: dict[str, type[SpecModel]] = {k.kind: k.spec_model for k in _SECRET_KIND_INFOS}


def spec_paths(spec: SpecModel) -> list[str]:
    """Effective paths of a parsed spec."""
    return spec.vault_paths()


def effective_paths(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """Effective paths of a raw spec (raises pydantic.ValidationError, KeyError for a kind that
    reads no Vault path)."""
    return spec_paths(_MODELS[kind].model_validate(spec))
