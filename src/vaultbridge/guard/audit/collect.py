"""Read the cluster and Vault into an Inventory, with read-only credentials.

Kubernetes: get/list on namespaces, serviceaccounts, our CRDs, clusterroles, roles,
clusterrolebindings and rolebindings (never Secrets: whether a resource synced is read from its
status). Vault: read/list on `sys/auth`, `auth/<mount>/role/*` and `sys/policies/acl/*`.
Whatever cannot be read becomes a warning in the report instead of aborting the audit, so a
partial view is still printed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from vaultbridge.api.auth import VAULT_LOGIN_ANNOTATION, VaultAuthSpec
from vaultbridge.api.auth_global import GlobalKey, GlobalRefError, effective_auth_spec
from vaultbridge.api.common import GROUP, resolve_ref
from vaultbridge.api.kinds import (
    SECRET_KINDS,
    VAULT_AUTH_GLOBALS,
    VAULT_AUTHS,
    VAULT_CONNECTIONS,
    VAULT_PATH_POLICIES,
)
from vaultbridge.guard.matching import PathPolicy, policy_from_object
from vaultbridge.guard.paths import effective_paths
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import KubeError
from vaultbridge.kube.resources import NAMESPACES, SERVICE_ACCOUNTS, Resource
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import NotFound as VaultNotFound
from vaultbridge.vault.errors import VaultError

from .hcl import HCLError, parse_policy
from .model import (
    ClusterGrant,
    Inventory,
    NamespaceInfo,
    SecretReadGrant,
    SecretResourceInfo,
    VaultAuthInfo,
    VaultConnectionInfo,
    VaultPolicy,
    VaultRole,
)

log = logging.getLogger(__name__)

RBAC = "rbac.authorization.k8s.io"
CLUSTER_ROLES = Resource(RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False)
ROLES = Resource(RBAC, "v1", "roles", "Role")
CLUSTER_ROLE_BINDINGS = Resource(
    RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
ROLE_BINDINGS = Resource(RBAC, "v1", "rolebindings", "RoleBinding")
SECRET_RESOURCES = tuple(k.resource for k in SECRET_KINDS)
READ_VERBS = frozenset({"get", "list", "watch", "*"})

T = TypeVar("T")
_NO_DATA: dict[str, Any] = {}
_NO_KEYS: list[str] = []


async def _guard(warnings: list[str], what: str, call: Callable[[], Awaitable[T]], empty: T) -> T:
    try:
        return await call()
    except (KubeError, VaultError) as exc:
        warnings.append(f"cannot read {what}: {exc}")
        return empty


async def _list(kube: KubeClient, res: Resource, warnings: list[str]) -> list[dict[str, Any]]:
    async def call() -> list[dict[str, Any]]:
        return (await kube.list(res)).items

    empty: list[dict[str, Any]] = []
    return await _guard(warnings, res.plural, call, empty)


def _reads_secrets(rules: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """resourceNames of each rule that grants reading Secrets (empty tuple: all Secrets)."""
    out: list[tuple[str, ...]] = []
    for rule in rules:
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        verbs = set(rule.get("verbs") or [])
        if (
            ("" in groups or "*" in groups)
            and ("secrets" in resources or "*" in resources)
            and verbs & READ_VERBS
        ):
            out.append(tuple(rule.get("resourceNames") or ()))
    return out


def _subject(s: dict[str, Any], binding_ns: str | None) -> str:
    kind = str(s.get("kind") or "")
    if kind == "ServiceAccount":
        return f"ServiceAccount:{s.get('namespace') or binding_ns}/{s.get('name')}"
    return f"{kind}:{s.get('name')}"


def rbac_grants(
    cluster_roles: list[dict[str, Any]],
    roles: list[dict[str, Any]],
    cluster_bindings: list[dict[str, Any]],
    bindings: list[dict[str, Any]],
) -> list[SecretReadGrant]:
    """Who may read Secrets where, from the RBAC objects (pure)."""
    cr = {objects.name(r): r.get("rules") or [] for r in cluster_roles}
    nr = {(objects.namespace(r), objects.name(r)): r.get("rules") or [] for r in roles}
    grants: list[SecretReadGrant] = []
    for binding, namespaced in [(b, False) for b in cluster_bindings] + [
        (b, True) for b in bindings
    ]:
        ns = objects.namespace(binding) if namespaced else None
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "Role":
            rules = nr.get((ns or "", str(ref.get("name"))), [])
        else:
            rules = cr.get(str(ref.get("name")), [])
        kind = "RoleBinding" if namespaced else "ClusterRoleBinding"
        via = f"{kind} {objects.name(binding)} → {ref.get('kind')} {ref.get('name')}"
        for names in _reads_secrets(rules):
            grants.extend(
                SecretReadGrant(_subject(s, ns), ns, names, via)
                for s in binding.get("subjects") or []
            )
    return grants


def cluster_grants(
    cluster_roles: list[dict[str, Any]], cluster_bindings: list[dict[str, Any]]
) -> list[ClusterGrant]:
    """ServiceAccounts bound to a ClusterRole cluster-wide (pure)."""
    cr = {objects.name(r): r.get("rules") or [] for r in cluster_roles}
    out: list[ClusterGrant] = []
    for binding in cluster_bindings:
        ref = binding.get("roleRef") or {}
        if ref.get("kind") != "ClusterRole":
            continue
        role = str(ref.get("name"))
        unrestricted = any(
            "*" in (rule.get("verbs") or []) and "*" in (rule.get("resources") or [])
            for rule in cr.get(role, [])
        )
        via = f"ClusterRoleBinding {objects.name(binding)} → ClusterRole {role}"
        for s in binding.get("subjects") or []:
            if s.get("kind") == "ServiceAccount":
                out.append(
                    ClusterGrant(f"{s.get('namespace')}/{s.get('name')}", role, via, unrestricted)
                )
    return out


async def collect_cluster(kube: KubeClient, inv: Inventory, operator_namespace: str) -> None:
    w = inv.warnings
    (
        namespaces,
        service_accounts,
        auths,
        policies,
        cluster_roles,
        roles,
        cluster_bindings,
        bindings,
        connections,
        auth_globals,
        *secret_lists,
    ) = await asyncio.gather(
        _list(kube, NAMESPACES, w),
        _list(kube, SERVICE_ACCOUNTS, w),
        _list(kube, VAULT_AUTHS, w),
        _list(kube, VAULT_PATH_POLICIES, w),
        _list(kube, CLUSTER_ROLES, w),
        _list(kube, ROLES, w),
        _list(kube, CLUSTER_ROLE_BINDINGS, w),
        _list(kube, ROLE_BINDINGS, w),
        _list(kube, VAULT_CONNECTIONS, w),
        _list(kube, VAULT_AUTH_GLOBALS, w),
        *(_list(kube, res, w) for res in SECRET_RESOURCES),
    )
    inv.namespaces = sorted(
        (NamespaceInfo(objects.name(n), dict(objects.labels(n))) for n in namespaces),
        key=lambda n: n.name,
    )
    for account in service_accounts:
        inv.service_accounts.setdefault(objects.namespace(account), []).append(
            objects.name(account)
        )
        if objects.annotations(account).get(VAULT_LOGIN_ANNOTATION) == "true":
            inv.vault_login_accounts.append(f"{objects.namespace(account)}/{objects.name(account)}")
    for obj in connections:
        inv.connections.append(
            VaultConnectionInfo(
                objects.namespace(obj),
                objects.name(obj),
                str((obj.get("spec") or {}).get("address") or ""),
            )
        )
    globals_by_key = {GlobalKey(objects.namespace(g), objects.name(g)): g for g in auth_globals}
    for obj in auths:
        try:
            # As the operator uses it: merged with its VaultAuthGlobal, if it names one.
            merged, _key = effective_auth_spec(
                obj.get("spec") or {},
                auth_namespace=objects.namespace(obj),
                operator_namespace=operator_namespace,
                lookup=lambda k: (
                    (globals_by_key[k].get("spec") or {}) if k in globals_by_key else None
                ),
            )
            auth_spec = VaultAuthSpec.model_validate(merged)
        except (ValidationError, GlobalRefError):
            w.append(f"VaultAuth {objects.namespace(obj)}/{objects.name(obj)} is invalid")
            continue
        role, sa = "", ""
        if auth_spec.kubernetes is not None:
            role, sa = auth_spec.kubernetes.role, auth_spec.kubernetes.service_account
        elif auth_spec.jwt is not None:
            role, sa = auth_spec.jwt.role, auth_spec.jwt.service_account or ""
        inv.vault_auths.append(
            VaultAuthInfo(
                objects.namespace(obj),
                objects.name(obj),
                auth_spec.method,
                auth_spec.effective_mount(),
                role,
                sa,
                tuple(auth_spec.allowed_namespaces),
            )
        )
    for obj in policies:
        parsed = policy_from_object(obj)
        if isinstance(parsed, PathPolicy):
            inv.path_policies.append(parsed)
        else:
            w.append(f"VaultPathPolicy {objects.name(obj)} is invalid: {parsed}")
    for res, items in zip(SECRET_RESOURCES, secret_lists, strict=True):
        for obj in items:
            ns, name = objects.namespace(obj), objects.name(obj)
            spec = obj.get("spec") or {}
            try:
                paths = effective_paths(res.kind, spec)
            except ValidationError:
                w.append(f"{res.kind} {ns}/{name} is invalid")
                continue
            auth = resolve_ref(
                str(spec.get("vaultAuthRef") or ""),
                own_namespace=ns,
                operator_namespace=operator_namespace,
            )
            status = obj.get("status") or {}
            delivery = str(spec.get("delivery") or "secret")
            synced = delivery != "inject" and (
                bool(status.get("secretMAC") or status.get("lastSyncTime"))
                or any(
                    c.get("type") == "SecretSynced" and c.get("status") == "True"
                    for c in status.get("conditions") or []
                )
            )
            inv.resources.append(
                SecretResourceInfo(
                    res.kind,
                    ns,
                    name,
                    auth.namespace,
                    auth.name,
                    tuple(paths),
                    str((spec.get("destination") or {}).get("name") or ""),
                    synced,
                    delivery,
                    int(status.get("injectedPods") or 0),
                )
            )
    inv.grants = rbac_grants(cluster_roles, roles, cluster_bindings, bindings)
    inv.cluster_grants = cluster_grants(cluster_roles, cluster_bindings)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


async def _keys(vault: VaultClient, path: str) -> list[str]:
    try:
        resp = await vault.read(path, params={"list": "true"}, operation="audit_list")
    except VaultNotFound:
        return []
    return [str(k) for k in (resp.data or {}).get("keys") or []]


async def collect_vault(
    vault: VaultClient, inv: Inventory, mounts: Sequence[str] | None = None
) -> None:
    """Kubernetes auth roles (of `mounts`, or of every kubernetes auth mount) and ACL policies."""
    w = inv.warnings
    sem = asyncio.Semaphore(16)

    async def read(path: str) -> dict[str, Any]:
        async with sem:
            return (await vault.read(path, operation="audit_read")).data or {}

    if not mounts:

        async def discover() -> list[str]:
            data = await read("sys/auth")
            table = data if data else {}
            return sorted(
                k.rstrip("/")
                for k, v in table.items()
                if isinstance(v, dict) and v.get("type") == "kubernetes"
            )

        mounts = await _guard(w, "sys/auth (auth mounts)", discover, ["kubernetes"]) or [
            "kubernetes"
        ]

    async def role(mount: str, name: str) -> VaultRole | None:
        data = await _guard(
            w, f"auth/{mount}/role/{name}", lambda: read(f"auth/{mount}/role/{name}"), _NO_DATA
        )
        if not data:
            return None
        policies = _strings(data.get("token_policies")) or _strings(data.get("policies"))
        return VaultRole(
            mount,
            name,
            _strings(data.get("bound_service_account_names")),
            _strings(data.get("bound_service_account_namespaces")),
            policies,
        )

    async def roles_of(mount: str) -> list[VaultRole | None]:
        names = await _guard(
            w, f"auth/{mount}/role", lambda: _keys(vault, f"auth/{mount}/role"), _NO_KEYS
        )
        return await asyncio.gather(*(role(mount, n) for n in names))

    async def policy(name: str) -> VaultPolicy | None:
        data = await _guard(
            w, f"sys/policies/acl/{name}", lambda: read(f"sys/policies/acl/{name}"), _NO_DATA
        )
        if not data:
            return None
        text = str(data.get("policy") or "")
        try:
            return VaultPolicy(name, tuple(parse_policy(text)))
        except HCLError as exc:
            w.append(f"Vault policy {name}: cannot parse: {exc}")
            return None

    role_lists = await asyncio.gather(*(roles_of(m) for m in mounts))
    inv.roles = [r for rs in role_lists for r in rs if r is not None]
    names = await _guard(w, "sys/policies/acl", lambda: _keys(vault, "sys/policies/acl"), _NO_KEYS)
    parsed = await asyncio.gather(*(policy(n) for n in names))
    inv.policies = {p.name: p for p in parsed if p is not None}


__all__ = ["GROUP", "cluster_grants", "collect_cluster", "collect_vault", "rbac_grants"]
