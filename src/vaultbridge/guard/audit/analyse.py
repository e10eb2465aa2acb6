"""Turn an Inventory into the blast radius and findings. Pure: no I/O, deterministic order.

Environments: a namespace's environment is its `vaultbridge.dev/environment` (or `environment`,
`env`) label, else the first environment word in its name (`team-a-prod` → prod). A Vault
path's environment is the first environment word among its segments
(`secret/data/team-a/staging/db` → staging). Words are split on `-`, `_` and `.`; aliases
such as `production` and `stage` count as `prod` and `staging`.

"Policy spans environments" is data-driven rather than guessed from the pattern alone: a
wildcard rule is reported when it covers known paths (the effective paths of the secret
resources in scope and the literal prefixes of the policies in scope) of two environments.
A per-team wildcard such as `secret/data/team-a/*` is therefore only reported once team-a
actually keeps prod and staging under it.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from vaultbridge.guard.addresses import AddressAllowList
from vaultbridge.guard.matching import pattern_matches

from .hcl import vault_glob_matches
from .model import (
    AccessRow,
    Finding,
    InjectedObject,
    Inventory,
    NamespaceInfo,
    Report,
    VaultRole,
    severity_rank,
)

DEFAULT_ENVIRONMENTS = ("prod", "staging", "dev", "test", "qa")
ALIASES = {
    "production": "prod",
    "prd": "prod",
    "stage": "staging",
    "stg": "staging",
    "development": "dev",
    "testing": "test",
}
ENV_LABELS = ("vaultbridge.dev/environment", "environment", "env")
IGNORED_POLICIES = frozenset({"default", "root"})
"""`default` is attached to every token and grants only token self-management paths."""
DEFAULT_MAX_READERS = 3

_WORD = re.compile(r"[-_.]")


def _env_word(word: str, envs: Sequence[str]) -> str | None:
    word = ALIASES.get(word.lower(), word.lower())
    return word if word in envs else None


def namespace_environment(ns: NamespaceInfo, envs: Sequence[str]) -> str | None:
    for label in ENV_LABELS:
        if ns.labels.get(label):
            return ALIASES.get(ns.labels[label].lower(), ns.labels[label].lower())
    for word in _WORD.split(ns.name):
        if env := _env_word(word, envs):
            return env
    return None


def path_environment(path: str, envs: Sequence[str]) -> str | None:
    for segment in path.split("/"):
        for word in _WORD.split(segment):
            if env := _env_word(word, envs):
                return env
    return None


def role_id(role: VaultRole) -> str:
    return f"{role.mount}/{role.name}"


def _bound_to(role: VaultRole, namespace: str) -> bool:
    return any(fnmatch.fnmatchcase(namespace, b) for b in role.bound_service_account_namespaces)


def _is_system(subject: str, via: str) -> bool:
    return (
        subject.startswith(("User:system:", "Group:system:", "ServiceAccount:kube-system/"))
        or " system:" in via
        or via.startswith("system:")
    )


class _Analyser:
    def __init__(
        self,
        inv: Inventory,
        scope: Iterable[str] | None,
        envs: Sequence[str],
        max_readers: int,
    ) -> None:
        self.inv = inv
        self.envs = tuple(envs)
        self.max_readers = max_readers
        known = {n.name: n for n in inv.namespaces}
        wanted = sorted(set(scope)) if scope else sorted(known)
        self.namespaces = [known.get(n) or NamespaceInfo(n) for n in wanted]
        self.in_scope = {n.name for n in self.namespaces}
        self.env = {n.name: namespace_environment(n, self.envs) for n in self.namespaces}
        self.resources = [r for r in inv.resources if r.namespace in self.in_scope]
        self.findings: list[Finding] = []

    # -- blast radius ----------------------------------------------------------------------

    def access(self) -> list[AccessRow]:
        rows: list[AccessRow] = []
        for role in sorted(self.inv.roles, key=role_id):
            for ns in self.namespaces:
                if not _bound_to(role, ns.name):
                    continue
                for sa in sorted(role.bound_service_account_names):
                    for pname in sorted(role.token_policies):
                        policy = self.inv.policies.get(pname)
                        if pname in IGNORED_POLICIES or policy is None:
                            continue
                        rows.extend(
                            AccessRow(
                                ns.name, sa, role_id(role), pname, rule.path, rule.capabilities
                            )
                            for rule in policy.rules
                            if rule.reads
                        )
        return rows

    def users_of(self, role: VaultRole) -> set[str]:
        """Namespaces whose secret resources log in with the role (through a VaultAuth)."""
        auths = {
            (a.namespace, a.name)
            for a in self.inv.vault_auths
            if a.method == "kubernetes" and a.role == role.name and a.mount == role.mount
        }
        return {r.namespace for r in self.resources if (r.auth_namespace, r.auth_name) in auths}

    # -- findings ----------------------------------------------------------------------------

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def roles(self) -> None:
        for role in sorted(self.inv.roles, key=role_id):
            rid = role_id(role)
            reachable = [n for n in self.in_scope if _bound_to(role, n)]
            if not reachable:
                continue
            users = sorted(self.users_of(role))
            if "*" in role.bound_service_account_namespaces:
                self.add(
                    Finding(
                        "ROLE_ALL_NAMESPACES",
                        "high",
                        f"role {rid}",
                        f"Vault role {rid} is bound to every namespace "
                        '(bound_service_account_namespaces contains "*"): a service account '
                        f"in any namespace can log in and read policies "
                        f"{', '.join(role.token_policies) or '(none)'}",
                        "bind the role to the namespaces that use it: "
                        f"bound_service_account_namespaces={users or ['<namespace>']}",
                        namespaces=tuple(users),
                        roles=(rid,),
                        policies=tuple(sorted(role.token_policies)),
                    )
                )
            if "*" in role.bound_service_account_names:
                self.add(
                    Finding(
                        "ROLE_ALL_SERVICE_ACCOUNTS",
                        "medium",
                        f"role {rid}",
                        f"Vault role {rid} accepts every service account of its namespaces "
                        '(bound_service_account_names contains "*"): any pod there can log in',
                        "name the service accounts: bound_service_account_names=[<sa>, ...]",
                        roles=(rid,),
                    )
                )
            explicit = {
                n
                for n in role.bound_service_account_namespaces
                if "*" not in n and n in self.in_scope
            }
            using = explicit | set(users)
            envs = {self.env.get(n) for n in using} - {None}
            if len(envs) > 1:
                by_env = sorted(f"{n} ({self.env[n]})" for n in using if self.env.get(n))
                self.add(
                    Finding(
                        "ROLE_SPANS_ENVIRONMENTS",
                        "high",
                        f"role {rid}",
                        f"Vault role {rid} is used by namespaces of different environments: "
                        + ", ".join(by_env),
                        "give each environment its own role and policies",
                        namespaces=tuple(sorted(using)),
                        roles=(rid,),
                    )
                )

    def policies(self, rows: list[AccessRow]) -> None:
        used = sorted({r.policy for r in rows})
        known: set[str] = {p for r in self.resources for p in r.paths}
        for name in used:
            for rule in self.inv.policies[name].rules:
                literal = rule.path.split("*", 1)[0].split("+", 1)[0]
                if literal:
                    known.add(literal)
        for name in used:
            for rule in self.inv.policies[name].rules:
                if not rule.reads or ("*" not in rule.path and "+" not in rule.path):
                    continue
                covered: dict[str, str] = {}
                for path in sorted(known):
                    env = path_environment(path, self.envs)
                    if env and env not in covered and vault_glob_matches(rule.path, path):
                        covered[env] = path
                if len(covered) > 1:
                    spans = ", ".join(f"{e} ({p})" for e, p in sorted(covered.items()))
                    self.add(
                        Finding(
                            "POLICY_SPANS_ENVIRONMENTS",
                            "high",
                            f"policy {name}",
                            f'Vault policy {name}: path "{rule.path}" covers paths of several '
                            f"environments: {spans}",
                            "split it into one rule (and policy) per environment, e.g. "
                            + ", ".join(
                                f'"{_narrow(rule.path, p, e)}"' for e, p in sorted(covered.items())
                            ),
                            policies=(name,),
                        )
                    )

    def cross_namespace(self, rows: list[AccessRow]) -> None:
        by_ns: dict[str, list[AccessRow]] = defaultdict(list)
        for row in rows:
            by_ns[row.namespace].append(row)
        for reader in sorted(by_ns):
            hits: dict[str, list[tuple[str, AccessRow]]] = defaultdict(list)
            for res in self.resources:
                if res.namespace == reader:
                    continue
                for path in res.paths:
                    for row in by_ns[reader]:
                        if vault_glob_matches(row.path, path):
                            hits[res.namespace].append((path, row))
                            break
            for owner, found in sorted(hits.items()):
                paths = sorted({p for p, _ in found})
                roles = tuple(sorted({r.role for _, r in found}))
                policies = tuple(sorted({r.policy for _, r in found}))
                self.add(
                    Finding(
                        "CROSS_NAMESPACE_READ",
                        "high"
                        if self.env.get(reader) != self.env.get(owner)
                        and self.env.get(reader)
                        and self.env.get(owner)
                        else "medium",
                        f"namespace {reader}",
                        f"namespace {reader} can read Vault paths used by namespace {owner}: "
                        f"{', '.join(paths)} (role {', '.join(roles)}; policy "
                        f"{', '.join(policies)})",
                        f"narrow the policy or the role's bound namespaces so that {reader} "
                        f"reaches only its own paths",
                        namespaces=(reader, owner),
                        roles=roles,
                        policies=policies,
                    )
                )

    def never_sync(self) -> None:
        for res in self.resources:
            if not res.synced:
                continue
            for path in res.paths:
                hit = next(
                    (
                        (p.name, pat)
                        for p in sorted(self.inv.path_policies, key=lambda p: p.name)
                        for pat in p.never_sync
                        if pattern_matches(pat, path, res.namespace)
                    ),
                    None,
                )
                if hit is None:
                    continue
                self.add(
                    Finding(
                        "NEVER_SYNC_SYNCED",
                        "critical",
                        f"{res.kind} {res.namespace}/{res.name}",
                        f"Secret {res.namespace}/{res.destination} holds Vault path {path}, which "
                        f"matches neverSync pattern {hit[1]!r} of VaultPathPolicy {hit[0]}",
                        f"delete {res.kind} {res.namespace}/{res.name} and Secret "
                        f"{res.destination}, then rotate the secret in Vault (it has been "
                        "readable in the cluster)",
                        namespaces=(res.namespace,),
                    )
                )
                break

    def readers(self) -> None:
        for res in self.resources:
            if not res.synced:
                continue
            subjects = sorted(
                {
                    g.subject
                    for g in self.inv.grants
                    if (g.namespace is None or g.namespace == res.namespace)
                    and (not g.resource_names or res.destination in g.resource_names)
                    and not _is_system(g.subject, g.via)
                }
            )
            if len(subjects) > self.max_readers:
                self.add(
                    Finding(
                        "SECRET_MANY_READERS",
                        "medium",
                        f"Secret {res.namespace}/{res.destination}",
                        f"Secret {res.namespace}/{res.destination} (from {res.kind} {res.name}) "
                        f"can be read by {len(subjects)} subjects through RBAC: "
                        + ", ".join(subjects[:10])
                        + (" ..." if len(subjects) > 10 else ""),
                        "drop get/list/watch on secrets from broad roles; grant resourceNames "
                        "to the workloads that need this Secret",
                        namespaces=(res.namespace,),
                    )
                )

    def auths(self) -> None:
        for auth in sorted(self.inv.vault_auths, key=lambda a: (a.namespace, a.name)):
            if auth.namespace not in self.in_scope or "*" not in auth.allowed_namespaces:
                continue
            self.add(
                Finding(
                    "AUTH_ALL_NAMESPACES",
                    "medium",
                    f"VaultAuth {auth.namespace}/{auth.name}",
                    f"VaultAuth {auth.namespace}/{auth.name} allows every namespace "
                    '(allowedNamespaces: ["*"]): any namespace can read Vault as role '
                    f"{auth.role or '(none)'}",
                    "list the namespaces that need it in spec.allowedNamespaces",
                    namespaces=(auth.namespace,),
                    roles=(f"{auth.mount}/{auth.role}",) if auth.role else (),
                )
            )

    def credentials(self, addresses: AddressAllowList) -> None:
        """Issue #19: where the operator's ServiceAccount tokens could go, and whose."""
        for conn in sorted(self.inv.connections, key=lambda c: (c.namespace, c.name)):
            if conn.namespace not in self.in_scope or addresses.allows(conn.address):
                continue
            self.add(
                Finding(
                    "CONNECTION_OUTSIDE_ALLOW_LIST",
                    "high",
                    f"VaultConnection {conn.namespace}/{conn.name}",
                    f"VaultConnection {conn.namespace}/{conn.name} points at {conn.address}, "
                    f"which is not on the allowed Vault addresses ({', '.join(addresses.entries)})",
                    "delete it, or add the address to --allowed-vault-addresses if it is a Vault "
                    "the platform team runs",
                    namespaces=(conn.namespace,),
                )
            )
        opted_in = set(self.inv.vault_login_accounts)
        for grant in sorted(self.inv.cluster_grants, key=lambda g: (g.service_account, g.via)):
            ns = grant.service_account.split("/", 1)[0]
            if grant.service_account not in opted_in or ns not in self.in_scope:
                continue
            self.add(
                Finding(
                    "VAULT_LOGIN_SA_CLUSTER_RIGHTS",
                    "critical" if grant.unrestricted else "high",
                    f"ServiceAccount {grant.service_account}",
                    f"ServiceAccount {grant.service_account} is enabled for Vault logins "
                    f"(vaultbridge.dev/vault-login) and holds cluster-wide rights ({grant.via}): "
                    "its token is minted by the operator whenever a VaultAuth names it",
                    "log in to Vault with a ServiceAccount that has no cluster-wide rights, or "
                    "remove the vaultbridge.dev/vault-login annotation",
                    namespaces=(ns,),
                )
            )


