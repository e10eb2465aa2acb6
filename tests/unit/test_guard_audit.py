"""The audit's pure parts: HCL subset, Vault globs, RBAC grants, analysis and rendering."""

from __future__ import annotations

import io
import json

import pytest

from vaultbridge.api.path_policy import VaultPathPolicySpec
from vaultbridge.guard.audit.analyse import analyse, namespace_environment, path_environment
from vaultbridge.guard.audit.collect import rbac_grants
from vaultbridge.guard.audit.hcl import HCLError, PathRule, parse_policy, vault_glob_matches
from vaultbridge.guard.audit.html import render_html
from vaultbridge.guard.audit.model import (
    Inventory,
    NamespaceInfo,
    SecretResourceInfo,
    VaultAuthInfo,
    VaultPolicy,
    VaultRole,
)
from vaultbridge.guard.audit.render import render_json, render_table
from vaultbridge.guard.matching import PathPolicy

ENVS = ("prod", "staging", "dev")


def test_hcl_subset() -> None:
    text = """
    # team a
    path "secret/data/team-a/*" {
      capabilities = ["read", "list"]
    }
    path "secret/metadata/team-a/*" { capabilities = ["list"] }  // trailing
    /* block */ path "sys/*" {
      capabilities = ["deny"]
      allowed_parameters = { "ttl" = [] }
    }
    path "database/creds/+" {
      min_wrapping_ttl = "1s"
      capabilities = ["read"]
    }
    """
    rules = parse_policy(text)
    assert rules == [
        PathRule("secret/data/team-a/*", ("read", "list")),
        PathRule("secret/metadata/team-a/*", ("list",)),
        PathRule("sys/*", ("deny",)),
        PathRule("database/creds/+", ("read",)),
    ]
    assert rules[0].reads and not rules[2].reads
    assert parse_policy("") == []
    with pytest.raises(HCLError):
        parse_policy('path "x" { capabilities = ["read"] ')


def test_vault_globs() -> None:
    assert vault_glob_matches("secret/data/*", "secret/data/a/b")
    assert vault_glob_matches("secret/data/a*", "secret/data/abc")
    assert not vault_glob_matches("secret/data/a", "secret/data/ab")
    assert vault_glob_matches("secret/+/a", "secret/data/a")
    assert not vault_glob_matches("secret/+/a", "secret/data/x/a")


def test_environments() -> None:
    assert namespace_environment(NamespaceInfo("team-a-prod"), ENVS) == "prod"
    assert namespace_environment(NamespaceInfo("shop-production"), ENVS) == "prod"
    assert namespace_environment(NamespaceInfo("x", {"environment": "Staging"}), ENVS) == "staging"
    assert namespace_environment(NamespaceInfo("product"), ENVS) is None
    assert path_environment("secret/data/team/staging/db", ENVS) == "staging"
    assert path_environment("secret/data/team-prod/db", ENVS) == "prod"
    assert path_environment("secret/data/products/db", ENVS) is None


