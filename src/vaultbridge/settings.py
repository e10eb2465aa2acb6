"""Operator settings: every `vaultbridge run` flag, each with a `VAULTBRIDGE_*` variable.

A flag given on the command line wins over the environment variable, which wins over the
default. `docs/configuration.md` lists the same table; keep them in step.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vaultbridge import __version__

_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _default_namespace() -> str:
    try:
        return _IN_CLUSTER_NAMESPACE.read_text().strip() or "vaultbridge-system"
    except OSError:
        return "vaultbridge-system"


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "vaultbridge-system"
    workers: int = 16
    vault_qps: float = 200.0
    vault_burst: int = 400
    log_level: str = "info"
    log_format: str = "json"
    metrics_bind_address: str = "0.0.0.0:8080"
    health_bind_address: str = "0.0.0.0:8081"
    shutdown_grace_period: float = 30.0
    default_refresh_after: float = 60.0
    finalizer_timeout: float = 300.0
    hmac_key_secret: str = "vaultbridge-hmac-key"  # noqa: S105 - a Secret name
    path_policy_default: str = "allow-all"
    webhook_bind_address: str = ""
    webhook_cert_dir: str = ""
    webhook_config_name: str = "vaultbridge-path-policy"
    webhook_ca_secret: str = "vaultbridge-webhook-ca"  # noqa: S105 - a Secret name
    webhook_hosts: str = ""
    leader_elect: bool = False
    leader_election_id: str = "vaultbridge-leader"
    leader_election_lease_duration: float = 15.0
    leader_election_renew_deadline: float = 10.0
    leader_election_retry_period: float = 2.0
    resource_selector: str = ""
    persist_tokens: bool = True
    allowed_vault_addresses: str = ""
    allowed_token_audiences: str = "vault"  # noqa: S105 - an audience, not a secret
    fair_queuing: bool = True
    critical_namespace_selector: str = ""
    critical_share: int = 4
    min_refresh_after: float = 1.0
    audit_stream_listen: str = ""
    audit_stream_prefix: str = ""
    audit_stream_heartbeat_interval: float = 10.0
    audit_stream_heartbeat_path: str = "sys/vaultbridge-heartbeat"
    audit_stream_path_limit: int = 5
    # Inject mode (controllers/inject.py, inject/pod.py).
    mutating_webhook_config_name: str = "vaultbridge-inject"
    webhook_register_url: str = ""
    agent_image: str = f"ghcr.io/vaultbridge/vaultbridge:{__version__}"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(args, f.name, None)
            if value is not None:
                values[f.name] = value
        return cls(**values)


def _bool(text: str) -> bool:
    """`true/false`, `1/0`, `yes/no` (flags and environment variables alike)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


