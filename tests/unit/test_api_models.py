"""The models as controllers use them: parsing API-server objects, rejecting bad specs, helpers."""

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from vaultbridge.api import (
    KINDS,
    VAULT_STATIC_SECRET,
    Condition,
    ObjectKey,
    VaultAuthSpec,
    VaultConnectionSpec,
    VaultDynamicSecretSpec,
    VaultDynamicSecretStatus,
    VaultPKISecretSpec,
    VaultStaticSecretSpec,
    VaultStaticSecretStatus,
    describe_validation_error,
    kind_info,
    resolve_ref,
)
from vaultbridge.api.examples import EXAMPLES

Mutation = Callable[[dict[str, Any]], None]


def _example(kind: str) -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES[kind])


def _set(**fields: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value

    return mutate


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_every_example_parses(info: Any) -> None:
    obj = _example(info.kind)
    spec = info.parse_spec(obj)
    assert isinstance(spec, info.spec_model)
    status = info.status_model.model_validate(obj.get("status") or {})  # none yet: empty
    assert status.to_k8s().get("conditions", []) == []


def test_unknown_fields_are_ignored() -> None:
    obj = _example("VaultStaticSecret")
    obj["spec"]["notAField"] = {"x": True}
    obj["spec"]["destination"]["somethingNew"] = 1
    obj["spec"]["syncConfig"] = {"instantUpdates": True}  # VSO's field: supported
    spec = VAULT_STATIC_SECRET.parse_spec(obj)
    assert spec.destination.name == "db-credentials"
    assert "notAField" not in spec.to_k8s()
    assert spec.to_k8s()["syncConfig"] == {"instantUpdates": True}


def test_parsed_example_has_defaults_and_camel_case_round_trip() -> None:
    spec = VAULT_STATIC_SECRET.parse_spec(_example("VaultStaticSecret"))
    assert spec.hmac_secret_data is True
    assert spec.destination.type == "Opaque"
    assert spec.destination.overwrite is False
    assert spec.refresh_after_seconds == 3600.0
    assert spec.rollout_restart_targets[0].kind == "Deployment"
    dumped = spec.to_k8s()
    assert dumped["vaultAuthRef"] == "default"
    assert dumped["rolloutRestartTargets"] == [{"kind": "Deployment", "name": "api"}]
    assert VaultStaticSecretSpec.model_validate(dumped) == spec


def test_python_names_are_accepted_too() -> None:
    spec = VaultConnectionSpec(address="https://vault:8200", skip_tls_verify=True)
    assert spec.to_k8s()["skipTLSVerify"] is True
    assert VaultConnectionSpec.model_validate(
        {"address": "http://v", "skipTLSVerify": True}
    ).skip_tls_verify


REJECTED: list[tuple[str, Mutation, str]] = [
    ("VaultConnection", _set(address="ftp://vault"), "address"),
    ("VaultConnection", _set(address=None), "address"),
    ("VaultConnection", _set(timeout="30"), "timeout"),
    ("VaultConnection", _set(caCertSecretRef="Not_A_Name"), "caCertSecretRef"),
    ("VaultAuth", _set(method="aws"), "method"),
    ("VaultAuth", _set(method=None), "method"),
    ("VaultAuth", _set(method="jwt"), "jwt must be set"),
    ("VaultAuth", _set(method="appRole"), "appRole must be set"),
    ("VaultAuth", _set(method="token"), "token must be set"),
    ("VaultAuth", _set(kubernetes=None), "kubernetes must be set"),
    ("VaultAuth", _set(method="jwt", jwt={"role": "r"}), "exactly one"),
    (
        "VaultAuth",
        _set(method="jwt", jwt={"role": "r", "serviceAccount": "a", "secretRef": "b"}),
        "exactly one",
    ),
    ("VaultAuth", _set(allowedNamespaces=["*", "team-a"]), "only entry"),
    ("VaultAuth", _set(allowedNamespaces=["Team_A"]), "allowedNamespaces"),
    (
        "VaultAuth",
        _set(kubernetes={"role": "r", "serviceAccount": "sa", "tokenExpirationSeconds": 60}),
        "600",
    ),
    ("VaultAuth", _set(kubernetes={"role": "r"}), "serviceAccount"),
    ("VaultAuth", _set(mount="/kubernetes"), "must not start with '/'"),
    ("VaultAuth", _set(vaultConnectionRef="a/b/c"), "vaultConnectionRef"),
    ("VaultStaticSecret", _set(path="/team-a/db"), "must not start with '/'"),
    ("VaultStaticSecret", _set(path="team-a/../team-b"), "'..' segments"),
    ("VaultStaticSecret", _set(path=".."), "'..' segments"),
    ("VaultStaticSecret", _set(mount="secret/.."), "'..' segments"),
    ("VaultStaticSecret", _set(type=None), "either mount, path and type"),
    ("VaultStaticSecret", _set(type="kv-v3"), "type"),
    ("VaultStaticSecret", _set(type="kv-v1", version=2), "only be set with type kv-v2"),
    ("VaultStaticSecret", _set(version=-1), "version"),
    (
        "VaultStaticSecret",
        _set(sources=[{"mount": "kv", "path": "a", "type": "kv-v2"}]),
        "not both",
    ),
    ("VaultStaticSecret", _set(mount=None, path=None, type=None), "either mount"),
    ("VaultStaticSecret", _set(mount=None, path=None, type=None, sources=[]), "either mount"),
    (
        "VaultStaticSecret",
        _set(
            mount=None,
            path=None,
            type=None,
            sources=[{"mount": "kv", "path": "a/../b", "type": "kv-v2"}],
        ),
        "'..' segments",
    ),
    (
        "VaultStaticSecret",
        _set(
            mount=None,
            path=None,
            type=None,
            sources=[{"mount": "kv", "path": "a", "type": "kv-v1", "version": 1}],
        ),
        "only be set with type kv-v2",
    ),
    ("VaultStaticSecret", _set(refreshAfter="1 hour"), "refreshAfter"),
    ("VaultStaticSecret", _set(destination=None), "destination"),
    ("VaultStaticSecret", _set(destination={"name": "Bad_Name"}), "destination.name"),
    ("VaultStaticSecret", _set(destination={"name": "a" * 254}), "destination.name"),
    (
        "VaultStaticSecret",
        _set(
            destination={"name": "ok", "transformation": {"templates": {"bad key": {"text": "x"}}}}
        ),
        "templates",
    ),
    (
        "VaultStaticSecret",
        _set(destination={"name": "ok", "transformation": {"includes": ["(unclosed"]}}),
        "not a valid regular expression",
    ),
    ("VaultStaticSecret", _set(rolloutRestartTargets=[{"kind": "Pod", "name": "x"}]), "kind"),
    ("VaultDynamicSecret", _set(renewalPercent=91), "renewalPercent"),
    ("VaultDynamicSecret", _set(requestHTTPMethod="DELETE"), "requestHTTPMethod"),
    ("VaultDynamicSecret", _set(path=None), "path"),
    ("VaultPKISecret", _set(format="p12"), "format"),
    ("VaultPKISecret", _set(role=None), "role"),
    ("VaultPKISecret", _set(notAfter="2030-01-01"), "notAfter"),
    ("VaultPKISecret", _set(expiryOffset="-5m"), "expiryOffset"),
    ("SecretTransformation", _set(templates={"": {"text": "x"}}), "templates"),
    ("SecretTransformation", _set(excludes=["[a-"]), "not a valid regular expression"),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"), REJECTED, ids=[f"{k}-{e}" for k, _, e in REJECTED]
)
def test_bad_specs_are_rejected(kind: str, mutate: Mutation, expected: str) -> None:
    obj = _example(kind)
    mutate(obj["spec"])
    with pytest.raises(ValidationError) as info:
        kind_info(kind).parse_spec(obj)
    errors = str(info.value)
    assert expected in errors


ACCEPTED: list[tuple[str, Mutation]] = [
    ("VaultConnection", _set(address="http://127.0.0.1:8200/")),
    ("VaultConnection", _set(timeout="1m30s")),
    ("VaultAuth", _set(allowedNamespaces=["*"])),
    ("VaultAuth", _set(method="jwt", jwt={"role": "r", "secretRef": "jwt-secret"})),
    ("VaultAuth", _set(method="appRole", appRole={"roleId": "abc", "secretRef": "approle"})),
    ("VaultAuth", _set(method="token", token={"secretRef": "vault-token"})),
    ("VaultAuth", _set(storageEncryption={"mount": "transit", "keyName": "vso-client-cache"})),
    ("VaultStaticSecret", _set(path="team-a/..hidden/x")),  # `..hidden` is not a `..` segment
    ("VaultStaticSecret", _set(version=3)),
    ("VaultStaticSecret", _set(vaultAuthRef="")),
    (
        "VaultStaticSecret",
        _set(
            mount=None,
            path=None,
            type=None,
            sources=[
                {"mount": "secret", "path": "a", "type": "kv-v2", "version": 2, "prefix": "a_"},
                {"mount": "kv", "path": "b", "type": "kv-v1"},
            ],
        ),
    ),
    ("VaultPKISecret", _set(notAfter="2030-01-01T00:00:00Z", privateKeyFormat="pkcs8")),
    (
        "SecretTransformation",
        _set(sourceTemplates=[{"name": "helpers", "text": "{% macro x() %}{% endmacro %}"}]),
    ),
]


@pytest.mark.parametrize(("kind", "mutate"), ACCEPTED)
def test_good_variants_are_accepted(kind: str, mutate: Mutation) -> None:
    obj = _example(kind)
    mutate(obj["spec"])
    kind_info(kind).parse_spec(obj)


def test_validation_errors_can_be_reported_without_inputs() -> None:
    secret_header = "Bearer s3cr3t-do-not-log"
    with pytest.raises(ValidationError) as info:
        VaultConnectionSpec.model_validate(
            {
                "address": "ftp://leaky-host",
                "headers": {"Authorization": secret_header},
                "timeout": 5,
            }
        )
    assert "leaky-host" in str(info.value)  # pydantic's own text echoes inputs...
    text = describe_validation_error(info.value)
    assert text.startswith("address: ") and "; timeout: " in text
    assert "leaky-host" not in text and secret_header not in text  # ...ours does not


def test_reprs_leave_out_headers_and_params() -> None:
    conn = VaultConnectionSpec.model_validate(
        {"address": "https://v", "headers": {"X-Token": "hunter2"}}
    )
    assert "hunter2" not in repr(conn) and "hunter2" not in str(conn)
    dyn = VaultDynamicSecretSpec.model_validate(
        {
            "mount": "db",
            "path": "creds/x",
            "params": {"password": "hunter2"},
            "destination": {"name": "x"},
        }
    )
    assert "hunter2" not in repr(dyn)
    assert dyn.params == {"password": "hunter2"}


# --- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "settings", "mount"),
    [
        ("kubernetes", {"kubernetes": {"role": "r", "serviceAccount": "sa"}}, "kubernetes"),
        ("jwt", {"jwt": {"role": "r", "serviceAccount": "sa"}}, "jwt"),
        ("appRole", {"appRole": {"roleId": "id", "secretRef": "s"}}, "approle"),
        ("token", {"token": {"secretRef": "s"}}, "token"),
    ],
)
def test_effective_mount_defaults_per_method(
    method: str, settings: dict[str, Any], mount: str
) -> None:
    spec = VaultAuthSpec.model_validate({"method": method, **settings})
    assert spec.effective_mount() == mount
    custom = VaultAuthSpec.model_validate({"method": method, "mount": "team-a/auth", **settings})
    assert custom.effective_mount() == "team-a/auth"


