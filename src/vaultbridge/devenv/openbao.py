"""Former home of the dev environment's Vault server code, now `vaultserver` (which serves
OpenBao and HashiCorp Vault alike). These names stay importable for existing callers."""

from __future__ import annotations

from .vaultserver import VaultAdmin, audit_config, bao_binary, read_unseal_key

BaoAdmin = VaultAdmin

__all__ = ["BaoAdmin", "VaultAdmin", "audit_config", "bao_binary", "read_unseal_key"]
