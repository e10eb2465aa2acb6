"""rolloutRestartTargets of kind argo.Rollout, against the real API server and operator.

Argo Rollouts itself is not installed: the test writes a minimal Rollout CRD (group
argoproj.io, version v1alpha1, a `spec.restartAt` field) into the dev API server, which is all
the operator talks to. Without that CRD the restart is reported (RolloutRestartFailed naming
the missing CRD) and the sync still succeeds; with it, a change of the Vault data sets
`spec.restartAt` on the Rollout, as Argo's own restart does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App, wait_for
from .operator_harness import dump

pytestmark = pytest.mark.integration

CRD_NAME = "rollouts.argoproj.io"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

ROLLOUT_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": "argoproj.io",
        "scope": "Namespaced",
        "names": {"plural": "rollouts", "singular": "rollout", "kind": "Rollout"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "restartAt": {"type": "string", "format": "date-time"},
                                    "replicas": {"type": "integer"},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _crd_absent(admin: KubeAdmin) -> None:
    admin.request("DELETE", f"{CRD_PATH}/{CRD_NAME}")
    wait_for(
        lambda: admin.request("GET", f"{CRD_PATH}/{CRD_NAME}")[0] == 404,
        60,
        "Rollout CRD deleted",
    )


@pytest.fixture
def no_rollout_crd(kube_admin: KubeAdmin) -> Iterator[None]:
    _crd_absent(kube_admin)
    yield
    _crd_absent(kube_admin)


def test_argo_rollout_restart_with_and_without_the_crd(app: App, no_rollout_crd: None) -> None:
    rollout_path = f"/apis/argoproj.io/v1alpha1/namespaces/{app.ns}/rollouts/web"
    app.vault.kv_put(f"{app.ns}/argo", {"k": "v1"})
    app.vss(
        "argo",
        refreshAfter="2s",
        rolloutRestartTargets=[{"kind": "argo.Rollout", "name": "web"}],
    )
    app.wait_data("argo", {"k": "v1"})

    # No Rollout CRD: a clear event, the sync itself is fine.
    app.vault.kv_put(f"{app.ns}/argo", {"k": "v2"})
    app.wait_data("argo", {"k": "v2"}, timeout=60)
    event = app.wait_event("argo", "RolloutRestartFailed", timeout=60)
    assert "no Argo Rollouts CRD" in event["message"], event["message"]
    assert f"argo.Rollout {app.ns}/web" in event["message"]
    app.wait_condition("argo", "SecretSynced", "True")

    # Install the CRD and a Rollout: the next change sets spec.restartAt.
    status, resp = app.admin.request("POST", CRD_PATH, ROLLOUT_CRD)
    assert status == 201, dump(resp)
    rollouts = f"/apis/argoproj.io/v1alpha1/namespaces/{app.ns}/rollouts"
    wait_for(lambda: app.admin.request("GET", rollouts)[0] == 200, 60, "Rollout CRD served")
    status, resp = app.admin.request(
        "POST",
        rollouts,
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": app.ns},
            "spec": {"replicas": 1},
        },
    )
    assert status == 201, dump(resp)

    def restart_at() -> str | None:
        status, obj = app.admin.request("GET", rollout_path)
        return (obj.get("spec") or {}).get("restartAt") if status == 200 else None

    assert restart_at() is None
    app.vault.kv_put(f"{app.ns}/argo", {"k": "v3"})
    app.wait_data("argo", {"k": "v3"}, timeout=60)
    stamp = wait_for(restart_at, 60, "spec.restartAt on the Rollout")
    assert stamp.endswith("Z") and "T" in stamp, stamp
    triggered = app.wait_event("argo", "RolloutRestartTriggered", timeout=30)
    assert f"argo.Rollout {app.ns}/web" in triggered["message"]
