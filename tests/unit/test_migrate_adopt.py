"""Adoption of VSO-created Secrets: when it happens, the patch, and every refusal."""

from __future__ import annotations

import base64
from typing import Any

from vaultbridge.migrate.adopt import Adoption, Refusal, decide_adoption, is_vso_secret
from vaultbridge.migrate.convert import ADOPT_ANNOTATION

VSO_UID = "vso-uid-1"
OUR_REF = {
    "apiVersion": "vaultbridge.dev/v1beta1",
    "kind": "VaultStaticSecret",
    "name": "app",
    "uid": "vb-uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}
OUR_LABELS = {
    "app.kubernetes.io/managed-by": "vaultbridge",
    "vaultbridge.dev/owner-kind": "VaultStaticSecret",
    "vaultbridge.dev/owner-name": "app",
}


def b64(v: bytes) -> str:
    return base64.b64encode(v).decode()


def vso_secret(**overrides: Any) -> dict[str, Any]:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "app-db",
            "namespace": "team-a",
            "resourceVersion": "42",
            "labels": {
                "app.kubernetes.io/component": "secret-sync",
                "app.kubernetes.io/managed-by": "hashicorp-vso",
                "app.kubernetes.io/name": "vault-secrets-operator",
                "secrets.hashicorp.com/vso-ownerRefUID": VSO_UID,
                "team": "a",
            },
            "ownerReferences": [
                {
                    "apiVersion": "secrets.hashicorp.com/v1beta1",
                    "kind": "VaultStaticSecret",
                    "name": "app",
                    "uid": VSO_UID,
                }
            ],
        },
        "data": {"password": b64(b"pw")},
    }
    secret["metadata"].update(overrides)
    return secret


def owner(annotation: str | None = f"vso/{VSO_UID}", namespace: str = "team-a") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "app", "namespace": namespace, "uid": "vb-uid-1"}
    if annotation is not None:
        meta["annotations"] = {ADOPT_ANNOTATION: annotation}
    return {"apiVersion": "vaultbridge.dev/v1beta1", "kind": "VaultStaticSecret", "metadata": meta}


def decide(
    secret: dict[str, Any], own: dict[str, Any], data: dict[str, bytes] | None = None
) -> Any:
    return decide_adoption(
        secret,
        own,
        owner_reference=OUR_REF,
        desired_labels=OUR_LABELS,
        desired_data={"password": b"pw"} if data is None else data,
    )


def test_adopts_matching_secret_without_data_write_or_restart() -> None:
    result = decide(vso_secret(), owner())
    assert isinstance(result, Adoption)
    assert result.data_matches and result.differing_keys == ()
    assert result.restart is False
    assert result.patch == {
        "metadata": {
            "resourceVersion": "42",
            "ownerReferences": [OUR_REF],
            "labels": {
                "app.kubernetes.io/component": None,
                "app.kubernetes.io/managed-by": "vaultbridge",
                "app.kubernetes.io/name": None,
                "secrets.hashicorp.com/vso-ownerRefUID": None,
                "vaultbridge.dev/owner-kind": "VaultStaticSecret",
                "vaultbridge.dev/owner-name": "app",
            },
        }
    }
    assert "data" not in result.patch


def test_differing_data_is_reported_by_key_name_only() -> None:
    result = decide(vso_secret(), owner(), {"password": b"new", "user": b"u"})
    assert isinstance(result, Adoption)
    assert not result.data_matches
    assert result.differing_keys == ("password", "user")
    assert result.restart is False


def test_annotation_without_uid_adopts_by_kind_and_name() -> None:
    assert isinstance(decide(vso_secret(), owner("vso")), Adoption)


def test_not_a_vso_secret_is_not_our_business() -> None:
    plain = {"metadata": {"name": "x", "namespace": "team-a", "labels": {"a": "b"}}}
    assert not is_vso_secret(plain)
    assert decide(plain, owner()) is None


