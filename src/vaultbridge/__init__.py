"""vaultbridge: deliver secrets from HashiCorp Vault and OpenBao to Kubernetes workloads."""

__version__ = "0.1.0"
