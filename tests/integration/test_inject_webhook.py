"""Inject mode, operator side, against the real API server and kube-controller-manager: the
operator (`vaultbridge run`, its own process) registers both webhook configurations itself
(`--webhook-register-url`), the ReplicaSet controller's pods arrive mutated, forbidden pods are
refused at admission with the reason, no Secret is written, `status.injectedPods` counts the
pods, and with the operator down only opted-in pods are refused.

The agent itself (`vaultbridge agent`) is another module's; here the config the pods carry is
parsed with the contract's own model.
"""

from __future__ import annotations

from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.inject.config import AgentConfig
from vaultbridge.inject.pod import INIT_CONTAINER, SIDECAR_CONTAINER

from .helpers import wait_for
from .inject_support import AGENT_IMAGE, OPT_IN, InjectOperator, Ns
from .operator_harness import (
    GROUP_PATH,
    VaultFixture,
    crd_path,
    dump,
)

pytestmark = pytest.mark.integration

POLICIES = f"{GROUP_PATH}/vaultpathpolicies"


def test_deployment_pods_arrive_mutated_and_are_counted(space: Ns, devenv: DevState) -> None:
    space.vss("db", f"{space.ns}/db", delivery="inject")
    obj = space.ready("db")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InjectReady", ready
    assert obj["status"]["injectedPods"] == 0

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web", **OPT_IN},
                    "annotations": {
                        "vaultbridge.dev/inject": "db",
                        "vaultbridge.dev/inject-template.db": "PASSWORD={{ password }}",
                        "vaultbridge.dev/inject-file.db": "db.env",
                        "vaultbridge.dev/inject-role": "web-role",
                    },
                },
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
        },
    }
    status, resp = space.admin.request(
        "POST", f"/apis/apps/v1/namespaces/{space.ns}/deployments", deployment
    )
    assert status == 201, dump(resp)

    def two_pods() -> list[dict[str, Any]] | None:
        found = space.pods("app=web")
        return found if len(found) == 2 else None

    pods = wait_for(two_pods, 90, "two pods from the ReplicaSet controller")
    for pod in pods:
        spec = pod["spec"]
        assert pod["metadata"]["labels"]["vaultbridge.dev/injected"] == "true"
        assert pod["metadata"]["annotations"]["vaultbridge.dev/injected-objects"] == (
            "VaultStaticSecret/db"
        )
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["vaultbridge-secrets"]["emptyDir"]["medium"] == "Memory"
        token = volumes["vaultbridge-token"]["projected"]["sources"][0]["serviceAccountToken"]
        assert token["audience"] == "vault"
        init, sidecar = spec["initContainers"][:2]
        assert (init["name"], sidecar["name"]) == (INIT_CONTAINER, SIDECAR_CONTAINER)
        assert init["args"] == ["agent", "--once"] and init["image"] == AGENT_IMAGE
        assert sidecar["restartPolicy"] == "Always"  # a native sidecar, kept by the API server
        app_mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert app_mounts["vaultbridge-secrets"]["mountPath"] == "/vault/secrets"
        assert "vaultbridge-token" not in app_mounts  # the token is for the agents only
        config = AgentConfig.from_env(
            next(e["value"] for e in init["env"] if e["name"] == "VAULTBRIDGE_AGENT_CONFIG")
        )
        (db,) = config.objects
        assert config.namespace == space.ns
        assert db.vault.address == devenv.vault_addr.rstrip("/")
        assert (db.login.method, db.login.role) == ("kubernetes", "web-role")
        assert db.file.directory == "/vault/secrets/db" and db.file.filename == "db.env"
        assert db.spec["path"] == f"{space.ns}/db"
    space.injected_pods("db", 2)
    # No Secret for an inject object, ever (the namespace's own token Secrets aside).
    assert "db" not in space.secrets()

    status, resp = space.admin.request_patch(  # type: ignore[attr-defined]
        f"/apis/apps/v1/namespaces/{space.ns}/deployments/web", {"spec": {"replicas": 1}}
    )
    assert status == 200, dump(resp)
    space.injected_pods("db", 1)