def test_refusals() -> None:
    cases = {
        "no intent": (vso_secret(), owner(None)),
        "bad intent": (vso_secret(), owner("helm")),
        "other namespace": (vso_secret(), owner(namespace="team-b")),
        "other uid": (vso_secret(), owner("vso/someone-else")),
        "other object": (
            vso_secret(
                ownerReferences=[
                    {
                        "apiVersion": "secrets.hashicorp.com/v1beta1",
                        "kind": "VaultStaticSecret",
                        "name": "other",
                        "uid": VSO_UID,
                    }
                ]
            ),
            owner(),
        ),
        "other kind": (
            vso_secret(
                ownerReferences=[
                    {
                        "apiVersion": "secrets.hashicorp.com/v1beta1",
                        "kind": "VaultDynamicSecret",
                        "name": "app",
                        "uid": VSO_UID,
                    }
                ]
            ),
            owner(),
        ),
        "other controller": (
            vso_secret(
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Foo",
                        "name": "f",
                        "uid": "x",
                        "controller": True,
                    }
                ]
            ),
            owner(),
        ),
    }
    for label, (secret, own) in cases.items():
        result = decide(secret, own)
        assert isinstance(result, Refusal), label
        assert "pw" not in result.reason, label


def test_label_uid_mismatch_refused() -> None:
    secret = vso_secret(ownerReferences=[])
    secret["metadata"]["labels"]["secrets.hashicorp.com/vso-ownerRefUID"] = "other"
    assert isinstance(decide(secret, owner()), Refusal)


def test_keeps_unrelated_owner_references_and_skips_unchanged_labels() -> None:
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "c1"}
    secret = vso_secret()
    secret["metadata"]["ownerReferences"].append(extra)
    secret["metadata"]["labels"]["vaultbridge.dev/owner-kind"] = "VaultStaticSecret"
    result = decide(secret, owner())
    assert isinstance(result, Adoption)
    assert result.patch["metadata"]["ownerReferences"] == [extra, OUR_REF]
    assert "vaultbridge.dev/owner-kind" not in result.patch["metadata"]["labels"]


def test_unknown_desired_data_means_no_match_claimed() -> None:
    result = decide_adoption(
        vso_secret(),
        owner(),
        owner_reference=OUR_REF,
        desired_labels=OUR_LABELS,
        desired_data=None,
    )
    assert isinstance(result, Adoption) and not result.data_matches


KEY = b"k" * 32


def test_carried_status_dynamic() -> None:
    from vaultbridge.migrate.adopt import carried_status
    from vaultbridge.secrets.hmac import compute_mac

    vso_status = {
        "lastRenewalTime": 1700000000,
        "lastGeneration": 7,
        "secretMAC": "vso-own-mac",
        "secretLease": {
            "id": "db/creds/app/abc",
            "duration": 3600,
            "renewable": True,
            "requestID": "r1",
        },
        "staticCredsMetaData": {
            "lastVaultRotation": 1,
            "rotationPeriod": 60,
            "rotationSchedule": "",
            "ttl": 30,
        },
    }
    data = {"username": b"u", "password": b"p"}
    status = carried_status("VaultDynamicSecret", vso_status, data, hmac_key=KEY, generation=1)
    assert status == {
        "lastGeneration": 1,
        "secretMAC": compute_mac(KEY, data),
        "lastRenewalTime": 1700000000,
        "secretLease": {
            "id": "db/creds/app/abc",
            "duration": 3600,
            "renewable": True,
            "requestID": "r1",
        },
        "staticCredsMetaData": {"lastVaultRotation": 1, "rotationPeriod": 60, "ttl": 30},
    }
    # Our own model accepts it.
    from vaultbridge.api import VaultDynamicSecretStatus

    VaultDynamicSecretStatus.model_validate(status)


def test_carried_status_pki_and_refusals() -> None:
    from vaultbridge.api import VaultPKISecretStatus
    from vaultbridge.migrate.adopt import carried_status

    status = carried_status(
        "VaultPKISecret",
        {"serialNumber": "aa:bb", "expiration": 1800000000, "lastRotation": 1700000000},
        {"certificate": b"pem"},
        hmac_key=KEY,
        generation=2,
    )
    assert status is not None
    assert (status["serialNumber"], status["expiration"], status["lastRotation"]) == (
        "aa:bb",
        1800000000,
        1700000000,
    )
    VaultPKISecretStatus.model_validate(status)
    assert carried_status("VaultPKISecret", {}, {}, hmac_key=KEY, generation=1) is None
    assert (
        carried_status("VaultDynamicSecret", {"lastRenewalTime": 0}, {}, hmac_key=KEY, generation=1)
        is None
    )
    assert carried_status("VaultDynamicSecret", None, {}, hmac_key=KEY, generation=1) is None
    assert carried_status("VaultStaticSecret", {"x": 1}, {}, hmac_key=KEY, generation=1) is None