def test_rbac_grants() -> None:
    cluster_roles = [
        {"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
        {"metadata": {"name": "pods"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]},
    ]  # fmt: skip
    roles = [
        {"metadata": {"name": "one", "namespace": "a"}, "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"],
             "resourceNames": ["db"]}]},
    ]  # fmt: skip
    crb = [
        {"metadata": {"name": "all-readers"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
         "subjects": [{"kind": "Group", "name": "devs"}]},
        {"metadata": {"name": "p"}, "roleRef": {"kind": "ClusterRole", "name": "pods"},
         "subjects": [{"kind": "User", "name": "bob"}]},
    ]  # fmt: skip
    rb = [
        {"metadata": {"name": "rb", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "one"},
         "subjects": [{"kind": "ServiceAccount", "name": "app"}]},
    ]  # fmt: skip
    grants = rbac_grants(cluster_roles, roles, crb, rb)
    assert [(g.subject, g.namespace, g.resource_names) for g in grants] == [
        ("Group:devs", None, ()),
        ("ServiceAccount:a/app", "a", ("db",)),
    ]


def _inventory() -> Inventory:
    """prod and staging namespaces, one role bound to every namespace with a policy spanning
    both environments, a synced signing key."""
    inv = Inventory()
    inv.namespaces = [NamespaceInfo("shop-prod"), NamespaceInfo("shop-staging")]
    inv.vault_auths = [
        VaultAuthInfo("shop-prod", "default", "kubernetes", "kubernetes", "broad", "default", ()),
        VaultAuthInfo("shop-staging", "default", "kubernetes", "kubernetes", "stg", "app", ("*",)),
    ]
    inv.resources = [
        SecretResourceInfo("VaultStaticSecret", "shop-prod", "db", "shop-prod", "default",
                           ("secret/data/shop/prod/db",), "db", True),
        SecretResourceInfo("VaultStaticSecret", "shop-prod", "jwt", "shop-prod", "default",
                           ("secret/data/shop/prod/signing-keys/jwt",), "jwt", True),
        SecretResourceInfo("VaultStaticSecret", "shop-staging", "db", "shop-staging", "default",
                           ("secret/data/shop/staging/db",), "db", True),
    ]  # fmt: skip
    inv.roles = [
        VaultRole("kubernetes", "broad", ("default",), ("*",), ("shop-all", "default")),
        VaultRole("kubernetes", "stg", ("app",), ("shop-staging",), ("shop-staging",)),
    ]
    inv.policies = {
        "shop-all": VaultPolicy("shop-all", (PathRule("secret/data/shop/*", ("read",)),)),
        "shop-staging": VaultPolicy(
            "shop-staging", (PathRule("secret/data/shop/staging/*", ("read",)),)
        ),
        "default": VaultPolicy("default", (PathRule("cubbyhole/*", ("read",)),)),
    }
    inv.path_policies = [
        PathPolicy(
            "global",
            VaultPathPolicySpec.model_validate(
                {"namespaceSelector": {}, "neverSync": ["secret/data/*/*/signing-keys/*"]}
            ),
        )
    ]
    return inv


def test_analysis_of_an_over_permissioned_setup() -> None:
    report = analyse(_inventory(), environments=ENVS)
    codes = [(f.code, f.subject) for f in report.findings]
    assert codes == [
        ("NEVER_SYNC_SYNCED", "VaultStaticSecret shop-prod/jwt"),
        ("CROSS_NAMESPACE_READ", "namespace shop-prod"),
        ("CROSS_NAMESPACE_READ", "namespace shop-staging"),
        ("POLICY_SPANS_ENVIRONMENTS", "policy shop-all"),
        ("ROLE_ALL_NAMESPACES", "role kubernetes/broad"),
        ("AUTH_ALL_NAMESPACES", "VaultAuth shop-staging/default"),
    ]
    by_code = {f.code: f for f in report.findings}
    assert "bound_service_account_namespaces=['shop-prod']" in by_code["ROLE_ALL_NAMESPACES"].fix
    spans = by_code["POLICY_SPANS_ENVIRONMENTS"]
    assert "prod (secret/data/shop/prod/db)" in spans.message
    assert '"secret/data/shop/prod/*"' in spans.fix and '"secret/data/shop/staging/*"' in spans.fix
    # The default policy never shows up in the blast radius.
    assert {r.policy for r in report.access} == {"shop-all", "shop-staging"}
    assert ("shop-staging", "app", "kubernetes/stg") in {
        (r.namespace, r.service_account, r.role) for r in report.access
    }
    assert report.fails("critical") and report.fails("low")
    # Scoped to a namespace without resources: only the role bound to every namespace reaches it.
    only = analyse(_inventory(), ["nobody"], environments=ENVS)
    assert [f.code for f in only.findings] == ["ROLE_ALL_NAMESPACES"]
    assert not only.fails("critical")


def test_role_shared_by_environments_and_many_readers() -> None:
    inv = _inventory()
    inv.roles[0] = VaultRole("kubernetes", "broad", ("default",), ("shop-prod", "shop-staging"),
                             ("shop-staging",))  # fmt: skip
    inv.path_policies = []
    from vaultbridge.guard.audit.model import SecretReadGrant

    inv.grants = [
        SecretReadGrant(f"User:u{i}", "shop-prod", (), f"RoleBinding r{i} → ClusterRole view")
        for i in range(5)
    ] + [SecretReadGrant("Group:system:masters", None, (), "ClusterRoleBinding cluster-admin")]
    report = analyse(inv, ["shop-prod", "shop-staging"], environments=ENVS, max_readers=3)
    codes = {(f.code, f.subject) for f in report.findings}
    assert ("ROLE_SPANS_ENVIRONMENTS", "role kubernetes/broad") in codes
    assert ("SECRET_MANY_READERS", "Secret shop-prod/db") in codes
    assert ("SECRET_MANY_READERS", "Secret shop-prod/jwt") in codes
    readers = next(f for f in report.findings if f.code == "SECRET_MANY_READERS")
    assert "5 subjects" in readers.message and "system:masters" not in readers.message


def test_tight_setup_has_no_findings() -> None:
    inv = Inventory()
    inv.namespaces = [NamespaceInfo("shop-prod"), NamespaceInfo("shop-staging")]
    inv.vault_auths = [
        VaultAuthInfo(ns, "default", "kubernetes", "kubernetes", ns, "default", ())
        for ns in ("shop-prod", "shop-staging")
    ]
    env = {"shop-prod": "prod", "shop-staging": "staging"}
    inv.resources = [
        SecretResourceInfo("VaultStaticSecret", ns, "db", ns, "default",
                           (f"secret/data/shop/{e}/db",), "db", True)
        for ns, e in env.items()
    ]  # fmt: skip
    inv.roles = [VaultRole("kubernetes", ns, ("default",), (ns,), (ns,)) for ns in env]
    inv.policies = {
        ns: VaultPolicy(ns, (PathRule(f"secret/data/shop/{e}/*", ("read",)),))
        for ns, e in env.items()
    }
    report = analyse(inv, environments=ENVS)
    assert report.findings == []
    assert len(report.access) == 2


def test_renderers() -> None:
    report = analyse(_inventory(), environments=ENVS)
    data = json.loads(render_json(report))
    assert data["summary"]["findings"] == len(report.findings)
    assert data["summary"]["bySeverity"]["critical"] == 1
    assert {"namespace", "serviceAccount", "service_account"} & set(data["access"][0])
    out = io.StringIO()
    render_table(report, out, width=200)
    text = out.getvalue()
    assert "ROLE_ALL_NAMESPACES" in text and "kubernetes/broad" in text
    page = render_html(report)
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert 'class="node role finding high"' in page
    assert 'data-label="kubernetes/broad"' in page


def test_cli_refuses_to_run_without_vault_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vaultbridge.cli import main

    for var in ("VAULT_ADDR", "BAO_ADDR", "VAULT_TOKEN", "BAO_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    assert main(["audit"]) == 2
    assert "no Vault address" in capsys.readouterr().err
    assert main(["audit", "--vault-addr", "http://127.0.0.1:1"]) == 2
    assert "no Vault token" in capsys.readouterr().err


def test_inject_objects_are_listed_with_their_pods_and_hold_no_secret() -> None:
    inv = _inventory()
    inv.resources.append(
        SecretResourceInfo("VaultDynamicSecret", "shop-prod", "creds", "shop-prod", "default",
                           ("database/creds/shop",), "", False, "inject", 3)
    )  # fmt: skip
    report = analyse(inv, environments=ENVS)
    (injected,) = report.injected
    assert (injected.kind, injected.namespace, injected.name, injected.pods) == (
        "VaultDynamicSecret",
        "shop-prod",
        "creds",
        3,
    )
    # No Secret: no finding speaks of a Secret for it.
    assert not [f for f in report.findings if "creds" in f.subject]
    data = json.loads(render_json(report))
    assert data["injected"][0]["pods"] == 3
    out = io.StringIO()
    render_table(report, out, width=200)
    assert "Delivered into pods" in out.getvalue()
    assert '<table id="injected">' in render_html(report)