def test_kubernetes_token_expiration_defaults_to_600() -> None:
    spec = VaultAuthSpec.model_validate(
        {"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "sa"}}
    )
    assert spec.kubernetes is not None
    assert spec.kubernetes.token_expiration_seconds == 600


def test_allowed_namespaces() -> None:
    base: dict[str, Any] = {"method": "token", "token": {"secretRef": "t"}}
    unset = VaultAuthSpec.model_validate(base)
    assert unset.allows_namespace("ops", own_namespace="ops")
    assert not unset.allows_namespace("team-a", own_namespace="ops")
    listed = VaultAuthSpec.model_validate({**base, "allowedNamespaces": ["team-a"]})
    assert listed.allows_namespace("team-a", own_namespace="ops")
    assert listed.allows_namespace("ops", own_namespace="ops")
    assert not listed.allows_namespace("team-b", own_namespace="ops")
    everyone = VaultAuthSpec.model_validate({**base, "allowedNamespaces": ["*"]})
    assert everyone.allows_namespace("anything", own_namespace="ops")


def test_references_resolve_like_vso() -> None:
    assert resolve_ref("", own_namespace="team-a", operator_namespace="vb") == ObjectKey(
        "vb", "default"
    )
    assert resolve_ref(None, own_namespace="team-a", operator_namespace="vb") == ObjectKey(
        "vb", "default"
    )
    assert resolve_ref("auth", own_namespace="team-a", operator_namespace="vb") == ObjectKey(
        "team-a", "auth"
    )
    assert resolve_ref("ops/auth", own_namespace="team-a", operator_namespace="vb") == ObjectKey(
        "ops", "auth"
    )
    assert str(ObjectKey("ops", "auth")) == "ops/auth"

    dyn = kind_info("VaultDynamicSecret").parse_spec(_example("VaultDynamicSecret"))
    assert dyn.auth_ref(own_namespace="x", operator_namespace="vb") == ObjectKey(
        "team-a", "default"
    )
    auth = VaultAuthSpec.model_validate(_example("VaultAuth")["spec"])
    assert auth.connection_ref(own_namespace="team-a", operator_namespace="vb") == ObjectKey(
        "team-a", "default"
    )


def test_kv_sources_normalise_single_and_multi_path_specs() -> None:
    single = VAULT_STATIC_SECRET.parse_spec(_example("VaultStaticSecret"))
    (only,) = single.kv_sources()
    assert (only.mount, only.path, only.type, only.version, only.prefix) == (
        "secret",
        "team-a/db",
        "kv-v2",
        None,
        "",
    )
    obj = _example("VaultStaticSecret")
    _set(
        mount=None,
        path=None,
        type=None,
        sources=[
            {"mount": "secret", "path": "a", "type": "kv-v2", "prefix": "a_"},
            {"mount": "kv", "path": "b", "type": "kv-v1"},
        ],
    )(obj["spec"])
    multi = VAULT_STATIC_SECRET.parse_spec(obj)
    assert [(s.mount, s.path, s.prefix) for s in multi.kv_sources()] == [
        ("secret", "a", "a_"),
        ("kv", "b", ""),
    ]


def test_duration_helpers() -> None:
    assert VaultConnectionSpec(address="https://v").timeout_seconds == 30.0
    pki = kind_info("VaultPKISecret").parse_spec(_example("VaultPKISecret"))
    assert isinstance(pki, VaultPKISecretSpec)
    assert pki.ttl_seconds == 720 * 3600.0
    assert pki.expiry_offset_seconds == 24 * 3600.0
    assert pki.format == "pem" and pki.private_key_format == ""
    defaults = VaultPKISecretSpec.model_validate(
        {"mount": "pki", "role": "r", "destination": {"name": "c"}}
    )
    assert defaults.expiry_offset_seconds == 300.0 and defaults.ttl_seconds is None


def test_dynamic_secret_http_method_follows_params() -> None:
    base = {"mount": "db", "path": "creds/x", "destination": {"name": "x"}}
    assert VaultDynamicSecretSpec.model_validate(base).effective_http_method() == "GET"
    assert (
        VaultDynamicSecretSpec.model_validate(
            {**base, "params": {"ttl": "1h"}}
        ).effective_http_method()
        == "POST"
    )
    assert (
        VaultDynamicSecretSpec.model_validate(
            {**base, "requestHTTPMethod": "PUT"}
        ).effective_http_method()
        == "PUT"
    )
    assert VaultDynamicSecretSpec.model_validate(base).renewal_percent == 67


# --- status and conditions ---------------------------------------------------------------------

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_condition_shape_matches_metav1() -> None:
    cond = Condition(
        type="Ready", status="True", reason="Synced", last_transition_time=T0, observed_generation=3
    )
    assert cond.to_k8s() == {
        "type": "Ready",
        "status": "True",
        "reason": "Synced",
        "message": "",
        "lastTransitionTime": "2025-01-01T12:00:00Z",
        "observedGeneration": 3,
    }
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="Yes", reason="Synced", last_transition_time=T0)
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="True", reason="not camel case", last_transition_time=T0)


