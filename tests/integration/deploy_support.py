"""The chart's objects and operators that run as its ServiceAccount: `helm`/`render_chart`,
`apply`, `Release` (one release of the chart, the `release` fixture in conftest.py, plus
operator processes authenticated as its ServiceAccount) and `Workload` (what a scenario
creates for such an operator). Used by test_deploy_rbac.py and the other test_deploy_*.py.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaultbridge.devenv import processes
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App
from .operator_harness import REPO, TEST_OPERATOR_LABEL, OperatorProcess, dump

CHART = REPO / "deploy" / "chart"
Obj = dict[str, Any]

# Collection paths of the kinds the chart renders (and the test creates).
_KINDS: dict[str, tuple[str, str, bool]] = {
    # kind: (API prefix, plural, namespaced)
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "VaultConnection": ("/apis/vaultbridge.dev/v1beta1", "vaultconnections", True),
    "VaultAuth": ("/apis/vaultbridge.dev/v1beta1", "vaultauths", True),
    "ValidatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        False,
    ),
    "MutatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        False,
    ),
}


# --- helm and objects ------------------------------------------------------------------------


def helm(helm_bin: str, *args: str) -> str:
    done = subprocess.run(
        [helm_bin, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def render_chart(helm_bin: str, release: str, namespace: str, values: Obj) -> list[Obj]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as fh:
        json.dump(values, fh)  # JSON is YAML
        fh.flush()
        out = helm(helm_bin, "template", release, str(CHART), "-n", namespace, "-f", fh.name)
    return [o for o in yaml.safe_load_all(out) if o]


def object_path(obj: Obj, with_name: bool = False) -> str:
    prefix, plural, namespaced = _KINDS[obj["kind"]]
    meta = obj["metadata"]
    path = (
        f"{prefix}/namespaces/{meta['namespace']}/{plural}" if namespaced else f"{prefix}/{plural}"
    )
    return f"{path}/{meta['name']}" if with_name else path


def apply(admin: KubeAdmin, obj: Obj) -> Obj:
    """Create, or replace what is there (as `kubectl apply` would end up)."""
    status, resp = admin.request("POST", object_path(obj), obj)
    if status == 409:
        _, live = admin.request("GET", object_path(obj, True))
        body = copy.deepcopy(obj)
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        status, resp = admin.request("PUT", object_path(obj, True), body)
    assert status in (200, 201), f"{obj['kind']} {obj['metadata']['name']}: {dump(resp)}"
    return resp


def token_kubeconfig(
    admin: KubeAdmin, devenv: DevState, namespace: str, service_account: str, path: Path
) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (TokenRequest), not as admin."""
    status, resp = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}},
    )  # fmt: skip
    assert status == 201, dump(resp)
    admin_config = json.loads(Path(devenv.kubeconfig).read_text())
    ca_data = admin_config["clusters"][0]["cluster"]["certificate-authority-data"]
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "dev", "cluster": {"server": devenv.api_url,
                                        "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": user, "user": {"token": resp["status"]["token"]}}],
        "contexts": [{"name": "sa", "context": {"cluster": "dev", "user": user,
                                                "namespace": namespace}}],
        "current-context": "sa",
    }  # fmt: skip
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return str(path)


# --- one release of the chart plus operators running as its ServiceAccount --------------------


