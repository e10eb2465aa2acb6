"""Conversion of every VSO kind: verdicts, changes, refusals, and that outputs pass our models."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vaultbridge.api import API_VERSION, kind_info
from vaultbridge.migrate.convert import ADOPT_ANNOTATION, Options, Verdict, convert_document
from vaultbridge.migrate.vso import API_VERSION as VSO_API_VERSION


def vso(kind: str, spec: dict[str, Any], name: str = "obj", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": VSO_API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": "team-a", **meta},
        "spec": spec,
    }


def convert(doc: object, options: Options | None = None) -> Any:
    return convert_document(doc, "test#1", options)


def assert_valid(outcome: Any) -> dict[str, Any]:
    assert outcome.output is not None
    out: dict[str, Any] = outcome.output
    assert out["apiVersion"] == API_VERSION
    kind_info(out["kind"]).parse_spec(out)  # our own model accepts it
    return out


DESTINATION = {"name": "app-secret", "create": True}

FULL_CONNECTION = {
    "address": "https://vault.example:8200",
    "headers": {"X-Team": "a"},
    "tlsServerName": "vault.example",
    "caCertSecretRef": "vault-ca",
    "skipTLSVerify": False,
    "timeout": "10s",
}


def test_connection_every_field_converts_as_is() -> None:
    outcome = convert(vso("VaultConnection", FULL_CONNECTION))
    assert outcome.verdict is Verdict.AS_IS, outcome.problems
    out = assert_valid(outcome)
    assert out["spec"] == FULL_CONNECTION
    assert out["metadata"] == {"name": "obj", "namespace": "team-a"}


@pytest.mark.parametrize(
    ("method", "block"),
    [
        (
            "kubernetes",
            {
                "role": "r",
                "serviceAccount": "sa",
                "audiences": ["vault"],
                "tokenExpirationSeconds": 900,
            },
        ),
        ("jwt", {"role": "r", "secretRef": "jwt-secret"}),
        ("appRole", {"roleId": "rid", "secretRef": "approle-secret"}),
    ],
)
def test_auth_supported_methods_as_is(method: str, block: dict[str, Any]) -> None:
    spec = {
        "vaultConnectionRef": "conn",
        "namespace": "ns1",
        "allowedNamespaces": ["team-b"],
        "method": method,
        "mount": "mnt",
        "params": {"p": "1"},
        "headers": {"h": "2"},
        method: block,
        "storageEncryption": {"mount": "transit", "keyName": "k"},
    }
    outcome = convert(vso("VaultAuth", spec))
    assert outcome.verdict is Verdict.AS_IS, outcome.problems
    assert assert_valid(outcome)["spec"] == spec


@pytest.mark.parametrize("method", ["aws", "gcp"])
def test_auth_cloud_methods_not_convertible(method: str) -> None:
    outcome = convert(vso("VaultAuth", {"method": method, method: {"role": "r"}}))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.output is None
    assert any(f"method {method} is not supported" in p for p in outcome.problems)


def test_auth_unused_cloud_block_is_removed_as_change() -> None:
    spec = {
        "method": "kubernetes",
        "kubernetes": {"role": "r", "serviceAccount": "sa"},
        "aws": {"role": "x"},
    }
    outcome = convert(vso("VaultAuth", spec))
    assert outcome.verdict is Verdict.CHANGED
    assert "aws" not in assert_valid(outcome)["spec"]
    assert outcome.changes == ["spec.aws removed (unused: method is kubernetes)"]


def test_auth_empty_mount_means_unset() -> None:
    spec = {"method": "kubernetes", "mount": "", "kubernetes": {"role": "r", "serviceAccount": "s"}}
    outcome = convert(vso("VaultAuth", spec))
    assert outcome.verdict is Verdict.AS_IS
    assert "mount" not in assert_valid(outcome)["spec"]


def test_auth_global_ref_without_the_global_is_kept_with_a_note() -> None:
    outcome = convert(vso("VaultAuth", {"vaultAuthGlobalRef": {"name": "g"}}))
    assert outcome.verdict is Verdict.CHANGED, outcome.problems
    assert assert_valid(outcome)["spec"] == {"vaultAuthGlobalRef": {"name": "g"}}
    assert "convert and apply it too" in outcome.changes[0]


_GLOBAL_SPEC = {
    "defaultAuthMethod": "kubernetes",
    "vaultConnectionRef": "conn",
    "kubernetes": {"role": "shared", "serviceAccount": "sa", "mount": "k8s-prod"},
    "headers": {"X-Default": "d"},
}


def _lookup(key: Any) -> Any:
    return _GLOBAL_SPEC if (key.namespace, key.name) == ("team-a", "g") else None


def _auth_with_ref() -> dict[str, Any]:
    return vso(
        "VaultAuth",
        {
            "vaultAuthGlobalRef": {"name": "g", "mergeStrategy": {"headers": "union"}},
            "headers": {"X-Local": "l"},
            "kubernetes": {"role": "mine"},
        },
    )


def test_auth_global_ref_kept_when_the_global_is_converted_too() -> None:
    options = Options(lookup_global=_lookup, converts_global=lambda _key: True)
    outcome = convert(_auth_with_ref(), options)
    assert outcome.verdict is Verdict.AS_IS, outcome.problems
    spec = assert_valid(outcome)["spec"]
    assert spec["vaultAuthGlobalRef"] == {"name": "g", "mergeStrategy": {"headers": "union"}}
    assert spec["kubernetes"] == {"role": "mine"}
    assert "method" not in spec


def test_auth_global_ref_merge_checked_when_the_global_is_known() -> None:
    bad_global = {"defaultAuthMethod": "kubernetes", "kubernetes": {"mount": "k"}}
    options = Options(lookup_global=lambda _k: bad_global, converts_global=lambda _k: True)
    outcome = convert(vso("VaultAuth", {"vaultAuthGlobalRef": {"name": "g"}}), options)
    assert outcome.verdict is Verdict.FAILED
    assert "merged with VaultAuthGlobal team-a/g" in outcome.problems[0]
    aws_global = {"defaultAuthMethod": "aws"}
    options = Options(lookup_global=lambda _k: aws_global, converts_global=lambda _k: True)
    outcome = convert(vso("VaultAuth", {"vaultAuthGlobalRef": {"name": "g"}}), options)
    assert outcome.verdict is Verdict.FAILED
    assert "method aws" in outcome.problems[0]


def test_auth_global_ref_in_vso_namespace_follows_the_move() -> None:
    options = Options(operator_namespace="vso", target_namespace="vb")
    outcome = convert(
        vso("VaultAuth", {"vaultAuthGlobalRef": {"name": "g", "namespace": "vso"}}), options
    )
    assert assert_valid(outcome)["spec"]["vaultAuthGlobalRef"] == {"name": "g", "namespace": "vb"}


def test_auth_global_inlined_when_the_global_is_only_looked_up() -> None:
    outcome = convert(_auth_with_ref(), Options(lookup_global=_lookup))
    assert outcome.verdict is Verdict.CHANGED, outcome.problems
    spec = assert_valid(outcome)["spec"]
    assert spec["method"] == "kubernetes"
    assert spec["mount"] == "k8s-prod"
    assert spec["vaultConnectionRef"] == "conn"
    assert spec["kubernetes"] == {"role": "mine", "serviceAccount": "sa"}
    assert spec["headers"] == {"X-Default": "d", "X-Local": "l"}
    assert "vaultAuthGlobalRef" not in spec
    assert outcome.changes == [
        "settings of VaultAuthGlobal team-a/g inlined (vaultAuthGlobalRef): the global is not "
        "among the converted objects"
    ]


def test_vault_auth_global_itself_is_converted() -> None:
    outcome = convert(vso("VaultAuthGlobal", _GLOBAL_SPEC))
    assert outcome.verdict is Verdict.AS_IS, outcome.problems
    assert assert_valid(outcome)["kind"] == "VaultAuthGlobal"
    aws = convert(vso("VaultAuthGlobal", {**_GLOBAL_SPEC, "aws": {"role": "r"}}))
    assert aws.verdict is Verdict.CHANGED
    assert "aws" not in assert_valid(aws)["spec"]
    moved = convert(
        vso("VaultAuthGlobal", _GLOBAL_SPEC, namespace="vso"),
        Options(operator_namespace="vso", target_namespace="vb"),
    )
    assert assert_valid(moved)["metadata"]["namespace"] == "vb"
    refused = convert(vso("VaultAuthGlobal", {"defaultAuthMethod": "gcp"}))
    assert refused.verdict is Verdict.FAILED


FULL_STATIC = {
    "vaultAuthRef": "auth",
    "namespace": "ns1",
    "mount": "kvv2",
    "path": "app/db",
    "version": 3,
    "type": "kv-v2",
    "refreshAfter": "1h",
    "hmacSecretData": True,
    "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}],
    "destination": {
        "name": "app-db",
        "create": True,
        "overwrite": False,
        "labels": {"l": "1"},
        "annotations": {"a": "2"},
        "type": "Opaque",
        "transformation": {
            "transformationRefs": [
                {
                    "name": "shared",
                    "namespace": "team-a",
                    "templateRefs": [{"name": "t", "keyOverride": "k"}],
                    "ignoreIncludes": True,
                    "ignoreExcludes": False,
                }
            ],
            "includes": ["^pass"],
            "excludes": ["^tmp"],
            "excludeRaw": True,
        },
    },
}


def test_static_every_field_converts_as_is_with_adoption_annotation() -> None:
    outcome = convert(vso("VaultStaticSecret", FULL_STATIC, uid="1234"))
    assert outcome.verdict is Verdict.AS_IS, (outcome.problems, outcome.changes)
    out = assert_valid(outcome)
    assert out["spec"] == FULL_STATIC
    assert out["metadata"]["annotations"] == {ADOPT_ANNOTATION: "vso/1234"}
    assert "uid" not in out["metadata"]


def test_static_instant_updates_kept_as_is() -> None:
    # Same field, same meaning (vaultbridge drives it from Vault's socket audit device).
    spec = {**FULL_STATIC, "syncConfig": {"instantUpdates": True}}
    outcome = convert(vso("VaultStaticSecret", spec))
    assert outcome.verdict is Verdict.AS_IS
    assert assert_valid(outcome)["spec"]["syncConfig"] == {"instantUpdates": True}


def test_static_instant_updates_false_is_a_no_op() -> None:
    spec = {**FULL_STATIC, "syncConfig": {"instantUpdates": False}, "version": 0}
    spec["type"] = "kv-v2"
    outcome = convert(vso("VaultStaticSecret", spec))
    assert outcome.verdict is Verdict.AS_IS
    out = assert_valid(outcome)
    assert "syncConfig" not in out["spec"] and "version" not in out["spec"]


def test_static_templates_translated_to_jinja() -> None:
    spec: Any = copy.deepcopy(FULL_STATIC)
    spec["destination"]["transformation"]["templates"] = {
        "url": {
            "name": "url",
            "text": 'pg://{{ get .Secrets "user" }}:{{- .Secrets.password -}}@db',
        }
    }
    outcome = convert(vso("VaultStaticSecret", spec))
    assert outcome.verdict is Verdict.CHANGED, outcome.problems
    tmpl = assert_valid(outcome)["spec"]["destination"]["transformation"]["templates"]["url"]
    assert tmpl == {"text": 'pg://{{ secrets["user"] }}:{{- secrets["password"] -}}@db'}
    assert any("translated from Go template" in c for c in outcome.changes)


def test_static_untranslatable_template_is_not_convertible() -> None:
    spec: Any = copy.deepcopy(FULL_STATIC)
    spec["destination"]["transformation"]["templates"] = {
        "all": {"text": "{{- range $k, $v := .Secrets }}{{ $k }}={{ $v }}\n{{- end }}"}
    }
    outcome = convert(vso("VaultStaticSecret", spec))
    assert outcome.verdict is Verdict.FAILED
    assert "templates.all.text" in outcome.problems[0]
    assert "$v" not in outcome.problems[0]  # the template text is not echoed


def test_argo_rollout_target_converts_as_is() -> None:
    targets = [{"kind": "argo.Rollout", "name": "r"}, {"kind": "Deployment", "name": "d"}]
    spec = {**FULL_STATIC, "rolloutRestartTargets": targets}
    outcome = convert(vso("VaultStaticSecret", spec))
    assert outcome.ok, outcome.problems
    assert assert_valid(outcome)["spec"]["rolloutRestartTargets"] == targets


FULL_DYNAMIC = {
    "vaultAuthRef": "team-b/auth",
    "namespace": "ns1",
    "mount": "database",
    "requestHTTPMethod": "POST",
    "path": "creds/app",
    "params": {"ttl": "1h"},
    "renewalPercent": 60,
    "revoke": True,
    "allowStaticCreds": False,
    "refreshAfter": "30m",
    "rolloutRestartTargets": [{"kind": "StatefulSet", "name": "db-client"}],
    "destination": DESTINATION,
}


def test_dynamic_every_field_converts_as_is() -> None:
    outcome = convert(vso("VaultDynamicSecret", FULL_DYNAMIC))
    assert outcome.verdict is Verdict.AS_IS, outcome.problems
    assert assert_valid(outcome)["spec"] == FULL_DYNAMIC


FULL_PKI = {
    "vaultAuthRef": "auth",
    "namespace": "ns1",
    "mount": "pki",
    "role": "web",
    "revoke": True,
    "clear": True,
    "expiryOffset": "10m",
    "commonName": "web.example",
    "altNames": ["www.example"],
    "ipSans": ["10.0.0.1"],
    "uriSans": ["spiffe://x/y"],
    "otherSans": ["1.2.3.4;UTF8:x"],
    "ttl": "720h",
    "format": "pem",
    "privateKeyFormat": "pkcs8",
    "notAfter": "2030-01-01T00:00:00Z",
    "excludeCNFromSans": True,
    "rolloutRestartTargets": [{"kind": "DaemonSet", "name": "agent"}],
    "destination": {**DESTINATION, "type": "kubernetes.io/tls"},
}


def test_pki_every_supported_field_converts_as_is() -> None:
    outcome = convert(vso("VaultPKISecret", FULL_PKI))
    assert outcome.verdict is Verdict.AS_IS, outcome.problems
    assert assert_valid(outcome)["spec"] == FULL_PKI


def test_pki_days_and_ref_namespace_are_changes_issuer_ref_kept() -> None:
    spec = {**FULL_PKI, "ttl": "30d", "issuerRef": "my-issuer", "vaultAuthRefNamespace": "auth-ns"}
    outcome = convert(vso("VaultPKISecret", spec))
    assert outcome.verdict is Verdict.CHANGED, outcome.problems
    out = assert_valid(outcome)["spec"]
    assert out["ttl"] == "720h"
    assert out["vaultAuthRef"] == "auth-ns/auth"
    assert out["issuerRef"] == "my-issuer"
    assert "vaultAuthRefNamespace" not in out
    assert len(outcome.changes) == 2


@pytest.mark.parametrize(("field", "value"), [("userIDs", ["u1"])])
def test_pki_unsupported_fields_not_convertible(field: str, value: object) -> None:
    outcome = convert(vso("VaultPKISecret", {**FULL_PKI, field: value}))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.problems[0].startswith(f"spec.{field}")


def test_pki_never_rotate_offset_is_a_change() -> None:
    outcome = convert(vso("VaultPKISecret", {**FULL_PKI, "expiryOffset": ""}))
    assert outcome.verdict is Verdict.CHANGED
    assert "expiryOffset" not in assert_valid(outcome)["spec"]


def test_secret_transformation_converts_templates_and_sources() -> None:
    spec = {
        "templates": {"dsn": {"text": '{{ index .Secrets "host" }}:5432'}},
        "sourceTemplates": [{"name": "helper", "text": "static text"}],
        "includes": ["^a"],
        "excludes": ["^b"],
    }
    outcome = convert(vso("SecretTransformation", spec))
    assert outcome.verdict is Verdict.CHANGED, outcome.problems
    out = assert_valid(outcome)["spec"]
    assert out["templates"]["dsn"]["text"] == '{{ secrets["host"] }}:5432'
    assert out["sourceTemplates"] == [{"name": "helper", "text": "static text"}]
    assert "metadata" in assert_valid(outcome)
    assert ADOPT_ANNOTATION not in (assert_valid(outcome)["metadata"].get("annotations") or {})


@pytest.mark.parametrize("kind", ["CSISecrets", "HCPAuth", "HCPVaultSecretsApp"])
def test_unsupported_kinds(kind: str) -> None:
    outcome = convert(vso(kind, {}))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.problems[0].startswith(f"{kind} is not supported")


def test_unknown_kind_and_version() -> None:
    assert convert(vso("VaultFancySecret", {})).problems == ["unknown VSO kind VaultFancySecret"]
    doc = vso("VaultStaticSecret", FULL_STATIC)
    doc["apiVersion"] = "secrets.hashicorp.com/v1alpha9"
    assert "unknown VSO API version" in convert(doc).problems[0]


def test_unknown_fields_are_refused_by_path() -> None:
    spec: Any = copy.deepcopy(FULL_STATIC)
    spec["refreshAftr"] = "1h"
    spec["destination"]["transformation"]["excludez"] = []
    outcome = convert(vso("VaultStaticSecret", spec))
    assert outcome.verdict is Verdict.FAILED
    assert sorted(outcome.problems) == [
        "unknown field spec.destination.transformation.excludez "
        "(not in VSO's VaultStaticSecret schema)",
        "unknown field spec.refreshAftr (not in VSO's VaultStaticSecret schema)",
    ]


def test_invalid_for_our_model_is_refused_without_values() -> None:
    spec = {**FULL_CONNECTION, "address": "vault-without-scheme", "headers": {"X-Token": "s3cr3t"}}
    outcome = convert(vso("VaultConnection", spec))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.problems[0].startswith("not valid for vaultbridge: address")
    assert "s3cr3t" not in " ".join(outcome.problems)
    assert "vault-without-scheme" not in " ".join(outcome.problems)


def test_other_groups_pass_through_untouched() -> None:
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"a": "Yg=="}}
    outcome = convert(doc)
    assert outcome.verdict is Verdict.PASSTHROUGH
    assert outcome.output is doc


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (["a", "list"], "not a Kubernetes object (expected a mapping)"),
        ({"kind": "VaultAuth"}, "missing apiVersion or kind"),
        (
            {"apiVersion": VSO_API_VERSION, "kind": "VaultAuth", "metadata": {}},
            "metadata.name is missing",
        ),
        (
            {
                "apiVersion": VSO_API_VERSION,
                "kind": "VaultAuth",
                "metadata": {"name": "a"},
                "spec": "nope",
            },
            "spec is not a mapping",
        ),
    ],
)
def test_malformed_documents(doc: object, problem: str) -> None:
    outcome = convert(doc)
    assert outcome.verdict is Verdict.FAILED
    assert outcome.problems == [problem]


def test_last_applied_annotation_dropped_other_metadata_kept() -> None:
    doc = vso(
        "VaultConnection",
        FULL_CONNECTION,
        labels={"team": "a"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"},
        resourceVersion="5",
        uid="u",
    )
    out = assert_valid(convert(doc))
    assert out["metadata"] == {
        "name": "obj",
        "namespace": "team-a",
        "labels": {"team": "a"},
        "annotations": {"note": "x"},
    }


def test_objects_of_vso_namespace_move_to_the_operator_namespace() -> None:
    opts = Options(operator_namespace="vso-system", target_namespace="vb-system")
    conn = convert(
        vso("VaultConnection", FULL_CONNECTION, name="default", namespace="vso-system"), opts
    )
    assert conn.verdict is Verdict.CHANGED
    assert assert_valid(conn)["metadata"]["namespace"] == "vb-system"
    auth = convert(
        vso(
            "VaultAuth",
            {
                "vaultConnectionRef": "vso-system/conn",
                "method": "kubernetes",
                "kubernetes": {"role": "r", "serviceAccount": "default"},
            },
            name="default",
            namespace="vso-system",
        ),
        opts,
    )
    spec = assert_valid(auth)["spec"]
    # VSO lets every namespace use its namespace's `default` VaultAuth: made explicit.
    assert spec["allowedNamespaces"] == ["*"]
    assert spec["vaultConnectionRef"] == "vb-system/conn"
    assert len(auth.changes) == 3
    vss = convert(vso("VaultStaticSecret", {**FULL_STATIC, "vaultAuthRef": "vso-system/a"}), opts)
    assert assert_valid(vss)["spec"]["vaultAuthRef"] == "vb-system/a"
    assert assert_valid(vss)["metadata"]["namespace"] == "team-a"  # secret objects stay


def test_other_vault_auths_of_vso_namespace_keep_their_allowed_namespaces() -> None:
    opts = Options(operator_namespace="vso-system", target_namespace="vb-system")
    spec = {"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "default"}}
    auth = convert(vso("VaultAuth", spec, name="other", namespace="vso-system"), opts)
    assert "allowedNamespaces" not in assert_valid(auth)["spec"]
    assert assert_valid(auth)["metadata"]["namespace"] == "vb-system"