def test_status_round_trips_through_api_server_json() -> None:
    server_status = {
        "lastGeneration": 4,
        "secretMAC": "q83vEjRWeJA=",
        "lastSyncTime": "2025-01-01T12:00:00Z",
        "destinationName": "db-credentials",
        "vaultVersion": 7,
        "conditions": [
            {
                "type": "SecretSynced",
                "status": "True",
                "reason": "Synced",
                "message": "",
                "lastTransitionTime": "2025-01-01T12:00:00Z",
                "observedGeneration": 4,
            }
        ],
        "futureField": "ignored",
    }
    status = VAULT_STATIC_SECRET.status_model.model_validate(server_status)
    assert isinstance(status, VaultStaticSecretStatus)
    assert status.secret_mac == "q83vEjRWeJA=" and status.last_sync_time == T0
    expected = {k: v for k, v in server_status.items() if k != "futureField"}
    assert status.to_k8s() == expected

    dyn = VaultDynamicSecretStatus.model_validate(
        {
            "secretLease": {
                "id": "db/creds/x/abc",
                "duration": 3600,
                "renewable": True,
                "requestID": "r-1",
            }
        }
    )
    assert dyn.secret_lease is not None and dyn.secret_lease.request_id == "r-1"
    assert dyn.to_k8s()["secretLease"]["requestID"] == "r-1"


def test_pki_issuer_ref_selects_the_issuer_path() -> None:
    base = _example("VaultPKISecret")["spec"]
    assert VaultPKISecretSpec.model_validate(base).issue_path() == (
        f"{base['mount']}/issue/{base['role']}"
    )
    named = VaultPKISecretSpec.model_validate({**base, "issuerRef": "second-root_2"})
    assert named.issue_path() == f"{base['mount']}/issuer/second-root_2/issue/{base['role']}"
    assert named.vault_paths() == [named.issue_path()]
    for bad in ("../x", "a/b", "", "a b", "x" * 129):
        with pytest.raises(ValidationError):
            VaultPKISecretSpec.model_validate({**base, "issuerRef": bad})
