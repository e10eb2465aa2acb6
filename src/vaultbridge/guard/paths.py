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
from typing import Any, Protocol

from vaultbridge.api.kinds import SECRET_KINDS as _SECRET_KIND_INFOS

SECRET_KINDS = tuple(k.kind for k in _SECRET_KIND_INFOS)


class SpecModel(Protocol):
    """A secret kind's parsed spec: it names the Vault paths it requests."""

    def vault_paths(self) -> list[str]: ...


_MODELS = {k.kind: k for k in _SECRET_KIND_INFOS}


def spec_paths(spec: SpecModel) -> list[str]:
    """Effective paths of a parsed spec."""
    return spec.vault_paths()


def effective_paths(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """Effective paths of a raw spec (raises pydantic.ValidationError, KeyError for a kind that
    reads no Vault path)."""
    parsed: SpecModel = _MODELS[kind].spec_model.model_validate(spec)
    return spec_paths(parsed)