def test_forbidden_pods_are_refused_at_admission(space: Ns, kube_admin: KubeAdmin) -> None:
    space.vss("db", f"{space.ns}/db", delivery="inject")
    space.vss("synced", f"{space.ns}/synced", destination={"name": "synced", "create": True})
    space.vss("outside", "elsewhere/db", delivery="inject")
    policy = f"inject-{space.ns}"
    status, resp = kube_admin.request(
        "POST",
        POLICIES,
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultPathPolicy",
            "metadata": {"name": policy},
            "spec": {"namespaces": [space.ns], "allow": ["secret/data/{namespace}/*"]},
        },
    )
    assert status == 201, dump(resp)
    try:
        space.ready("db")
        cases = [
            ({"vaultbridge.dev/inject": f"other-{space.ns}/db"}, {}, "own namespace"),
            ({"vaultbridge.dev/inject": "synced"}, {}, "delivery secret"),
            ({"vaultbridge.dev/inject": "missing"}, {}, "no VaultStaticSecret"),
            (
                {
                    "vaultbridge.dev/inject": "db",
                    "vaultbridge.dev/inject-signal": "SIGHUP",
                    "vaultbridge.dev/inject-signal-process": "app",
                },
                {},
                "shareProcessNamespace",
            ),
        ]
        for i, (annotations, spec, words) in enumerate(cases):
            status, resp = space.create_pod(f"bad-{i}", annotations, OPT_IN, **spec)
            assert status == 403, dump(resp)
            assert words in resp["message"], resp["message"]

        # The policy reaches the operator's cache within moments: the verdict is the reconcile's.
        def refused_by_policy() -> str | None:
            status, resp = space.create_pod(
                "bad-policy", {"vaultbridge.dev/inject": "outside"}, OPT_IN
            )
            if status == 201:
                space.admin.request("DELETE", f"/api/v1/namespaces/{space.ns}/pods/bad-policy")
                return None
            assert status == 403, dump(resp)
            return str(resp["message"])

        message = wait_for(refused_by_policy, 60, "pod refused by the path policy")
        assert "secret/data/elsewhere/db" in message and policy in message
        assert space.pods("vaultbridge.dev/injected=true") == []
        # The same verdict in the reconcile: the object is not Ready.
        wait_for(
            lambda: any(
                c["type"] == "Ready" and c["reason"] == "PathNotAllowed"
                for c in (space.get("outside").get("status") or {}).get("conditions") or []
            ),
            60,
            "outside refused by the reconcile too",
        )
    finally:
        kube_admin.request("DELETE", f"{POLICIES}/{policy}")


def test_operator_down_refuses_only_opted_in_pods(space: Ns, inject_op: InjectOperator) -> None:
    space.vss("db", f"{space.ns}/db", delivery="inject")
    space.ready("db")
    inject_op.op.stop()
    try:
        # failurePolicy Fail: a pod that asked for secrets does not start without them.
        status, resp = space.create_pod("wants", {"vaultbridge.dev/inject": "db"}, OPT_IN)
        assert status >= 400 and status != 403, dump(resp)  # the API server's call failed
        assert "pods.inject.vaultbridge.dev" in resp["message"], resp["message"]
        # Every other pod is never sent to the webhook (objectSelector): created as is.
        status, resp = space.create_pod("plain", {}, {"app": "plain"})
        assert status == 201, dump(resp)
        # The annotation without the label: not sent either, and so not mutated (documented).
        status, resp = space.create_pod("unlabelled", {"vaultbridge.dev/inject": "db"}, {})
        assert status == 201, dump(resp)
        assert not resp["spec"].get("initContainers")
    finally:
        inject_op.op.start()
    status, resp = space.create_pod("wants", {"vaultbridge.dev/inject": "db"}, OPT_IN)
    assert status == 201, dump(resp)
    assert [c["name"] for c in resp["spec"]["initContainers"]] == [
        INIT_CONTAINER,
        SIDECAR_CONTAINER,
    ]


def test_moving_to_inject_deletes_the_synced_secret(space: Ns, devenv: DevState) -> None:
    vault = VaultFixture(devenv, space.ns)
    vault.allow_role([f"secret/data/{space.ns}/*"])
    vault.kv_put(f"{space.ns}/db", {"password": "canary-3f9a"})
    space.vss("db", f"{space.ns}/db", destination={"name": "db", "create": True})
    wait_for(lambda: "db" in space.secrets(), 60, "the synced Secret db")
    path = crd_path("vaultstaticsecrets", space.ns, "db")

    # Secret delivery without a destination name: refused by the API server (CEL).
    status, resp = space.admin.request(
        "POST",
        crd_path("vaultstaticsecrets", space.ns) + "?dryRun=All",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultStaticSecret",
            "metadata": {"name": "nameless"},
            "spec": {"mount": "secret", "type": "kv-v2", "path": "x"},
        },
    )
    assert status == 422, dump(resp)
    assert "destination.name is required when delivery is secret" in resp["message"]

    # The API server refuses inject with Secret-only fields (CEL), naming them.
    status, resp = space.admin.request_patch(path, {"spec": {"delivery": "inject"}})  # type: ignore[attr-defined]
    assert status == 422, dump(resp)
    assert "with delivery inject no Secret is written" in resp["message"]

    status, resp = space.admin.request_patch(  # type: ignore[attr-defined]
        path, {"spec": {"delivery": "inject", "destination": None}}
    )
    assert status == 200, dump(resp)
    # Its data leaves etcd: the operator deletes the Secret it owned.
    wait_for(lambda: "db" not in space.secrets(), 60, "the Secret deleted after moving to inject")

    def inject_ready() -> dict[str, Any] | None:
        obj = space.get("db")
        conditions = (obj.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Ready" and c["reason"] == "InjectReady" for c in conditions)
        return obj if ok else None

    obj = wait_for(inject_ready, 60, "db Ready with reason InjectReady")
    assert "secretMAC" not in obj["status"] and obj["status"]["injectedPods"] == 0
