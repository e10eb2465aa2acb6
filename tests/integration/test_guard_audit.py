"""`vaultbridge audit` against the real API server and OpenBao, with read-only credentials.

Two setups, each in its own pair of namespaces (one prod, one staging): an over-permissioned
one (a Vault role bound to every namespace, a policy spanning prod and staging, a signing key
synced) must produce exactly the expected findings; a tight one must produce none. The HTML
report is opened in headless Chromium.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin

from .helpers import App
from .operator_harness import OPERATOR_NAMESPACE, OperatorProcess, dump

pytestmark = pytest.mark.integration

POLICIES = "/apis/vaultbridge.dev/v1beta1/vaultpathpolicies"
RBAC = "/apis/rbac.authorization.k8s.io/v1"

AUDITOR_VAULT_POLICY = """
path "sys/auth" { capabilities = ["read"] }
path "sys/policies/acl" { capabilities = ["list"] }
path "sys/policies/acl/*" { capabilities = ["read"] }
path "auth/kubernetes/role" { capabilities = ["list"] }
path "auth/kubernetes/role/*" { capabilities = ["read"] }
"""
AUDITOR_RULES = [
    {
        "apiGroups": [""],
        "resources": ["namespaces", "serviceaccounts"],
        "verbs": ["get", "list"],
    },
    {
        "apiGroups": ["vaultbridge.dev"],
        "resources": [
            "vaultauths",
            "vaultauthglobals",
            "vaultconnections",
            "vaultstaticsecrets",
            "vaultdynamicsecrets",
            "vaultpkisecrets",
            "vaultpathpolicies",
        ],
        "verbs": ["get", "list"],
    },
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles", "roles", "clusterrolebindings", "rolebindings"],
        "verbs": ["get", "list"],
    },
]


class Setup:
    """A prod and a staging namespace sharing a unique id, plus the Vault objects for them."""

    def __init__(self, devenv: DevState, admin: KubeAdmin, tmp: Path) -> None:
        self.devenv = devenv
        self.admin = admin
        self.tmp = tmp
        self.id = "g" + secrets.token_hex(3)
        self.bao = BaoAdmin(devenv.vault_addr, devenv.vault_root_token)
        self.prod = App(devenv, admin, f"{self.id}-p")
        self.staging = App(devenv, admin, f"{self.id}-s")
        self.cleanup: list[tuple[str, str]] = []  # (kind, path) to delete afterwards
        self._credentials: tuple[Path, Path] | None = None
        for app, env in ((self.prod, "prod"), (self.staging, "staging")):
            admin.ensure(
                "/api/v1/namespaces",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": app.ns, "labels": {"environment": env}},
                },
            )
            self.cleanup.append(("kube", f"/api/v1/namespaces/{app.ns}"))
            admin.opt_in_vault_login(app.ns)

    def vault_policy(self, name: str, paths: list[str]) -> None:
        text = "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in paths)
        self.bao.must("PUT", f"sys/policies/acl/{name}", {"policy": text})
        self.cleanup.append(("vault", f"sys/policies/acl/{name}"))

    def vault_role(self, name: str, namespaces: list[str], policies: list[str]) -> None:
        self.bao.must(
            "POST",
            f"auth/kubernetes/role/{name}",
            {
                "bound_service_account_names": ["default"],
                "bound_service_account_namespaces": namespaces,
                "token_policies": policies,
                "token_ttl": "1h",
            },
        )
        self.cleanup.append(("vault", f"auth/kubernetes/role/{name}"))

    def vault_auth(self, app: App, role: str) -> None:
        app.create(
            "vaultauths",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultAuth",
                "metadata": {"name": "default"},
                "spec": {
                    "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
                    "method": "kubernetes",
                    "kubernetes": {"role": role, "serviceAccount": "default"},
                },
            },
        )

    def path_policy(self, spec: dict[str, Any]) -> None:
        status, resp = self.admin.request(
            "POST",
            POLICIES,
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultPathPolicy",
                "metadata": {"name": self.id},
                "spec": spec,
            },
        )
        assert status == 201, dump(resp)
        self.cleanup.append(("kube", f"{POLICIES}/{self.id}"))

    def credentials(self) -> tuple[Path, Path]:
        """A read-only kubeconfig (no access to Secrets) and a read-only Vault token file."""
        if self._credentials is not None:
            return self._credentials
        role = f"{self.id}-auditor"
        self.admin.ensure(
            f"{RBAC}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": AUDITOR_RULES,
            },
        )
        self.cleanup.append(("kube", f"{RBAC}/clusterroles/{role}"))
        self.admin.ensure(
            f"/api/v1/namespaces/{self.prod.ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "auditor"}},
        )
        self.admin.ensure(
            f"{RBAC}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "auditor", "namespace": self.prod.ns}
                ],
            },
        )
        self.cleanup.append(("kube", f"{RBAC}/clusterrolebindings/{role}"))
        status, resp = self.admin.request(
            "POST",
            f"/api/v1/namespaces/{self.prod.ns}/serviceaccounts/auditor/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        assert status == 201, dump(resp)
        kubeconfig = self.tmp / "auditor.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "dev",
                            "cluster": {
                                "server": self.devenv.api_url,
                                "certificate-authority": str(self.devenv.pki_dir / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "auditor", "user": {"token": resp["status"]["token"]}}],
                    "contexts": [{"name": "a", "context": {"cluster": "dev", "user": "auditor"}}],
                    "current-context": "a",
                }
            )
        )
        self.bao.must("PUT", f"sys/policies/acl/{role}", {"policy": AUDITOR_VAULT_POLICY})
        self.cleanup.append(("vault", f"sys/policies/acl/{role}"))
        token = self.bao.must(
            "POST", "auth/token/create", {"policies": [role], "ttl": "15m", "no_parent": True}
        )["auth"]["client_token"]
        token_file = self.tmp / "vault-token"
        token_file.write_text(token)
        self._credentials = (kubeconfig, token_file)
        return self._credentials

    def audit(self, *args: str) -> tuple[int, str, str]:
        kubeconfig, token_file = self.credentials()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("VAULT_TOKEN", "BAO_TOKEN", "KUBECONFIG")
        }
        argv = [sys.executable, "-m", "vaultbridge.cli", "audit", "--kubeconfig", str(kubeconfig)]
        argv += ["--vault-addr", self.devenv.vault_addr, "--vault-token-file", str(token_file)]
        argv += ["-n", self.prod.ns, "-n", self.staging.ns, *args]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def mine(self, findings: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """Findings about this setup's objects (other tests share the cluster and Vault)."""
        return {
            (f["code"], f["subject"])
            for f in findings
            if self.id in f["subject"] or set(f["namespaces"]) & {self.prod.ns, self.staging.ns}
        }

    def close(self) -> None:
        for kind, path in reversed(self.cleanup):
            if kind == "vault":
                self.bao.call("DELETE", path)
            else:
                self.admin.request("DELETE", path)


