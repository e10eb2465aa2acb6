"""What the audit reads (`Inventory`) and what it reports (`Report`): plain data, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vaultbridge.guard.matching import PathPolicy

from .hcl import PathRule

SEVERITIES = ("low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VaultAuthInfo:
    namespace: str
    name: str
    method: str
    mount: str
    role: str
    service_account: str
    allowed_namespaces: tuple[str, ...]


@dataclass(frozen=True)
class VaultConnectionInfo:
    namespace: str
    name: str
    address: str


@dataclass(frozen=True)
class ClusterGrant:
    """A ClusterRoleBinding of a ServiceAccount: rights in every namespace."""

    service_account: str
    """`ns/name`."""
    cluster_role: str
    via: str
    unrestricted: bool
    """The ClusterRole grants `*` verbs on `*` resources (cluster-admin and alike)."""


@dataclass(frozen=True)
class SecretResourceInfo:
    kind: str
    namespace: str
    name: str
    auth_namespace: str
    auth_name: str
    paths: tuple[str, ...]
    destination: str
    synced: bool
    """Whether the operator wrote the destination at least once (its status says so); never
    for `delivery: inject` (no Secret)."""
    delivery: str = "secret"
    injected_pods: int = 0
    """`delivery: inject`: the pods its status counts (each logs in to Vault on its own)."""


@dataclass(frozen=True)
class InjectedObject:
    """An object delivered into pods by the agent (`delivery: inject`): no Secret to read,
    but one Vault login (and, for dynamic kinds, one lease) per pod."""

    kind: str
    namespace: str
    name: str
    pods: int
    paths: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["paths"] = list(self.paths)
        return out


@dataclass(frozen=True)
class SecretReadGrant:
    """An RBAC binding that lets a subject get/list/watch Secrets."""

    subject: str
    """`ServiceAccount:ns/name`, `User:name` or `Group:name`."""
    namespace: str | None
    """Namespace the grant applies to; None for a ClusterRoleBinding (every namespace)."""
    resource_names: tuple[str, ...]
    """Empty: every Secret."""
    via: str


@dataclass(frozen=True)
class VaultRole:
    mount: str
    name: str
    bound_service_account_names: tuple[str, ...]
    bound_service_account_namespaces: tuple[str, ...]
    token_policies: tuple[str, ...]


@dataclass(frozen=True)
class VaultPolicy:
    name: str
    rules: tuple[PathRule, ...]


@dataclass
class Inventory:
    namespaces: list[NamespaceInfo] = field(default_factory=list)
    service_accounts: dict[str, list[str]] = field(default_factory=dict)
    vault_auths: list[VaultAuthInfo] = field(default_factory=list)
    resources: list[SecretResourceInfo] = field(default_factory=list)
    path_policies: list[PathPolicy] = field(default_factory=list)
    grants: list[SecretReadGrant] = field(default_factory=list)
    roles: list[VaultRole] = field(default_factory=list)
    policies: dict[str, VaultPolicy] = field(default_factory=dict)
    connections: list[VaultConnectionInfo] = field(default_factory=list)
    vault_login_accounts: list[str] = field(default_factory=list)
    """`ns/name` of the ServiceAccounts opted in to Vault logins (vaultbridge.dev/vault-login)."""
    cluster_grants: list[ClusterGrant] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AccessRow:
    """One line of the blast radius: this subject reads this path via this role and policy."""

    namespace: str
    service_account: str
    role: str
    policy: str
    path: str
    capabilities: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["capabilities"] = list(self.capabilities)
        return out


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    subject: str
    """What the finding is about: `role kubernetes/x`, `policy y`, `namespace z`, ..."""
    message: str
    fix: str
    namespaces: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("namespaces", "roles", "policies"):
            out[key] = list(out[key])
        return out


@dataclass
class Report:
    access: list[AccessRow]
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    injected: list[InjectedObject] = field(default_factory=list)

    def worst(self) -> str | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=severity_rank)

    def fails(self, threshold: str | None) -> bool:
        if threshold is None:
            return False
        rank = severity_rank(threshold)
        return any(severity_rank(f.severity) >= rank for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}
        return {
            "summary": {"findings": len(self.findings), "bySeverity": counts},
            "namespaces": self.namespaces,
            "access": [a.to_json() for a in self.access],
            "findings": [f.to_json() for f in self.findings],
            "injected": [i.to_json() for i in self.injected],
            "warnings": self.warnings,
        }
