"""VaultAuthGlobal against the real API server, OpenBao and the operator process.

Precedence and tenancy, end to end: a VaultAuth that names a global in another namespace is
refused until the global's allowedNamespaces lists it; the merged spec is what logs in (the
global's role, unless the VaultAuth sets its own); a change of the global requeues its
VaultAuths and their secret objects (no poll: the refusal is not retried by itself) and makes
a new login (the global is part of the client-cache key); a deleted global is reported.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App, wait_for
from .operator_harness import OPERATOR_NAMESPACE, crd_path, dump

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(devenv: DevState, kube_admin: KubeAdmin, app: App) -> Iterator[App]:
    """The namespace holding the shared VaultAuthGlobal (the platform team's)."""
    name = f"{app.ns}-g{secrets.token_hex(2)}"
    kube_admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    yield App(devenv, kube_admin, name)
    kube_admin.request("DELETE", f"/api/v1/namespaces/{name}")


def _global(role: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultAuthGlobal",
        "metadata": {"name": "shared"},
        "spec": {
            "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
            "defaultAuthMethod": "kubernetes",
            "kubernetes": {"role": role, "serviceAccount": "default", "audiences": ["vault"]},
            **spec,
        },
    }


def _auth(name: str, ref: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultAuth",
        "metadata": {"name": name},
        "spec": {"vaultAuthGlobalRef": ref, **spec},
    }


def _patch(app: App, plural: str, name: str, patch: dict[str, Any]) -> None:
    status, resp = app.admin.request_patch(  # type: ignore[attr-defined]
        crd_path(plural, app.ns, name), patch
    )
    assert status == 200, dump(resp)


def test_global_precedence_tenancy_and_changes(app: App, platform: App) -> None:
    platform.create("vaultauthglobals", _global(app.vault.role))
    glob = wait_for(
        lambda: (platform.get("vaultauthglobals", "shared") or {}).get("status"),
        30,
        "VaultAuthGlobal status",
    )
    assert glob["valid"] is True, glob

    # Only method-less, role-less: everything else comes from the global.
    ref = {"name": "shared", "namespace": platform.ns}
    app.create("vaultauths", _auth("via-global", ref))
    app.vault.kv_put(f"{app.ns}/g", {"k": "v1"})
    app.vss("g", vaultAuthRef="via-global")

    # Tenancy: the global's allowedNamespaces is empty, so only its own namespace may use it.
    cond = app.wait_condition(
        "via-global", "Ready", "False", "VaultAuthGlobalNamespaceNotAllowed", plural="vaultauths"
    )
    assert platform.ns in cond["message"] and app.ns in cond["message"]
    app.wait_condition("g", "SecretSynced", "False", "VaultAuthGlobalNamespaceNotAllowed")
    assert app.secret("g") is None

    # The global allows A: the watch brings back the VaultAuth and the secret object (the
    # refusal is final, so nothing else would retry it).
    _patch(platform, "vaultauthglobals", "shared", {"spec": {"allowedNamespaces": [app.ns]}})
    cond = app.wait_condition(
        "via-global", "Ready", "True", "LoginSucceeded", plural="vaultauths", timeout=60
    )
    assert f"VaultAuthGlobal {platform.ns}/shared" in cond["message"]
    app.wait_data("g", {"k": "v1"}, timeout=60)

    # The VaultAuth's own field wins over the global's.
    _patch(app, "vaultauths", "via-global", {"spec": {"kubernetes": {"role": "no-such-role"}}})
    app.wait_condition(
        "via-global", "Ready", "False", "VaultLoginFailed", plural="vaultauths", timeout=60
    )
    _patch(app, "vaultauths", "via-global", {"spec": {"kubernetes": None}})
    app.wait_condition(
        "via-global", "Ready", "True", "LoginSucceeded", plural="vaultauths", timeout=60
    )

    # A change of the global alone (the VaultAuth's generation stays) makes a new login: with a
    # role Vault does not know, it fails, so the cached token of the old merge was not reused.
    generation = app.get("vaultauths", "via-global")["metadata"]["generation"]  # type: ignore[index]
    _patch(
        platform,
        "vaultauthglobals",
        "shared",
        {"spec": {"kubernetes": {"role": "ghost-role"}}},
    )
    app.wait_condition(
        "via-global", "Ready", "False", "VaultLoginFailed", plural="vaultauths", timeout=60
    )
    assert app.get("vaultauths", "via-global")["metadata"]["generation"] == generation  # type: ignore[index]

    # Deleting the global is reported by its VaultAuths.
    platform.admin.request("DELETE", crd_path("vaultauthglobals", platform.ns, "shared"))
    cond = app.wait_condition(
        "via-global", "Ready", "False", "VaultAuthGlobalNotFound", plural="vaultauths", timeout=60
    )
    assert f"{platform.ns}/shared" in cond["message"]


def test_admission_requires_a_complete_vaultauth_only_without_a_global(app: App) -> None:
    def dry_run(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body["metadata"]["namespace"] = app.ns
        return app.admin.request(  # type: ignore[no-any-return]
            "POST", crd_path("vaultauths", app.ns) + "?dryRun=All", body
        )

    partial = {"kubernetes": {"serviceAccount": "default"}}
    status, resp = dry_run(_auth("partial", {"name": "shared"}, **partial))
    assert status == 201, dump(resp)

    no_global: dict[str, Any] = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultAuth",
        "metadata": {"name": "incomplete"},
        "spec": {"method": "kubernetes", **partial},
    }
    status, resp = dry_run(no_global)
    assert status == 422, dump(resp)
    assert "kubernetes needs role and serviceAccount" in resp["message"]

    no_method: dict[str, Any] = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultAuth",
        "metadata": {"name": "no-method"},
        "spec": {"kubernetes": {"role": "r", "serviceAccount": "default"}},
    }
    status, resp = dry_run(no_method)
    assert status == 422, dump(resp)
    assert "method is required unless vaultAuthGlobalRef is set" in resp["message"]

    status, resp = dry_run(_auth("no-name", {"allowDefault": False}))
    assert status == 422, dump(resp)
    assert "name is required unless allowDefault is true" in resp["message"]


def test_allow_default_finds_the_default_global_of_the_vaultauth_namespace(app: App) -> None:
    """`allowDefault` without a name: the global named `default` in the VaultAuth's own
    namespace (always allowed there); the VaultAuth's `headers` combine with the global's per
    mergeStrategy (union), and the login with the merged spec succeeds."""
    body = _global(app.vault.role, headers={"X-Global": "g"})
    body["metadata"]["name"] = "default"
    app.create("vaultauthglobals", body)
    app.create(
        "vaultauths",
        _auth(
            "by-default",
            {"allowDefault": True, "mergeStrategy": {"headers": "union"}},
            headers={"X-Local": "l"},
        ),
    )
    cond = app.wait_condition(
        "by-default", "Ready", "True", "LoginSucceeded", plural="vaultauths", timeout=60
    )
    assert f"VaultAuthGlobal {app.ns}/default" in cond["message"]
    app.vault.kv_put(f"{app.ns}/d", {"k": "d"})
    app.vss("d", vaultAuthRef="by-default")
    app.wait_data("d", {"k": "d"}, timeout=60)
