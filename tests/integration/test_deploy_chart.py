"""The Helm chart and the kustomize base, with the real `helm` (built from its Go module) and
the real API server: lint, schema, install / upgrade / uninstall, and the base in step."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .deploy_support import CHART, apply, helm, object_path, render_chart
from .operator_harness import REPO, dump

pytestmark = pytest.mark.integration

KUSTOMIZE = REPO / "deploy" / "kustomize"


@pytest.fixture
def helm_env(devenv: DevState) -> Iterator[dict[str, str]]:
    """Helm talking to the dev API server as admin, with its own throwaway home."""
    with tempfile.TemporaryDirectory(prefix="vb-helm-") as home:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=devenv.kubeconfig,
            HELM_CACHE_HOME=f"{home}/cache",
            HELM_CONFIG_HOME=f"{home}/config",
            HELM_DATA_HOME=f"{home}/data",
        )
        yield env


def run_helm(helm_bin: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_bin, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_chart_lints_strict(helm_bin: str) -> None:
    out = helm(helm_bin, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out


BAD_VALUES = {
    "replicas=two": "/replicas",
    "securityContext.readOnlyRootFilesystem=false": "readOnlyRootFilesystem",
    "securityContext.allowPrivilegeEscalation=true": "allowPrivilegeEscalation",
    "securityContext.runAsNonRoot=false": "runAsNonRoot",
    "podSecurityContext.runAsUser=0": "runAsUser",
    "replicas=3,leaderElection.enabled=false": "leaderElection",
    "logLevel=verbose": "logLevel",
    "logFormat=xml": "logFormat",
    "workers=0": "workers",
    "vault.qps=-1": "qps",
    "unknownKey=1": "unknownKey",
    "defaultAuth.enabled=true": "role",
    "defaultVaultConnection.enabled=true": "address",
    "defaultVaultConnection.address=vault:8200": "address",
    "clientCache.persistTokens=maybe": "persistTokens",
    "clientCache.storageEncryption.enabled=true": "keyName",
    "image.digest=latest": "digest",
    "podSecurityContext.seccompProfile.type=Unconfined": "seccompProfile",
    "webhook.failurePolicy=Maybe": "failurePolicy",
    "webhook.timeoutSeconds=31": "timeoutSeconds",
    "webhook.timeoutSeconds=0": "timeoutSeconds",
    "webhook.port=70000": "/webhook/port",
    "webhook.url=http://10.0.0.1/validate": "url",
    "webhook.enabled=yes": "/webhook/enabled",
    "pathPolicy.default=open": "/pathPolicy/default",
}


@pytest.mark.parametrize("setting", sorted(BAD_VALUES))
def test_values_schema_rejects(helm_bin: str, setting: str) -> None:
    done = subprocess.run(
        [helm_bin, "template", "r", str(CHART), "--set", setting],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0, f"{setting} was accepted"
    assert "schema" in done.stderr and BAD_VALUES[setting] in done.stderr, done.stderr


def test_rendered_pod_is_hardened(helm_bin: str) -> None:
    objs = render_chart(helm_bin, "vaultbridge", "vaultbridge-system", {})
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "--leader-elect=true" in container["args"]
    assert deploy["spec"]["replicas"] == 2
    assert {p["name"] for p in container["ports"]} == {"metrics", "health", "webhook"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # No ServiceMonitor unless asked for (it needs the Prometheus Operator's CRD).
    assert "ServiceMonitor" not in {o["kind"] for o in objs}
    with_monitor = render_chart(
        helm_bin,
        "vaultbridge",
        "vaultbridge-system",
        {"metrics": {"serviceMonitor": {"enabled": True}}},
    )
    monitor = next(o for o in with_monitor if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_helm_install_upgrade_uninstall(
    helm_bin: str,
    helm_env: dict[str, str],
    devenv: DevState,
    kube_admin: KubeAdmin,
    namespace: str,
    crds_installed: None,
) -> None:
    release = f"r-{namespace}"
    connection = (
        f"defaultVaultConnection.enabled=true,defaultVaultConnection.address={devenv.vault_addr}"
    )
    only_here = r"webhook.namespaceSelector.matchLabels.kubernetes\.io/metadata\.name"
    values = [
        "--set", connection,
        "--set", "defaultAuth.enabled=true,defaultAuth.kubernetes.role=app",
        "--set", "workers=4",
        # The webhook configuration is cluster-wide and nothing serves it here: keep it to
        # this namespace so no other test's writes are refused meanwhile.
        "--set", f"{only_here}={namespace}",
    ]  # fmt: skip
    done = run_helm(helm_bin, helm_env, "install", release, str(CHART), "-n", namespace, *values)
    assert done.returncode == 0, done.stderr
    try:
        fullname = f"{release}-vaultbridge"
        for path in (
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{fullname}",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname}",
            f"/api/v1/namespaces/{namespace}/services/{fullname}-metrics",
            f"/api/v1/namespaces/{namespace}/services/{fullname}-webhook",
            f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{fullname}-path-policy",
            f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{fullname}",
            f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{fullname}",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{fullname}-leader-election",
            f"/apis/vaultbridge.dev/v1beta1/namespaces/{namespace}/vaultconnections/default",
            f"/apis/vaultbridge.dev/v1beta1/namespaces/{namespace}/vaultauths/default",
        ):
            status, obj = kube_admin.request("GET", path)
            assert status == 200, f"{path}: {dump(obj)}"

        # The operator's caBundle (set here as admin, as the operator would) survives upgrades:
        # the chart never sets the field, so Helm's three-way merge leaves it alone.
        config_path = (
            f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
            f"{fullname}-path-policy"
        )
        _, config = kube_admin.request("GET", config_path)
        config["webhooks"][0]["clientConfig"]["caBundle"] = "Y2E="
        status, resp = kube_admin.request("PUT", config_path, config)
        assert status == 200, dump(resp)

        done = run_helm(
            helm_bin, helm_env, "upgrade", release, str(CHART), "-n", namespace, "--reuse-values",
            "--set", "workers=6",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        _, config = kube_admin.request("GET", config_path)
        assert config["webhooks"][0]["clientConfig"].get("caBundle") == "Y2E=", dump(config)
        _, deploy = kube_admin.request(
            "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname}"
        )
        assert "--workers=6" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    finally:
        done = run_helm(helm_bin, helm_env, "uninstall", release, "-n", namespace, "--wait")
    assert done.returncode == 0, done.stderr
    status, _ = kube_admin.request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-vaultbridge"
    )
    assert status == 404


def _load_render_module() -> Any:
    spec = importlib.util.spec_from_file_location("kustomize_render", KUSTOMIZE / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kustomize_base_is_the_chart_and_applies(
    helm_bin: str,
    devenv: DevState,
    kube_admin: KubeAdmin,
    namespace: str,
) -> None:
    render = _load_render_module()
    committed = (KUSTOMIZE / "base" / "vaultbridge.yaml").read_text()
    assert committed == render.render(helm_bin), (
        "deploy/kustomize/base is stale: run `python deploy/kustomize/render.py`"
    )

    # An overlay puts the base into this test's namespace under unique names.
    kubectl = str(Path(devenv.bin_dir) / "kubectl")
    with tempfile.TemporaryDirectory(dir=KUSTOMIZE) as overlay:
        base = os.path.relpath(KUSTOMIZE / "base", overlay)
        Path(overlay, "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "namespace": namespace,
                    "namePrefix": f"{namespace}-",
                    "resources": [base],
                }
            )
        )
        built = subprocess.run(
            [kubectl, "kustomize", overlay], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    objs = [o for o in yaml.safe_load_all(built) if o and o["kind"] != "Namespace"]
    chart = {
        (o["kind"], o["metadata"]["name"]): o
        for o in render_chart(helm_bin, "vaultbridge", "vaultbridge-system", {})
    }
    assert {(o["kind"], o["metadata"]["name"].removeprefix(f"{namespace}-")) for o in objs} == set(
        chart
    )
    try:
        for obj in objs:
            if obj["kind"] == "ValidatingWebhookConfiguration":
                # The path-policy webhook and the VaultConnection address webhook.
                assert len(obj["webhooks"]) == 2
                for webhook in obj["webhooks"]:
                    # kustomize points the configuration at the renamed Service.
                    assert webhook["clientConfig"]["service"] == {
                        "namespace": namespace,
                        "name": f"{namespace}-vaultbridge-webhook",
                        "port": 443,
                        "path": "/validate",
                    }
                    # Cluster-wide and served by nobody here: confine it to this namespace.
                    webhook["namespaceSelector"] = {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    }
            if obj["kind"] == "MutatingWebhookConfiguration":
                # Inject mode (pods only); served by nobody here either: confine it too.
                (webhook,) = obj["webhooks"]
                assert webhook["clientConfig"]["service"]["name"] == (
                    f"{namespace}-vaultbridge-webhook"
                )
                webhook["namespaceSelector"] = {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace}
                }
            apply(kube_admin, obj)
            if obj["kind"] in ("ClusterRole", "Role"):
                original = chart[
                    (obj["kind"], obj["metadata"]["name"].removeprefix(f"{namespace}-"))
                ]
                assert obj["rules"] == original["rules"]
            if obj["kind"] == "ClusterRoleBinding":
                assert obj["subjects"][0]["namespace"] == namespace
                assert obj["roleRef"]["name"] == f"{namespace}-vaultbridge"
    finally:
        for obj in objs:
            if obj["kind"] in (
                "ClusterRole",
                "ClusterRoleBinding",
                "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration",
            ):
                kube_admin.request("DELETE", object_path(obj, True))