def _narrow(pattern: str, example: str, env: str) -> str:
    """`secret/data/team/*` + `secret/data/team/prod/db` → `secret/data/team/prod/*`."""
    prefix = pattern.rstrip("*")
    rest = example[len(prefix) :] if example.startswith(prefix) else ""
    head = rest.split("/", 1)[0]
    if head and env in [ALIASES.get(w, w) for w in _WORD.split(head.lower())]:
        return f"{prefix}{head}/*"
    return f"{prefix}{env}/*"


def analyse(
    inv: Inventory,
    scope: Iterable[str] | None = None,
    *,
    environments: Sequence[str] = DEFAULT_ENVIRONMENTS,
    max_readers: int = DEFAULT_MAX_READERS,
    allowed_addresses: AddressAllowList | None = None,
) -> Report:
    """The report for the namespaces in `scope` (default: every namespace)."""
    a = _Analyser(inv, scope, environments, max_readers)
    rows = a.access()
    a.roles()
    a.policies(rows)
    a.cross_namespace(rows)
    a.never_sync()
    a.readers()
    a.auths()
    a.credentials(allowed_addresses or AddressAllowList())
    findings = sorted(
        a.findings, key=lambda f: (-severity_rank(f.severity), f.code, f.subject, f.message)
    )
    injected = [
        InjectedObject(r.kind, r.namespace, r.name, r.injected_pods, r.paths)
        for r in sorted(a.resources, key=lambda r: (r.namespace, r.kind, r.name))
        if r.delivery == "inject"
    ]
    return Report(rows, findings, list(inv.warnings), sorted(a.in_scope), injected)