# (field, flag, type, help). Defaults come from the Settings dataclass.
_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    (
        "kubeconfig",
        "--kubeconfig",
        str,
        "kubeconfig file; default: $KUBECONFIG, ~/.kube/config, then in-cluster config",
    ),
    ("context", "--context", str, "kubeconfig context to use"),
    (
        "namespace",
        "--namespace",
        str,
        "namespace the operator runs in: holds the HMAC key Secret and the default VaultAuth / "
        "VaultConnection (default: the pod's namespace, else vaultbridge-system)",
    ),
    ("workers", "--workers", int, "concurrent reconciles per kind"),
    (
        "vault_qps",
        "--vault-qps",
        float,
        "requests per second to Vault across all resources (token bucket; 0 = unlimited)",
    ),
    ("vault_burst", "--vault-burst", int, "burst size of the Vault request bucket"),
    ("log_level", "--log-level", str, "debug, info, warning or error"),
    ("log_format", "--log-format", str, "json (one object per line) or text"),
    (
        "metrics_bind_address",
        "--metrics-bind-address",
        str,
        "host:port for Prometheus /metrics; empty disables",
    ),
    (
        "health_bind_address",
        "--health-bind-address",
        str,
        "host:port for /healthz and /readyz; empty disables",
    ),
    (
        "shutdown_grace_period",
        "--shutdown-grace-period",
        float,
        "seconds in-flight reconciles get to finish after SIGTERM",
    ),
    (
        "default_refresh_after",
        "--default-refresh-after",
        float,
        "refresh interval in seconds for VaultStaticSecrets that set no refreshAfter",
    ),
    (
        "finalizer_timeout",
        "--finalizer-timeout",
        float,
        "seconds after an object's deletionTimestamp during which revoking its lease or "
        "certificate is retried while Vault is unreachable or sealed; then the finalizer is "
        "released with a Warning event (the lease expires at its TTL)",
    ),
    (
        "hmac_key_secret",
        "--hmac-key-secret",
        str,
        "name of the Secret (in --namespace) holding the HMAC key for status.secretMAC",
    ),
    (
        "path_policy_default",
        "--path-policy-default",
        str,
        "allow-all or deny: what applies to a namespace that no VaultPathPolicy selects",
    ),
    (
        "webhook_bind_address",
        "--webhook-bind-address",
        str,
        "host:port for the HTTPS path-policy admission webhook (/validate, /readyz); "
        "empty disables it",
    ),
    (
        "webhook_cert_dir",
        "--webhook-cert-dir",
        str,
        "directory for the webhook's serving certificate (tls.crt, tls.key); empty: kept in "
        "memory only",
    ),
    (
        "webhook_config_name",
        "--webhook-config-name",
        str,
        "ValidatingWebhookConfiguration whose caBundle the operator keeps current",
    ),
    (
        "webhook_ca_secret",
        "--webhook-ca-secret",
        str,
        "name of the Secret (in --namespace) holding the webhook's self-signed CA",
    ),
    (
        "webhook_hosts",
        "--webhook-hosts",
        str,
        "comma-separated DNS names / IPs of the serving certificate; empty: "
        "vaultbridge-webhook.<namespace>.svc and 127.0.0.1",
    ),
    (
        "leader_elect",
        "--leader-elect",
        _bool,
        "true: replicas elect a leader through a Lease in --namespace; only the leader "
        "reconciles, standbys keep their caches warm (the Helm chart sets true)",
    ),
    ("leader_election_id", "--leader-election-id", str, "name of the leader election Lease"),
    (
        "leader_election_lease_duration",
        "--leader-election-lease-duration",
        float,
        "seconds a standby waits on an unrenewed Lease before it takes over",
    ),
    (
        "leader_election_renew_deadline",
        "--leader-election-renew-deadline",
        float,
        "seconds the leader keeps trying to renew before it gives up leadership and exits",
    ),
    (
        "leader_election_retry_period",
        "--leader-election-retry-period",
        float,
        "seconds between Lease acquire/renew attempts",
    ),
    (
        "resource_selector",
        "--resource-selector",
        str,
        "label selector for our custom resources (e.g. shard=a or !team); empty = all; "
        "lets several operators share a cluster without touching each other's objects",
    ),
    (
        "persist_tokens",
        "--persist-tokens",
        _bool,
        "keep Vault tokens in Secrets in --namespace (MAC-protected, Transit-encrypted when a "
        "VaultAuth sets storageEncryption) so leases survive operator restarts",
    ),
    (
        "allowed_vault_addresses",
        "--allowed-vault-addresses",
        str,
        "comma-separated Vault addresses (scheme://host[:port][/path], `*.` allowed as the "
        "first label of the host) that VaultConnections may point at; others are refused at "
        "admission and before any login; empty = any address (see docs/security.md)",
    ),
    (
        "allowed_token_audiences",
        "--allowed-token-audiences",
        str,
        "comma-separated audiences a VaultAuth may request for ServiceAccount tokens; an "
        "audience the Kubernetes API server accepts is refused whatever this lists",
    ),
    (
        "fair_queuing",
        "--fair-queuing",
        _bool,
        "true: each namespace has its own sub-queue, served round-robin, and an equal share of "
        "the Vault request rate while it is contended; false: one line per kind",
    ),
    (
        "critical_namespace_selector",
        "--critical-namespace-selector",
        str,
        "label selector on Namespaces (e.g. vaultbridge.dev/critical=true) whose objects are "
        "served before others' (see --critical-share); empty: no critical lane",
    ),
    (
        "critical_share",
        "--critical-share",
        int,
        "turns the critical lane gets for each turn of ordinary work while both wait (>= 1)",
    ),
    (
        "min_refresh_after",
        "--min-refresh-after",
        float,
        "seconds: the shortest refreshAfter honoured; a shorter one is raised to it and "
        "reported on the object (condition RefreshAfterClamped); 0 disables",
    ),
    (
        "audit_stream_listen",
        "--audit-stream-listen",
        str,
        "udp://host:port or tcp://host:port to receive Vault's socket audit device on, for "
        "syncConfig.instantUpdates (docs/operations.md); empty disables",
    ),
    (
        "audit_stream_prefix",
        "--audit-stream-prefix",
        str,
        "shared secret the socket audit device writes before each entry (its prefix option); "
        "entries without it are dropped. Prefer the environment variable to the flag",
    ),
    (
        "audit_stream_heartbeat_interval",
        "--audit-stream-heartbeat-interval",
        float,
        "seconds between heartbeat requests to each Vault server; a heartbeat not seen in the "
        "audit stream within 3 intervals marks a gap (every opted-in object is re-read once)",
    ),
    (
        "audit_stream_heartbeat_path",
        "--audit-stream-heartbeat-path",
        str,
        "Vault path the heartbeat requests (no token; audited as permission denied)",
    ),
    (
        "audit_stream_path_limit",
        "--audit-stream-path-limit",
        int,
        "re-reads one Vault path may trigger per 10 seconds (more entries wait for the window's "
        "end); bounds what a forged stream can cost",
    ),
    # -- inject mode --
    (
        "mutating_webhook_config_name",
        "--mutating-webhook-config-name",
        str,
        "MutatingWebhookConfiguration (inject mode, /mutate-pods) whose caBundle the operator "
        "keeps current; empty disables pod injection",
    ),
    (
        "webhook_register_url",
        "--webhook-register-url",
        str,
        "out of cluster: base URL (e.g. https://127.0.0.1:9443) at which the operator creates "
        "or updates both webhook configurations itself; empty: the deployment installs them",
    ),
    (
        "agent_image",
        "--agent-image",
        str,
        "image of the agent containers injected into pods (`vaultbridge agent`); the Helm chart "
        "sets the operator's own image",
    ),
]


def env_name(field_name: str) -> str:
    return "VAULTBRIDGE_" + field_name.upper()


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings(namespace=_default_namespace())
    for name, flag, kind, text in _FLAGS:
        env = env_name(name)
        raw = os.environ.get(env)
        if name == "kubeconfig" and raw is None:
            raw = os.environ.get("KUBECONFIG")
        default = kind(raw) if raw is not None else getattr(defaults, name)
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=default,
            help=f"{text} [env {env}; default {getattr(defaults, name)!r}]",
        )


def flag_table() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) rows for the documentation generator."""
    defaults = Settings()
    return [
        (flag, env_name(name), repr(getattr(defaults, name)), text)
        for name, flag, _kind, text in _FLAGS
    ]
