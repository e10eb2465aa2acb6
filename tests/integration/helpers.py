"""Helpers shared by the integration modules: `App` (one test namespace with its Vault role
and VaultAuth, and readers of what the operator produced), `OwnApp` (the same for a test that
runs its own operator), `wait_for`, and a Deployment to watch for rollout restarts.

Kept out of the test modules so that a module's tests can be read, moved or deleted without
breaking a dozen others.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.persistence.token_store import (
    AUTH_LABEL,
    COMPONENT_LABEL,
    COMPONENT_VALUE,
    auth_label_value,
)

from .operator_harness import (
    OPERATOR_NAMESPACE,
    TEST_OPERATOR_LABEL,
    OperatorProcess,
    VaultFixture,
    crd_path,
    dump,
    start_operator,
)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


class App:
    """One test's namespace: its Vault role, its VaultAuth and helpers to read results."""

    def __init__(self, devenv: DevState, admin: KubeAdmin, namespace: str) -> None:
        self.devenv = devenv
        self.admin = admin
        self.ns = namespace
        self.vault = VaultFixture(devenv, namespace)

    def setup_auth(
        self, paths: list[str] | None = None, name: str = "default", **spec: Any
    ) -> None:
        self.vault.allow_role(
            paths
            or [f"secret/data/{self.ns}/*", f"secret/metadata/{self.ns}/*", f"kv1/{self.ns}/*"]
        )
        body = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultAuth",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
                "method": "kubernetes",
                "kubernetes": {"role": self.vault.role, "serviceAccount": "default"},
                **spec,
            },
        }
        self.create("vaultauths", body)

    def create(
        self, plural: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        ns = namespace or self.ns
        body["metadata"]["namespace"] = ns
        status, resp = self.admin.request("POST", crd_path(plural, ns), body)
        assert status == 201, dump(resp)
        return resp

    def vss(self, name: str, dest: str | None = None, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultStaticSecret",
            "metadata": {"name": name},
            "spec": {
                "vaultAuthRef": "default",
                "destination": {"name": dest or name, "create": True},
                **spec,
            },
        }
        if "mount" in spec or "sources" not in spec:
            body["spec"].setdefault("mount", "secret")
            body["spec"].setdefault("type", "kv-v2")
            body["spec"].setdefault("path", f"{self.ns}/{name}")
        return self.create("vaultstaticsecrets", body)

    def patch_vss(self, name: str, patch: dict[str, Any]) -> None:
        status, resp = self.admin.request_patch(
            crd_path("vaultstaticsecrets", self.ns, name), patch
        )
        assert status == 200, dump(resp)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        status, obj = self.admin.request("GET", crd_path(plural, self.ns, name))
        return obj if status == 200 else None

    def secret(self, name: str) -> dict[str, Any] | None:
        status, obj = self.admin.request("GET", f"/api/v1/namespaces/{self.ns}/secrets/{name}")
        return obj if status == 200 else None

    def secret_data(self, name: str) -> dict[str, str] | None:
        obj = self.secret(name)
        if obj is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}

    def wait_data(self, name: str, expected: dict[str, str], timeout: float = 30) -> dict[str, str]:
        def matches() -> dict[str, str] | None:
            data = self.secret_data(name)
            if data is not None and all(data.get(k) == v for k, v in expected.items()):
                return data
            return None

        try:
            return wait_for(matches, timeout, f"Secret {name} to hold {sorted(expected)}")  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(
                f"Secret {name} = {self.secret_data(name)!r}; VSS status: "
                f"{dump((self.get('vaultstaticsecrets', name) or {}).get('status'))}"
            ) from None

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(plural, name) or {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return None

    def wait_condition(
        self,
        name: str,
        type_: str,
        status: str,
        reason: str | None = None,
        timeout: float = 30,
        plural: str = "vaultstaticsecrets",
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cond = self.condition(plural, name, type_)
            if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
                return cond
            return None

        try:
            return wait_for(check, timeout, f"{name} {type_}={status} {reason or ''}")  # type: ignore[no-any-return]
        except AssertionError:
            raise AssertionError(
                f"{plural}/{name} status: {dump((self.get(plural, name) or {}).get('status'))}"
            ) from None

    def events(self, name: str) -> list[dict[str, Any]]:
        _, resp = self.admin.request("GET", f"/api/v1/namespaces/{self.ns}/events")
        return [e for e in resp.get("items", []) if e["involvedObject"].get("name") == name]

    def wait_event(self, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(  # type: ignore[no-any-return]
            lambda: next((e for e in self.events(name) if e["reason"] == reason), None),
            timeout,
            f"event {reason} on {name}",
        )


class OwnApp(App):
    """An App whose objects carry this test's operator label and use its own connection."""

    def __init__(self, devenv: DevState, admin: KubeAdmin, namespace: str) -> None:
        super().__init__(devenv, admin, namespace)
        self.ident = f"persist-{secrets.token_hex(3)}"

    def create(
        self, plural: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        body["metadata"].setdefault("labels", {})[TEST_OPERATOR_LABEL] = self.ident
        return super().create(plural, body, namespace)

    def setup_own_auth(self, paths: list[str] | None = None, **spec: Any) -> None:
        self.create(
            "vaultconnections",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultConnection",
                "metadata": {"name": "vault"},
                "spec": {"address": self.devenv.vault_addr, "timeout": "5s"},
            },
        )
        self.setup_auth(paths, vaultConnectionRef="vault", **spec)

    def operator(self) -> OperatorProcess:
        return start_operator(
            self.devenv, "--resource-selector", f"{TEST_OPERATOR_LABEL}={self.ident}"
        )

    # -- the persisted entries ------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        auth = auth_label_value(self.ns, "default")
        selector = f"{COMPONENT_LABEL}={COMPONENT_VALUE},{AUTH_LABEL}={auth}"
        _, listed = self.admin.request(
            "GET", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets?labelSelector={selector}"
        )
        return list(listed.get("items") or [])

    def wait_entry(self, what: str = "a persisted token", timeout: float = 30) -> dict[str, Any]:
        found: list[dict[str, Any]] = wait_for(self.entries, timeout, what)
        assert len(found) == 1, dump(found)
        return found[0]


def deployment(app: App, name: str) -> None:
    """A Deployment `name` (no replicas: no kubelet runs pods here) for rollout restarts."""
    status, resp = app.admin.request(
        "POST",
        f"/apis/apps/v1/namespaces/{app.ns}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "x.invalid/x"}]},
                },
            },
        },
    )
    assert status == 201, dump(resp)


def restarted_at(app: App, name: str) -> str | None:
    """The rollout-restart annotation the operator put on Deployment `name`, if any."""
    _, dep = app.admin.request("GET", f"/apis/apps/v1/namespaces/{app.ns}/deployments/{name}")
    annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
    value = annotations.get("vaultbridge.dev/restartedAt")
    return str(value) if value else None


def _request_patch(self: KubeAdmin, path: str, patch: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        self.server + path, data=json.dumps(patch).encode(), method="PATCH"
    )
    req.add_header("Content-Type", "application/merge-patch+json")
    try:
        with urllib.request.urlopen(req, context=self._ctx, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    del ssl


KubeAdmin.request_patch = _request_patch  # type: ignore[attr-defined]