@pytest.fixture
def setup(
    devenv: DevState,
    kube_admin: KubeAdmin,
    operator: OperatorProcess,
    tmp_path: Path,
) -> Iterator[Setup]:
    s = Setup(devenv, kube_admin, tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_over_permissioned_setup_gives_exactly_the_expected_findings(setup: Setup) -> None:
    s, gid = setup, setup.id
    broad, anyrole = f"{gid}-broad", f"{gid}-any"
    s.vault_policy(broad, [f"secret/data/{gid}/*"])  # spans prod and staging
    s.vault_role(anyrole, ["*"], [broad])  # bound to every namespace
    s.vault_policy(f"{gid}-stg", [f"secret/data/{gid}/staging/*"])
    s.vault_role(f"{gid}-stg", [s.staging.ns], [f"{gid}-stg"])
    s.vault_auth(s.prod, anyrole)
    s.vault_auth(s.staging, f"{gid}-stg")
    s.prod.vault.kv_put(f"{gid}/prod/app", {"user": "p"})
    s.prod.vault.kv_put(f"{gid}/prod/signing-keys/jwt", {"key": "k"})
    s.staging.vault.kv_put(f"{gid}/staging/app", {"user": "s"})
    s.prod.vss("app", path=f"{gid}/prod/app")
    s.prod.vss("jwt", path=f"{gid}/prod/signing-keys/jwt")
    s.staging.vss("app", path=f"{gid}/staging/app")
    s.prod.wait_data("app", {"user": "p"})
    s.prod.wait_data("jwt", {"key": "k"})
    s.staging.wait_data("app", {"user": "s"})
    # The platform team declares signing keys never-sync after the fact: the sync stops, the
    # Secret that already leaked stays, and the audit must say so.
    s.path_policy(
        {
            "namespaces": [s.prod.ns, s.staging.ns],
            "allow": [f"secret/data/{gid}/*"],
            "neverSync": [f"secret/data/{gid}/*/signing-keys/*"],
        }
    )
    s.prod.wait_condition("jwt", "SecretSynced", "False", "SyncForbidden")

    rc, out, err = s.audit("--output", "json", "--fail-on", "high")
    assert rc == 1, err
    report = json.loads(out)
    # The read-only credentials are enough: nothing was unreadable. (Warnings about invalid
    # objects of other tests sharing the cluster are not this test's business.)
    assert not [w for w in report["warnings"] if w.startswith("cannot read")], report["warnings"]
    assert s.mine(report["findings"]) == {
        ("ROLE_ALL_NAMESPACES", f"role kubernetes/{anyrole}"),
        ("POLICY_SPANS_ENVIRONMENTS", f"policy {broad}"),
        ("CROSS_NAMESPACE_READ", f"namespace {s.prod.ns}"),
        ("CROSS_NAMESPACE_READ", f"namespace {s.staging.ns}"),
        ("NEVER_SYNC_SYNCED", f"VaultStaticSecret {s.prod.ns}/jwt"),
    }
    by_code = {f["code"]: f for f in report["findings"] if gid in f["subject"]}
    assert by_code["NEVER_SYNC_SYNCED"]["severity"] == "critical"
    assert by_code["ROLE_ALL_NAMESPACES"]["severity"] == "high"
    assert s.prod.ns in by_code["ROLE_ALL_NAMESPACES"]["fix"]
    assert "prod" in by_code["POLICY_SPANS_ENVIRONMENTS"]["message"]
    assert "staging" in by_code["POLICY_SPANS_ENVIRONMENTS"]["message"]
    rows = {(a["namespace"], a["role"], a["policy"], a["path"]) for a in report["access"]}
    assert (s.staging.ns, f"kubernetes/{anyrole}", broad, f"secret/data/{gid}/*") in rows
    assert (s.prod.ns, f"kubernetes/{anyrole}", broad, f"secret/data/{gid}/*") in rows

    # The terminal table names the same things.
    rc, out, err = s.audit("--output", "table")
    assert rc == 0, err
    assert "ROLE_ALL_NAMESPACES" in out and anyrole in out

    # The HTML page renders in headless Chromium and its graph flags the over-broad role.
    page = s.tmp / "audit.html"
    rc, _, err = s.audit("--output", "html", "--out", str(page))
    assert rc == 0, err
    dom, png = _chromium(page, s.tmp)
    node = f'id="role-kubernetes-{gid}-any"'
    assert node in dom, dom[:2000]
    start = dom.index(node)
    tag = dom[dom.rindex("<g", 0, start) : start]
    assert "finding high" in tag, tag
    assert f"namespace-{s.staging.ns}" in dom and f"policy-{broad}" in dom
    width, height = _png_size(png)
    assert (width, height) == (1280, 2400)
    assert len(png) > 20_000  # a blank page compresses to a few hundred bytes


def test_tight_setup_has_no_findings(setup: Setup) -> None:
    s, gid = setup, setup.id
    for app, env in ((s.prod, "prod"), (s.staging, "staging")):
        s.vault_policy(f"{gid}-{env}", [f"secret/data/{gid}/{env}/*"])
        s.vault_role(f"{gid}-{env}", [app.ns], [f"{gid}-{env}"])
        s.vault_auth(app, f"{gid}-{env}")
        app.vault.kv_put(f"{gid}/{env}/app", {"user": env})
        app.vss("app", path=f"{gid}/{env}/app")
    s.path_policy(
        {
            "namespaces": [s.prod.ns, s.staging.ns],
            "allow": [f"secret/data/{gid}/*"],
            "neverSync": [f"secret/data/{gid}/*/signing-keys/*"],
        }
    )
    s.prod.wait_data("app", {"user": "prod"})
    s.staging.wait_data("app", {"user": "staging"})

    rc, out, err = s.audit("--output", "json", "--fail-on", "low")
    report = json.loads(out)
    assert s.mine(report["findings"]) == set(), dump(report["findings"])
    # The read-only credentials are enough: nothing was unreadable. (Warnings about invalid
    # objects of other tests sharing the cluster are not this test's business.)
    assert not [w for w in report["warnings"] if w.startswith("cannot read")], report["warnings"]
    rows = {(a["namespace"], a["path"]) for a in report["access"]}
    assert (s.prod.ns, f"secret/data/{gid}/prod/*") in rows
    assert (s.staging.ns, f"secret/data/{gid}/staging/*") in rows
    assert rc == (1 if report["findings"] else 0), err


def _chromium(page: Path, tmp: Path) -> tuple[str, bytes]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        subprocess.run(
            [str(Path(__file__).resolve().parents[2] / "scripts" / "ensure-chromium.sh")],
            check=False,
            timeout=900,
        )
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip(
            "chromium is not installed and could not be installed (scripts/ensure-chromium.sh)"
        )
    base = [
        binary, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp / 'chromium-profile'}",
    ]  # fmt: skip
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    shot = tmp / "audit.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom, shot.read_bytes()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
