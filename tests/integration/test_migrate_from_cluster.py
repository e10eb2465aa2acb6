"""`vaultbridge migrate --from-cluster` against the real API server.

VSO's CRDs are stood in for by schemaless CRDs of the `secrets.hashicorp.com` group, so the
objects are exactly as VSO users wrote them. A Secret is labelled and owned the way VSO leaves
its destination Secrets. The test then checks the conversion (report, exit code, output
accepted by the API server with our CRDs) and the adoption decision applied to the live Secret:
ownership moves with one metadata write guarded by resourceVersion, data bytes untouched.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaultbridge.api.labels import owner_labels
from vaultbridge.cli import main
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.kube import objects
from vaultbridge.migrate import vso
from vaultbridge.migrate.adopt import Adoption, decide_adoption
from vaultbridge.migrate.convert import ADOPT_ANNOTATION

from .helpers import App, wait_for
from .operator_harness import OPERATOR_NAMESPACE, crd_path, dump
from .pki_support import PKI

pytestmark = pytest.mark.integration

KINDS = (
    "VaultConnection",
    "VaultAuth",
    "VaultAuthGlobal",
    "VaultStaticSecret",
    "VaultDynamicSecret",
    "VaultPKISecret",
    "CSISecrets",
)
VSO_PATH = f"/apis/{vso.GROUP}/{vso.VERSION}"


def _vso_crd(kind: str) -> dict[str, Any]:
    plural = vso.PLURALS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{vso.GROUP}"},
        "spec": {
            "group": vso.GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": vso.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def vso_crds(kube_admin: KubeAdmin) -> Iterator[None]:
    crd_path_ = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for kind in KINDS:
        kube_admin.ensure(crd_path_, _vso_crd(kind))
    deadline = time.monotonic() + 30
    for kind in KINDS:
        while kube_admin.request("GET", f"{VSO_PATH}/{vso.PLURALS[kind]}")[0] != 200:
            assert time.monotonic() < deadline, f"CRD for {kind} not served"
            time.sleep(0.1)
    yield
    for kind in KINDS:
        kube_admin.request("DELETE", f"{crd_path_}/{vso.PLURALS[kind]}.{vso.GROUP}")


def _create_vso(admin: KubeAdmin, ns: str, kind: str, name: str, spec: dict[str, Any]) -> Any:
    body = {
        "apiVersion": vso.API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    status, obj = admin.request("POST", f"{VSO_PATH}/namespaces/{ns}/{vso.PLURALS[kind]}", body)
    assert status == 201, dump(obj)
    return obj


def _merge_patch(
    admin: KubeAdmin, path: str, patch: dict[str, Any], certs_ctx: ssl.SSLContext
) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        admin.server + path, data=json.dumps(patch).encode(), method="PATCH"
    )
    req.add_header("Content-Type", "application/merge-patch+json")
    try:
        with urllib.request.urlopen(req, context=certs_ctx, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _b64(v: bytes) -> str:
    return base64.b64encode(v).decode()


def test_from_cluster_convert_then_adopt_without_data_write(
    devenv: DevState,
    kube_admin: KubeAdmin,
    crds_installed: None,
    vso_crds: None,
    namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = namespace
    _create_vso(kube_admin, ns, "VaultConnection", "conn", {"address": "http://vault:8200"})
    _create_vso(
        kube_admin,
        ns,
        "VaultAuth",
        "auth",
        {
            "vaultConnectionRef": "conn",
            "method": "kubernetes",
            "mount": "kubernetes",
            "kubernetes": {"role": "app", "serviceAccount": "default"},
        },
    )
    vss = _create_vso(
        kube_admin,
        ns,
        "VaultStaticSecret",
        "app",
        {
            "vaultAuthRef": "auth",
            "mount": "secret",
            "path": f"{ns}/app",
            "type": "kv-v2",
            "refreshAfter": "30s",
            "hmacSecretData": True,
            "syncConfig": {"instantUpdates": True},
            "destination": {"name": "app-secret", "create": True},
        },
    )
    _create_vso(kube_admin, ns, "CSISecrets", "csi", {"secrets": {}})
    # The destination Secret as VSO leaves it.
    secret_body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "app-secret",
            "namespace": ns,
            "labels": {**vso.OWNER_LABELS, vso.LABEL_OWNER_UID: vss["metadata"]["uid"]},
            "ownerReferences": [
                {
                    "apiVersion": vso.API_VERSION,
                    "kind": "VaultStaticSecret",
                    "name": "app",
                    "uid": vss["metadata"]["uid"],
                }
            ],
        },
        "data": {"password": _b64(b"pw-1"), "user": _b64(b"app")},
    }
    status, secret = kube_admin.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret_body)
    assert status == 201, dump(secret)

    out_dir = tmp_path / "out"
    code = main(
        [
            "migrate",
            "--from-cluster",
            "--kubeconfig",
            str(devenv.kubeconfig),
            "-n",
            ns,
            "--out",
            str(out_dir),
            "--report-format",
            "json",
        ]
    )
    _, err = capsys.readouterr()
    report = json.loads(err)
    results = {(o["kind"], o["name"]): o for o in report["objects"]}
    assert code == 1  # the CSISecrets object cannot be converted
    assert results[("CSISecrets", "csi")]["result"] == "not convertible"
    assert results[("VaultConnection", "conn")]["result"] == "converted"
    assert results[("VaultAuth", "auth")]["result"] == "converted"
    # syncConfig.instantUpdates is the same field here (audit-stream driven): kept as is.
    assert results[("VaultStaticSecret", "app")]["result"] == "converted"
    assert results[("VaultStaticSecret", "app")]["source"] == (
        f"cluster:vaultstaticsecrets/{ns}/app"
    )

    files = sorted(out_dir.iterdir())
    assert [f.name for f in files] == [
        f"{ns}_vaultauth_auth.yaml",
        f"{ns}_vaultconnection_conn.yaml",
        f"{ns}_vaultstaticsecret_app.yaml",
    ]
    converted = {}
    for f in files:
        obj = yaml.safe_load(f.read_text())
        # The real API server, with our CRDs and their CEL rules, accepts every output.
        status, created = kube_admin.request("POST", crd_path(obj["kind"].lower() + "s", ns), obj)
        assert status == 201, dump(created)
        converted[obj["kind"]] = created
    vb_vss = converted["VaultStaticSecret"]
    assert vb_vss["metadata"]["annotations"][ADOPT_ANNOTATION] == f"vso/{vss['metadata']['uid']}"

    # Adoption: what the operator would do at its ownership check, against the live Secret.
    _, live = kube_admin.request("GET", f"/api/v1/namespaces/{ns}/secrets/app-secret")
    own_ref = objects.owner_reference(vb_vss)
    decision = decide_adoption(
        live,
        vb_vss,
        owner_reference=own_ref,
        desired_labels=owner_labels("VaultStaticSecret", "app"),
        desired_data={"password": b"pw-1", "user": b"app"},
    )
    assert isinstance(decision, Adoption), decision
    assert decision.data_matches and decision.restart is False

    ctx = kube_admin._ctx
    path = f"/api/v1/namespaces/{ns}/secrets/app-secret"
    # A stale resourceVersion is refused: the patch never overwrites a concurrent change.
    stale = json.loads(json.dumps(decision.patch))
    stale["metadata"]["resourceVersion"] = str(int(live["metadata"]["resourceVersion"]) - 1)
    status, _ = _merge_patch(kube_admin, path, stale, ctx)
    assert status == 409

    status, adopted = _merge_patch(kube_admin, path, decision.patch, ctx)
    assert status == 200, dump(adopted)
    assert adopted["data"] == live["data"]  # data bytes untouched
    assert adopted["metadata"]["ownerReferences"] == [own_ref]
    labels = adopted["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "vaultbridge"
    assert vso.LABEL_OWNER_UID not in labels and vso.LABEL_COMPONENT not in labels
    # Exactly one write (metadata): a second decision on the adopted Secret has nothing to do.
    assert (
        decide_adoption(
            adopted,
            vb_vss,
            owner_reference=own_ref,
            desired_labels=owner_labels("VaultStaticSecret", "app"),
            desired_data={"password": b"pw-1", "user": b"app"},
        )
        is None
    )


def test_from_cluster_unreachable_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code = main(["migrate", "--from-cluster", "--kubeconfig", str(kubeconfig)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "reading the cluster failed" in err
    assert "Traceback" not in err


def test_adoption_end_to_end_keeps_data_and_restarts_nothing(
    app: App,
    devenv: DevState,
    vso_crds: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """VSO object + its Secret → migrate → apply → the operator adopts the Secret in its
    reconcile without writing its data (--adopt-secrets then has nothing left to do); later
    Vault changes flow through vaultbridge."""
    ns, admin = app.ns, app.admin
    app.vault.kv_put(f"{ns}/app", {"user": "app", "password": "pw-1"})
    status, dep = admin.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x.invalid/x"}]},
                },
            },
        },
    )
    assert status == 201, dump(dep)
    vss = _create_vso(
        admin,
        ns,
        "VaultStaticSecret",
        "app",
        {
            "vaultAuthRef": "default",
            "mount": "secret",
            "path": f"{ns}/app",
            "type": "kv-v2",
            "refreshAfter": "2s",
            "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}],
            "destination": {
                "name": "app-secret",
                "create": True,
                "transformation": {"excludeRaw": True},
            },
        },
    )
    vso_uid = vss["metadata"]["uid"]
    status, secret = admin.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "app-secret",
                "labels": {**vso.OWNER_LABELS, vso.LABEL_OWNER_UID: vso_uid},
                "ownerReferences": [
                    {
                        "apiVersion": vso.API_VERSION,
                        "kind": "VaultStaticSecret",
                        "name": "app",
                        "uid": vso_uid,
                    }
                ],
            },
            "data": {"user": _b64(b"app"), "password": _b64(b"pw-1")},
        },
    )
    assert status == 201, dump(secret)

    out_dir = tmp_path / "vb"
    kubeconfig = str(devenv.kubeconfig)
    assert (
        main(
            [
                "migrate",
                "--from-cluster",
                "--kubeconfig",
                kubeconfig,
                "-n",
                ns,
                "--out",
                str(out_dir),
            ]
        )
        == 0
    )
    capsys.readouterr()
    (manifest,) = out_dir.iterdir()
    status, created = admin.request(
        "POST", crd_path("vaultstaticsecrets", ns), yaml.safe_load(manifest.read_text())
    )
    assert status == 201, dump(created)

    # The operator adopts the Secret itself (the converted object carries the adopt-from
    # annotation): one metadata patch, data untouched.
    def owned_by_vaultbridge() -> dict[str, Any] | None:
        current = app.secret("app-secret") or {}
        refs = (current.get("metadata") or {}).get("ownerReferences") or []
        return current if [r["uid"] for r in refs] == [created["metadata"]["uid"]] else None

    adopted = wait_for(owned_by_vaultbridge, 60, "the operator to adopt the VSO Secret")
    adopted_rv = adopted["metadata"]["resourceVersion"]
    assert adopted["data"] == secret["data"]
    labels = adopted["metadata"]["labels"]
    assert labels.get(vso.LABEL_MANAGED_BY) != vso.MANAGED_BY_VSO
    assert vso.LABEL_OWNER_UID not in labels
    app.wait_event("app", "SecretAdopted")
    app.wait_condition("app", "Ready", "True")
    time.sleep(5)  # a few refreshAfter periods: the operator must not write the Secret
    app.wait_condition("app", "Ready", "True")
    after = app.secret("app-secret")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == adopted_rv, "the operator rewrote the Secret"
    _, dep = admin.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert "vaultbridge.dev/restartedAt" not in (
        dep["spec"]["template"]["metadata"].get("annotations") or {}
    ), "adoption must not restart workloads"

    # A second run finds nothing left to do.
    assert (
        main(
            [
                "migrate",
                "--adopt-secrets",
                "--kubeconfig",
                kubeconfig,
                "-n",
                ns,
                "--report-format",
                "json",
            ]
        )
        == 0
    )
    (line,) = json.loads(capsys.readouterr().err)["objects"]
    assert line["result"] == "skipped" and "already owned" in line["changes"][0]

    # Vault changes now flow through vaultbridge.
    app.vault.kv_put(f"{ns}/app", {"user": "app", "password": "pw-2"})
    app.wait_data("app-secret", {"password": "pw-2", "user": "app"})

    def restarted() -> str | None:
        _, d = admin.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")
        return (d["spec"]["template"]["metadata"].get("annotations") or {}).get(
            "vaultbridge.dev/restartedAt"
        )

    wait_for(restarted, 30, "restart after a real Vault change")


def test_vso_secret_not_annotated_conflicts_and_overwrite_adopts_it_cleanly(
    app: App, vso_crds: None
) -> None:
    """A VaultStaticSecret written by hand (no adopt-from annotation) naming a VSO-created
    Secret: refused with a hint; with destination.overwrite it takes the Secret over cleanly
    (VSO's owner reference and labels removed, so deleting the VSO object later cannot
    garbage-collect the Secret)."""
    ns, admin = app.ns, app.admin
    app.vault.kv_put(f"{ns}/hand", {"k": "v"})
    vso_obj = _create_vso(
        admin,
        ns,
        "VaultStaticSecret",
        "hand",
        {"mount": "secret", "path": f"{ns}/hand", "type": "kv-v2",
         "destination": {"name": "hand", "create": True}},
    )  # fmt: skip
    uid = vso_obj["metadata"]["uid"]
    status, secret = admin.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "hand",
                "labels": {**vso.OWNER_LABELS, vso.LABEL_OWNER_UID: uid},
                "ownerReferences": [
                    {"apiVersion": vso.API_VERSION, "kind": "VaultStaticSecret",
                     "name": "hand", "uid": uid}
                ],
            },
            "data": {"k": _b64(b"v")},
        },
    )  # fmt: skip
    assert status == 201, dump(secret)
    app.vss("hand", path=f"{ns}/hand")
    cond = app.wait_condition("hand", "SecretSynced", "False", "DestinationConflict", timeout=60)
    assert "created by VSO" in cond["message"] and "adopt-from" in cond["message"], cond
    assert (
        app.secret("hand")["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    )  # type: ignore[index]

    app.patch_vss("hand", {"spec": {"destination": {"overwrite": True}}})
    app.wait_event("hand", "SecretAdopted", timeout=60)
    app.wait_condition("hand", "SecretSynced", "True", timeout=60)
    taken = app.secret("hand")
    # (The data gains `_raw`, which this hand-made VSO Secret lacked: a normal write after the
    # adoption, as for any data that differs.)
    assert taken is not None and taken["data"]["k"] == secret["data"]["k"]
    refs = taken["metadata"]["ownerReferences"]
    assert [r["kind"] for r in refs] == ["VaultStaticSecret"]
    assert refs[0]["apiVersion"] == "vaultbridge.dev/v1beta1"
    assert vso.LABEL_OWNER_UID not in taken["metadata"]["labels"]


def test_vault_auth_global_inlined_from_cluster_logs_in(
    request: pytest.FixtureRequest,
    app: App,
    devenv: DevState,
    vso_crds: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A VaultAuth that leaves method, role, service account and connection to a
    VaultAuthGlobal (found by allowDefault in VSO's namespace, outside the `-n` scope) converts
    into a complete VaultAuth that logs in."""
    ns, admin = app.ns, app.admin
    vso_ns = f"{ns}-vso"
    admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": vso_ns}},
    )
    request.addfinalizer(lambda: admin.request("DELETE", f"/api/v1/namespaces/{vso_ns}"))
    _create_vso(
        admin,
        vso_ns,
        "VaultAuthGlobal",
        "default",
        {
            "allowedNamespaces": [ns],
            "defaultAuthMethod": "kubernetes",
            "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
            "headers": {"X-From-Global": "1"},
            "kubernetes": {
                "role": "not-this-one",
                "serviceAccount": "default",
                "mount": "kubernetes",
            },
        },
    )
    _create_vso(
        admin,
        ns,
        "VaultAuth",
        "inlined",
        {
            "vaultAuthGlobalRef": {"allowDefault": True, "mergeStrategy": {"headers": "union"}},
            "kubernetes": {"role": app.vault.role},  # local beats the global's role
            "headers": {"X-Local": "1"},
        },
    )
    out_dir = tmp_path / "vb"
    code = main(
        [
            "migrate",
            "--from-cluster",
            "--kubeconfig",
            str(devenv.kubeconfig),
            "-n",
            ns,
            "--vso-namespace",
            vso_ns,
            "--out",
            str(out_dir),
            "--report-format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().err)
    assert code == 0, report
    (line,) = report["objects"]  # the global is outside the scope: looked up, not reported
    assert (line["kind"], line["name"], line["result"]) == (
        "VaultAuth",
        "inlined",
        "converted with changes",
    )
    assert line["changes"] == [
        f"settings of VaultAuthGlobal {vso_ns}/default inlined (vaultAuthGlobalRef): the global "
        "is not among the converted objects"
    ]
    (manifest,) = out_dir.iterdir()
    auth = yaml.safe_load(manifest.read_text())
    assert auth["spec"] == {
        "method": "kubernetes",
        "mount": "kubernetes",
        "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
        "kubernetes": {"role": app.vault.role, "serviceAccount": "default"},
        "headers": {"X-From-Global": "1", "X-Local": "1"},
    }
    status, created = admin.request("POST", crd_path("vaultauths", ns), auth)
    assert status == 201, dump(created)

    app.vault.kv_put(f"{ns}/via-global", {"k": "v"})
    app.vss("via-global", vaultAuthRef="inlined")
    app.wait_data("via-global", {"k": "v"})


def test_vault_auth_global_converted_from_cluster_is_referenced_and_logs_in(
    request: pytest.FixtureRequest,
    app: App,
    devenv: DevState,
    vso_crds: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the global's namespace in scope, the VaultAuthGlobal becomes a vaultbridge
    VaultAuthGlobal (moved from VSO's namespace to the operator's, where the `default` lookup
    finds it) and the VaultAuth keeps its reference; applied, the VaultAuth logs in with the
    merged settings."""
    ns, admin = app.ns, app.admin
    vso_ns = f"{ns}-vso"
    admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": vso_ns}},
    )
    request.addfinalizer(lambda: admin.request("DELETE", f"/api/v1/namespaces/{vso_ns}"))
    global_name = f"g-{ns}"[:63]
    _create_vso(
        admin,
        vso_ns,
        "VaultAuthGlobal",
        global_name,
        {
            "allowedNamespaces": [ns],
            "defaultAuthMethod": "kubernetes",
            "vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default",
            "kubernetes": {"role": app.vault.role, "serviceAccount": "default"},
        },
    )
    _create_vso(
        admin,
        ns,
        "VaultAuth",
        "referencing",
        {"vaultAuthGlobalRef": {"name": global_name, "namespace": vso_ns}},
    )
    out_dir = tmp_path / "vb"
    code = main(
        [
            "migrate",
            "--from-cluster",
            "--kubeconfig",
            str(devenv.kubeconfig),
            "-n",
            ns,
            "-n",
            vso_ns,
            "--vso-namespace",
            vso_ns,
            "--operator-namespace",
            OPERATOR_NAMESPACE,
            "--out",
            str(out_dir),
            "--report-format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().err)
    assert code == 0, report
    results = {(o["kind"], o["result"]) for o in report["objects"]}
    assert results == {
        ("VaultAuthGlobal", "converted with changes"),
        ("VaultAuth", "converted with changes"),
    }
    manifests = {m["kind"]: m for m in (yaml.safe_load(p.read_text()) for p in out_dir.iterdir())}
    glob, auth = manifests["VaultAuthGlobal"], manifests["VaultAuth"]
    assert glob["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert auth["spec"] == {
        "vaultAuthGlobalRef": {"name": global_name, "namespace": OPERATOR_NAMESPACE}
    }
    status, created = admin.request("POST", crd_path("vaultauthglobals", OPERATOR_NAMESPACE), glob)
    assert status == 201, dump(created)
    request.addfinalizer(
        lambda: admin.request(
            "DELETE", crd_path("vaultauthglobals", OPERATOR_NAMESPACE, global_name)
        )
    )
    status, created = admin.request("POST", crd_path("vaultauths", ns), auth)
    assert status == 201, dump(created)
    app.wait_condition(
        "referencing", "Ready", "True", "LoginSucceeded", plural="vaultauths", timeout=60
    )
    app.vault.kv_put(f"{ns}/via-ref", {"k": "v"})
    app.vss("via-ref", vaultAuthRef="referencing")
    app.wait_data("via-ref", {"k": "v"})


def test_pki_adoption_keeps_vso_certificate(
    app: App,
    devenv: DevState,
    vso_crds: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """VSO's certificate and its state (serial, expiry) carry over: the operator issues nothing
    at the switch and keeps the Secret as VSO wrote it until the certificate's rotation time."""
    ns, admin = app.ns, app.admin
    pki = PKI(app)
    issued = pki.bao.must(
        "POST", f"{pki.mount}/issue/web", {"common_name": "svc.example.com", "ttl": "1h"}
    )["data"]
    vps = _create_vso(
        admin,
        ns,
        "VaultPKISecret",
        "tls",
        {
            "vaultAuthRef": "default",
            "mount": pki.mount,
            "role": "web",
            "commonName": "svc.example.com",
            "ttl": "1h",
            "expiryOffset": "5m",
            "destination": {"name": "tls", "create": True},
        },
    )
    status, _ = _merge_patch(
        admin,
        f"{VSO_PATH}/namespaces/{ns}/vaultpkisecrets/tls/status",
        {
            "status": {
                "serialNumber": issued["serial_number"],
                "expiration": int(issued["expiration"]),
                "lastRotation": int(time.time()),
                "valid": True,
                "error": "",
            }
        },
        admin._ctx,
    )
    assert status == 200
    status, secret = admin.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "tls",
                "labels": {**vso.OWNER_LABELS, vso.LABEL_OWNER_UID: vps["metadata"]["uid"]},
                "ownerReferences": [
                    {
                        "apiVersion": vso.API_VERSION,
                        "kind": "VaultPKISecret",
                        "name": "tls",
                        "uid": vps["metadata"]["uid"],
                    }
                ],
            },
            "data": {
                k: _b64(str(issued[k]).encode())
                for k in ("certificate", "private_key", "issuing_ca", "serial_number", "expiration")
            },
        },
    )
    assert status == 201, dump(secret)
    certs_before = pki.bao.must("LIST", f"{pki.mount}/certs")["data"]["keys"]

    out_dir = tmp_path / "vb"
    kubeconfig = str(devenv.kubeconfig)
    assert (
        main(
            [
                "migrate",
                "--from-cluster",
                "--kubeconfig",
                kubeconfig,
                "-n",
                ns,
                "--out",
                str(out_dir),
            ]
        )
        == 0
    )
    capsys.readouterr()
    (manifest,) = out_dir.iterdir()
    status, created = admin.request(
        "POST", crd_path("vaultpkisecrets", ns), yaml.safe_load(manifest.read_text())
    )
    assert status == 201, dump(created)
    code = main(
        [
            "migrate",
            "--adopt-secrets",
            "--kubeconfig",
            kubeconfig,
            "-n",
            ns,
            "--report-format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().err)
    assert code == 0, report
    (line,) = report["objects"]
    assert line["result"] == "adopted"
    assert line["changes"][1] == "VSO's certificate carried over: no new credentials at the switch"

    adopted = app.secret("tls")
    assert adopted is not None and adopted["data"] == secret["data"]
    adopted_rv = adopted["metadata"]["resourceVersion"]
    app.wait_condition("tls", "Ready", "True", plural="vaultpkisecrets")
    time.sleep(3)
    ours = pki.status("tls")
    assert ours["serialNumber"] == issued["serial_number"]
    assert ours["expiration"] == int(issued["expiration"])
    after = app.secret("tls")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == adopted_rv, "the operator rewrote the Secret"
    assert pki.bao.must("LIST", f"{pki.mount}/certs")["data"]["keys"] == certs_before


def test_dynamic_adoption_keeps_vso_lease(
    app: App,
    devenv: DevState,
    vso_crds: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """VSO's lease carries over: the operator waits for its renewal point instead of issuing."""
    ns, admin = app.ns, app.admin
    pki = PKI(app)
    pki.bao.must(
        "POST",
        f"{pki.mount}/roles/leased",
        {"allow_any_name": True, "generate_lease": True, "ttl": "1h", "key_type": "ec"},
    )
    pki.bao.must(
        "PUT",
        f"sys/policies/acl/{app.vault.role}",
        {"policy": f'path "{pki.mount}/issue/leased" {{ capabilities = ["update"] }}'},
    )
    resp = pki.bao.must("POST", f"{pki.mount}/issue/leased", {"common_name": "db.example.com"})
    assert resp["lease_id"]
    vds = _create_vso(
        admin,
        ns,
        "VaultDynamicSecret",
        "creds",
        {
            "vaultAuthRef": "default",
            "mount": pki.mount,
            "path": "issue/leased",
            "params": {"common_name": "db.example.com"},
            "destination": {"name": "creds", "create": True},
        },
    )
    now = int(time.time())
    status, _ = _merge_patch(
        admin,
        f"{VSO_PATH}/namespaces/{ns}/vaultdynamicsecrets/creds/status",
        {
            "status": {
                "lastRenewalTime": now,
                "lastGeneration": 1,
                "secretLease": {
                    "id": resp["lease_id"],
                    "duration": resp["lease_duration"],
                    "renewable": resp["renewable"],
                    "requestID": resp["request_id"],
                },
            }
        },
        admin._ctx,
    )
    assert status == 200
    status, secret = admin.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "creds",
                "labels": {**vso.OWNER_LABELS, vso.LABEL_OWNER_UID: vds["metadata"]["uid"]},
                "ownerReferences": [
                    {
                        "apiVersion": vso.API_VERSION,
                        "kind": "VaultDynamicSecret",
                        "name": "creds",
                        "uid": vds["metadata"]["uid"],
                    }
                ],
            },
            "data": {
                "certificate": _b64(resp["data"]["certificate"].encode()),
                "private_key": _b64(resp["data"]["private_key"].encode()),
                "_raw": _b64(json.dumps(resp["data"]).encode()),
            },
        },
    )
    assert status == 201, dump(secret)
    certs_before = pki.bao.must("LIST", f"{pki.mount}/certs")["data"]["keys"]

    out_dir = tmp_path / "vb"
    kubeconfig = str(devenv.kubeconfig)
    args = ["--kubeconfig", kubeconfig, "-n", ns]
    assert main(["migrate", "--from-cluster", *args, "--out", str(out_dir)]) == 0
    capsys.readouterr()
    (manifest,) = out_dir.iterdir()
    status, created = admin.request(
        "POST", crd_path("vaultdynamicsecrets", ns), yaml.safe_load(manifest.read_text())
    )
    assert status == 201, dump(created)
    assert main(["migrate", "--adopt-secrets", *args, "--report-format", "json"]) == 0
    (line,) = json.loads(capsys.readouterr().err)["objects"]
    assert line["result"] == "adopted"
    assert line["changes"][1] == "VSO's lease carried over: no new credentials at the switch"

    adopted = app.secret("creds")
    assert adopted is not None and adopted["data"] == secret["data"]
    app.wait_condition("creds", "Ready", "True", plural="vaultdynamicsecrets")
    time.sleep(3)
    _, ours = admin.request("GET", crd_path("vaultdynamicsecrets", ns, "creds"))
    assert ours["status"]["secretLease"]["id"] == resp["lease_id"]
    after = app.secret("creds")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == adopted["metadata"]["resourceVersion"]
    assert pki.bao.must("LIST", f"{pki.mount}/certs")["data"]["keys"] == certs_before
