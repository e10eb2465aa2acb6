"""Namespaces are tenants: what one namespace's objects can and cannot reach in another's.

- a VaultAuth of namespace A serves B only if A lists B in allowedNamespaces, and even then
  the login is made as B's own service account, so a Vault role bound to A refuses it (the
  real kubernetes auth method doing a real TokenReview);
- a service account, a token Secret or a destination Secret is always looked up in the
  consumer's own namespace: `namespace/name` spellings are refused at admission;
- a Secret the resource did not create (someone else's, or another resource's) is not
  taken over.
The first test in test_static_secret.py (`test_allowed_namespaces_refusal_reads_nothing`)
covers the plain refusal; these go further.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .operator_harness import OPERATOR_NAMESPACE, crd_path, dump
from .test_static_secret import App, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def other(devenv: DevState, kube_admin: KubeAdmin, app: App) -> Iterator[App]:
    """Namespace B: a second tenant next to the `app` fixture's namespace A."""
    name = f"{app.ns}-b{secrets.token_hex(2)}"
    kube_admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    wait_for(
        lambda: (
            kube_admin.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0]
            == 200
        ),
        30,
        "default ServiceAccount in B",
    )
    kube_admin.opt_in_vault_login(name)
    yield App(devenv, kube_admin, name)
    kube_admin.request("DELETE", f"/api/v1/namespaces/{name}")


def _vss_body(obj_name: str, auth_ref: str, path: str, **dest: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": obj_name},
        "spec": {
            "vaultAuthRef": auth_ref,
            "mount": "secret",
            "type": "kv-v2",
            "path": path,
            "destination": {"name": obj_name, "create": True, **dest},
        },
    }


def _dry_run(app: App, plural: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body["metadata"]["namespace"] = app.ns
    return app.admin.request("POST", crd_path(plural, app.ns) + "?dryRun=All", body)


def test_shared_vaultauth_logs_in_as_the_consumer_and_vault_enforces_its_role(
    app: App, other: App
) -> None:
    app.vault.kv_put(f"{app.ns}/shared", {"k": "a-only"})
    other.create("vaultstaticsecrets", _vss_body("take", f"{app.ns}/default", f"{app.ns}/shared"))
    cond = other.wait_condition("take", "SecretSynced", "False", "NamespaceNotAllowed")
    assert app.ns in cond["message"] and other.ns in cond["message"]

    # A now allows B: the operator logs in as B's service account, and A's Vault role, bound
    # to namespace A, refuses it after Vault's TokenReview of B's token.
    status, resp = app.admin.request_patch(  # type: ignore[attr-defined]
        crd_path("vaultauths", app.ns, "default"), {"spec": {"allowedNamespaces": [other.ns]}}
    )
    assert status == 200, dump(resp)
    cond = other.wait_condition("take", "SecretSynced", "False", "VaultLoginFailed", timeout=60)
    assert f"{other.ns}" in cond["message"] or "permission denied" in cond["message"], cond
    assert other.secret("take") is None

    # Vault's owner binds the role to B as well: only now does B get the data.
    app.vault.bao.must(
        "POST",
        f"auth/kubernetes/role/{app.vault.role}",
        {
            "bound_service_account_names": ["default"],
            "bound_service_account_namespaces": [app.ns, other.ns],
            "audience": "vault",
            "token_policies": [app.vault.role],
            "token_ttl": "1h",
        },
    )
    other.wait_data("take", {"k": "a-only"}, timeout=90)


def test_token_secret_is_read_from_the_consumer_namespace(app: App, other: App) -> None:
    # A keeps a Vault token in its namespace and shares its VaultAuth with B; B still cannot
    # use A's token: the Secret is looked up in B.
    app.vault.kv_put(f"{app.ns}/tok", {"k": "v"})
    token = app.vault.bao.must(
        "POST", "auth/token/create", {"policies": [app.vault.role], "ttl": "10m"}
    )["auth"]["client_token"]
    app.admin.request(
        "POST",
        f"/api/v1/namespaces/{app.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vault-token"},
            "data": {"token": base64.b64encode(token.encode()).decode()},
        },
    )
    app.create(
        "vaultauths",
        {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultAuth",
            "metadata": {"name": "by-token"},
            "spec": {
                "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
                "method": "token",
                "token": {"secretRef": "vault-token"},
                "allowedNamespaces": [other.ns],
            },
        },
    )
    app.vss("own-use", vaultAuthRef="by-token", path=f"{app.ns}/tok")
    app.wait_data("own-use", {"k": "v"})
    other.create("vaultstaticsecrets", _vss_body("borrow", f"{app.ns}/by-token", f"{app.ns}/tok"))
    cond = other.wait_condition("borrow", "SecretSynced", "False", "AuthSecretNotFound")
    assert f"{other.ns}/vault-token" in cond["message"]
    assert other.secret("borrow") is None


