"""Inject mode, operator side: `InjectOperator` (an operator of its own serving both webhooks,
the `inject_op` fixture in conftest.py) and `Ns` (one test namespace with a labelled
VaultConnection and VaultAuth, the `space` fixture). Used by test_inject_webhook.py and
test_inject_agent.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import wait_for
from .operator_harness import TEST_OPERATOR_LABEL, OperatorProcess, crd_path, dump

AGENT_IMAGE = "example.test/vaultbridge-agent:test"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


@dataclass
class InjectOperator:
    op: OperatorProcess
    ident: str
    validating: str
    mutating: str

    @property
    def label(self) -> dict[str, str]:
        return {TEST_OPERATOR_LABEL: self.ident}


class Ns:
    """One test namespace with a labelled VaultConnection and VaultAuth of its own."""

    def __init__(self, devenv: DevState, admin: KubeAdmin, ns: str, io: InjectOperator) -> None:
        self.devenv, self.admin, self.ns, self.io = devenv, admin, ns, io
        self.create(
            "vaultconnections",
            "conn",
            {"address": devenv.vault_addr, "timeout": "5s"},
        )
        self.create(
            "vaultauths",
            "auth",
            {
                "vaultConnectionRef": "conn",
                "method": "kubernetes",
                "kubernetes": {"role": f"role-{ns}", "serviceAccount": "default"},
            },
        )

    def create(self, plural: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        kind = {
            "vaultconnections": "VaultConnection",
            "vaultauths": "VaultAuth",
            "vaultstaticsecrets": "VaultStaticSecret",
        }[plural]
        body = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": kind,
            "metadata": {"name": name, "namespace": self.ns, "labels": self.io.label},
            "spec": spec,
        }
        status, resp = self.admin.request("POST", crd_path(plural, self.ns), body)
        assert status == 201, dump(resp)
        return resp

    def vss(self, name: str, path: str, **spec: Any) -> None:
        self.create(
            "vaultstaticsecrets",
            name,
            {"vaultAuthRef": "auth", "mount": "secret", "type": "kv-v2", "path": path, **spec},
        )

    def get(self, name: str) -> dict[str, Any]:
        status, obj = self.admin.request("GET", crd_path("vaultstaticsecrets", self.ns, name))
        assert status == 200, dump(obj)
        return obj

    def ready(self, name: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(name)
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if cond["type"] == "Ready" and cond["status"] == "True":
                    return obj
            return None

        return wait_for(check, 60, f"{name} Ready")  # type: ignore[no-any-return]

    def injected_pods(self, name: str, count: int) -> None:
        wait_for(
            lambda: (self.get(name).get("status") or {}).get("injectedPods") == count,
            60,
            f"{name} status.injectedPods == {count} (now {self.get(name).get('status')})",
        )

    def pods(self, selector: str) -> list[dict[str, Any]]:
        _, resp = self.admin.request(
            "GET", f"/api/v1/namespaces/{self.ns}/pods?labelSelector={selector}"
        )
        return list(resp.get("items") or [])

    def create_pod(
        self, name: str, annotations: dict[str, str], labels: dict[str, str], **spec: Any
    ) -> tuple[int, dict[str, Any]]:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
        }
        return self.admin.request("POST", f"/api/v1/namespaces/{self.ns}/pods", body)

    def secrets(self) -> list[str]:
        _, resp = self.admin.request("GET", f"/api/v1/namespaces/{self.ns}/secrets")
        return [s["metadata"]["name"] for s in resp.get("items") or []]


OPT_IN = {"vaultbridge.dev/inject": "true"}