@dataclass
class Release:
    """The chart rendered and applied into `namespace`, and helpers to run the operator."""

    helm_bin: str
    devenv: DevState
    admin: KubeAdmin
    namespace: str
    ident: str = field(default_factory=lambda: secrets.token_hex(4))
    webhook_port: int = field(default_factory=processes.free_port)
    objects: list[Obj] = field(default_factory=list)
    operators: list[OperatorProcess] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"vb-{self.ident}"

    @property
    def selector_label(self) -> dict[str, str]:
        return {TEST_OPERATOR_LABEL: self.ident}

    def values(self, **extra: Any) -> Obj:
        return {
            "defaultObjectLabels": self.selector_label,
            "resourceSelector": f"{TEST_OPERATOR_LABEL}={self.ident}",
            "defaultVaultConnection": {
                "enabled": True, "address": self.devenv.vault_addr, "timeout": "5s"
            },
            "defaultAuth": {
                "enabled": True,
                "method": "kubernetes",
                "kubernetes": {"role": f"role-{self.namespace}", "serviceAccount": "default"},
            },
            # A webhook configuration is cluster-wide: only tests that run its server enable it.
            "webhook": {"enabled": False},
            **extra,
        }  # fmt: skip

    def install(self, **values: Any) -> list[Obj]:
        self.objects = render_chart(self.helm_bin, self.name, self.namespace, self.values(**values))
        for obj in self.objects:
            apply(self.admin, obj)
        return self.objects

    def webhook_values(self) -> Obj:
        """The webhook registered by URL (no pods here: the operator serves on 127.0.0.1),
        reviewing only this release's objects in this namespace."""
        return {
            "enabled": True,
            "url": f"https://127.0.0.1:{self.webhook_port}/validate",
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
            "objectSelector": {"matchLabels": dict(self.selector_label)},
        }

    def webhook_args(self) -> list[str]:
        """The chart's webhook flags, bound to loopback instead of the pod's port."""
        (container,) = self.find("Deployment")["spec"]["template"]["spec"]["containers"]
        args = [
            a
            for a in container["args"]
            if a.startswith(("--webhook-", "--path-policy-", "--mutating-webhook-"))
        ]
        assert any(a.startswith("--webhook-config-name=") for a in args), args
        local = {"--webhook-bind-address": f"127.0.0.1:{self.webhook_port}",
                 "--webhook-hosts": "127.0.0.1"}  # fmt: skip
        return [
            f"{flag}={local[flag]}" if flag in local else a
            for a in args
            for flag in [a.partition("=")[0]]
        ]

    def find(self, kind: str) -> Obj:
        return next(o for o in self.objects if o["kind"] == kind)

    def service_account(self) -> str:
        return str(self.find("ServiceAccount")["metadata"]["name"])

    def operator(
        self, *extra: str, leader_elect: bool = True, webhook: bool = False
    ) -> OperatorProcess:
        """An operator process authenticated as the chart's ServiceAccount (not started)."""
        home = Path(self.devenv.home)
        kubeconfig = token_kubeconfig(
            self.admin,
            self.devenv,
            self.namespace,
            self.service_account(),
            home / f"kubeconfig-{self.name}-{len(self.operators)}",
        )
        args = [
            "--namespace", self.namespace,
            "--resource-selector", f"{TEST_OPERATOR_LABEL}={self.ident}",
            "--hmac-key-secret", f"hmac-{self.ident}",
        ]  # fmt: skip
        if leader_elect:
            args += [
                "--leader-elect", "true",
                "--leader-election-id", f"lease-{self.ident}",
                "--leader-election-lease-duration", "8",
                "--leader-election-renew-deadline", "5",
                "--leader-election-retry-period", "1",
            ]  # fmt: skip
        if webhook:
            args += self.webhook_args()
        op = OperatorProcess(
            devenv=self.devenv,
            log_path=home / "logs" / f"operator-{self.name}-{len(self.operators)}.log",
            metrics_port=processes.free_port(),
            health_port=processes.free_port(),
            extra_args=[*args, *extra],
            kubeconfig=kubeconfig,
        )
        self.operators.append(op)
        return op

    def close(self) -> None:
        # The webhook configuration first: it must not outlive the server it points at.
        for obj in self.objects:
            if obj["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                self.admin.request("DELETE", object_path(obj, True))
        for op in self.operators:
            op.stop(timeout=20)
        for obj in self.objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                self.admin.request("DELETE", object_path(obj, True))


# --- what the scenario creates -----------------------------------------------------------------


class Workload(App):
    """The test namespace's Vault role, objects (labelled for our operator) and checks."""

    def __init__(self, rel: Release) -> None:
        super().__init__(rel.devenv, rel.admin, rel.namespace)
        self.rel = rel
        self.pki_mount = f"pki-{rel.namespace}"

    def allow(self, pki: bool = False) -> None:
        """Vault role for the namespace's `default` ServiceAccount: KV (and PKI) access."""
        self.vault.allow_role([f"secret/data/{self.ns}/*"])
        if not pki:
            return
        bao = self.vault.bao
        bao.must("POST", f"sys/mounts/{self.pki_mount}", {"type": "pki"})
        bao.must(
            "POST",
            f"{self.pki_mount}/root/generate/internal",
            {"common_name": "Root", "key_type": "ec", "key_bits": 256, "ttl": "24h"},
        )
        bao.must(
            "POST",
            f"{self.pki_mount}/roles/web",
            {"allowed_domains": ["example.com"], "allow_subdomains": True,
             "key_type": "ec", "key_bits": 256, "max_ttl": "2h"},
        )  # fmt: skip
        policy = (
            f'path "secret/data/{self.ns}/*" {{ capabilities = ["read"] }}\n'
            f'path "{self.pki_mount}/issue/web" {{ capabilities = ["update"] }}\n'
            f'path "{self.pki_mount}/revoke" {{ capabilities = ["update"] }}\n'
        )
        bao.must("PUT", f"sys/policies/acl/{self.vault.role}", {"policy": policy})

    def drop_pki(self) -> None:
        self.vault.bao.call("DELETE", f"sys/mounts/{self.pki_mount}")

    def labelled(self, kind: str, name: str, spec: Obj) -> Obj:
        return {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": kind,
            "metadata": {"name": name, "labels": dict(self.rel.selector_label)},
            "spec": spec,
        }

    def static(self, name: str, dest: str, **spec: Any) -> Obj:
        body = self.labelled(
            "VaultStaticSecret",
            name,
            {"vaultAuthRef": "default", "mount": "secret", "type": "kv-v2",
             "path": f"{self.ns}/{name}", "destination": {"name": dest, "create": True},
             **spec},
        )  # fmt: skip
        return self.create("vaultstaticsecrets", body)

    def pki(self, name: str) -> Obj:
        body = self.labelled(
            "VaultPKISecret",
            name,
            {"vaultAuthRef": "default", "mount": self.pki_mount, "role": "web",
             "commonName": f"{name}.example.com", "revoke": True,
             "destination": {"name": name, "create": True}},
        )  # fmt: skip
        return self.create("vaultpkisecrets", body)

    def deployment(self, name: str) -> None:
        apply(
            self.admin,
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": name, "namespace": self.ns},
             "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                      "template": {"metadata": {"labels": {"app": name}},
                                   "spec": {"containers": [{"name": "c",
                                                            "image": "x.invalid/x"}]}}}},
        )  # fmt: skip

    def restarted_at(self, name: str) -> str | None:
        _, dep = self.admin.request("GET", f"/apis/apps/v1/namespaces/{self.ns}/deployments/{name}")
        annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
        return annotations.get("vaultbridge.dev/restartedAt")


def ca_bundle(admin: KubeAdmin, config: Obj) -> str:
    """The caBundle the operator put into the chart's webhook configuration ("" if none)."""
    _, live = admin.request("GET", object_path(config, True))
    return str(live["webhooks"][0]["clientConfig"].get("caBundle") or "")


def log_mentions(op: OperatorProcess, *needles: str) -> bool:
    """True if one log record (message and exception text) contains every needle."""
    for line in op.log_text().splitlines():
        try:
            record = json.loads(line)
            text = " ".join(str(v) for v in record.values()) if isinstance(record, dict) else line
        except ValueError:
            text = line
        if all(n in text for n in needles):
            return True
    return False