@pytest.mark.parametrize(
    ("plural", "body", "field"),
    [
        (
            "vaultauths",
            {
                "kind": "VaultAuth",
                "spec": {
                    "method": "kubernetes",
                    "kubernetes": {"role": "r", "serviceAccount": "kube-system/default"},
                },
            },
            "spec.kubernetes.serviceAccount",
        ),
        (
            "vaultauths",
            {
                "kind": "VaultAuth",
                "spec": {"method": "jwt", "jwt": {"role": "r", "secretRef": "kube-system/jwt"}},
            },
            "spec.jwt.secretRef",
        ),
        (
            "vaultauths",
            {"kind": "VaultAuth", "spec": {"method": "token", "token": {"secretRef": "a/b"}}},
            "spec.token.secretRef",
        ),
        (
            "vaultstaticsecrets",
            _vss_body("x", "default", "p", name="kube-system/stolen"),
            "spec.destination.name",
        ),
    ],
    ids=["serviceAccount", "jwt-secretRef", "token-secretRef", "destination-name"],
)
def test_namespace_slash_name_is_refused_where_only_own_namespace_is_meant(
    app: App, plural: str, body: dict[str, Any], field: str
) -> None:
    body = {"apiVersion": "vaultbridge.dev/v1beta1", "metadata": {"name": "x"}, **body}
    status, resp = _dry_run(app, plural, body)
    assert status == 422, dump(resp)
    assert any(c["field"] == field for c in resp["details"]["causes"]), dump(resp)


def test_destination_namespace_field_does_not_exist_secret_lands_in_own_namespace(
    app: App, other: App
) -> None:
    app.vault.kv_put(f"{app.ns}/here", {"k": "v"})
    body = _vss_body("here", "default", f"{app.ns}/here", namespace=other.ns)
    body["metadata"]["namespace"] = app.ns
    # Strict field validation names the unknown field ...
    status, resp = app.admin.request(
        "POST", crd_path("vaultstaticsecrets", app.ns) + "?fieldValidation=Strict", body
    )
    assert status in (400, 422) and "destination.namespace" in resp["message"], dump(resp)
    # ... and the default (warn and prune) drops it: the Secret lands in the object's namespace.
    app.create("vaultstaticsecrets", body)
    app.wait_data("here", {"k": "v"})
    assert "namespace" not in app.get("vaultstaticsecrets", "here")["spec"]["destination"]  # type: ignore[index]
    assert other.secret("here") is None


def test_secret_of_another_resource_is_not_taken_over(app: App) -> None:
    app.vault.kv_put(f"{app.ns}/first", {"k": "first"})
    app.vault.kv_put(f"{app.ns}/second", {"k": "second"})
    app.vss("first")
    app.wait_data("first", {"k": "first"})
    # Same destination, create: true, no overwrite: refused.
    app.vss("second", dest="first", path=f"{app.ns}/second")
    cond = app.wait_condition("second", "SecretSynced", "False", "DestinationConflict")
    assert "first" in cond["message"]
    # create: false on a Secret another resource owns: also refused (they would fight forever).
    app.vss(
        "third",
        destination={"name": "first", "create": False, "transformation": {"excludeRaw": True}},
        path=f"{app.ns}/second",
    )
    cond = app.wait_condition("third", "SecretSynced", "False", "DestinationConflict")
    assert "VaultStaticSecret first" in cond["message"], cond
    time.sleep(2)
    assert app.secret_data("first") == {"k": "first", "_raw": app.secret_data("first")["_raw"]}  # type: ignore[index]
    owners = app.secret("first")["metadata"]["ownerReferences"]  # type: ignore[index]
    assert [o["name"] for o in owners] == ["first"]
