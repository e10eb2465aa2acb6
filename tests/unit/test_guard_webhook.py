"""Admission reviews (pure, from a fixed policy source) and the webhook's certificates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from vaultbridge.api.path_policy import VaultPathPolicySpec
from vaultbridge.guard import certs
from vaultbridge.guard.matching import PathPolicy
from vaultbridge.guard.webhook import review_response
from vaultbridge.guard.webhook_config import webhook_manifest


class FixedSource:
    def __init__(self, policies: Sequence[PathPolicy], labels: Mapping[str, str] | None) -> None:
        self._policies = list(policies)
        self._labels = labels

    def policies(self) -> Sequence[PathPolicy]:
        return self._policies

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._labels

    @property
    def synced(self) -> bool:
        return True


SOURCE = FixedSource(
    [
        PathPolicy(
            "team-a",
            VaultPathPolicySpec.model_validate(
                {
                    "namespaces": ["team-a"],
                    "allow": ["secret/data/team-a/*"],
                    "neverSync": ["secret/data/*/signing-keys/*"],
                }
            ),
        )
    ],
    None,
)


def review(path: str, operation: str = "CREATE", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": "db", "namespace": "team-a"},
        "spec": {
            "mount": "secret",
            "type": "kv-v2",
            "path": path,
            "destination": {"name": "db", "create": True},
        },
    }
    obj["metadata"].update(extra.pop("metadata", {}))
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "vaultbridge.dev", "version": "v1beta1", "kind": "VaultStaticSecret"},
            "namespace": "team-a",
            "operation": operation,
            "object": obj,
            **extra,
        },
    }


def test_allowed_and_denied_answers() -> None:
    ok = review_response(review("team-a/db"), SOURCE)
    assert ok["response"] == {"uid": "u-1", "allowed": True}
    assert ok["kind"] == "AdmissionReview"

    bad = review_response(review("team-b/db"), SOURCE)["response"]
    assert bad["allowed"] is False and bad["uid"] == "u-1"
    assert bad["status"]["code"] == 403
    msg = bad["status"]["message"]
    assert "VaultStaticSecret team-a/db" in msg
    assert "secret/data/team-b/db" in msg and "team-a" in msg
    assert bad["status"]["details"]["causes"][0]["reason"] == "PathNotAllowed"

    never = review_response(review("team-a/signing-keys/jwt"), SOURCE)["response"]
    assert never["allowed"] is False
    assert never["status"]["details"]["causes"][0]["reason"] == "SyncForbidden"


def test_updates_that_keep_the_spec_and_deletions_pass() -> None:
    old = review("team-b/db")["request"]["object"]
    assert review_response(review("team-b/db", "UPDATE", oldObject=old), SOURCE)["response"][
        "allowed"
    ]
    changed = dict(old, spec=dict(old["spec"], path="team-b/other"))
    assert not review_response(review("team-b/db", "UPDATE", oldObject=changed), SOURCE)[
        "response"
    ]["allowed"]
    deleting = review("team-b/db", "UPDATE", metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"})
    assert review_response(deleting, SOURCE)["response"]["allowed"]


def test_other_kinds_and_invalid_specs_pass() -> None:
    r = review("team-b/db")
    r["request"]["kind"]["kind"] = "VaultAuth"
    assert review_response(r, SOURCE)["response"]["allowed"]
    r = review("team-b/db")
    del r["request"]["object"]["spec"]["type"]
    assert review_response(r, SOURCE)["response"]["allowed"]


def test_manifest_is_explicit_about_failure_and_timeout() -> None:
    m = webhook_manifest("vb", url="https://127.0.0.1:9443/validate", ca_bundle=b"pem")
    hook, connections = m["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "None" and hook["clientConfig"]["caBundle"] == "cGVt"
    assert set(hook["rules"][0]["resources"]) == {
        "vaultstaticsecrets",
        "vaultdynamicsecrets",
        "vaultpkisecrets",
    }
    # VaultConnection addresses: same server, fails open (the reconcile is the boundary).
    assert connections["rules"][0]["resources"] == ["vaultconnections"]
    assert connections["failurePolicy"] == "Ignore"
    assert connections["clientConfig"] == hook["clientConfig"]


def test_ca_and_leaf_rotation_rules() -> None:
    ca = certs.new_ca("test-ca")
    leaf, _key = certs.issue_leaf(ca, ["svc.ns.svc", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(leaf)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.ns.svc"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer == ca.cert.subject
    assert not certs.leaf_needs_renewal(leaf, ca, ["svc.ns.svc", "127.0.0.1"])
    assert certs.leaf_needs_renewal(leaf, ca, ["other"])  # hosts changed
    assert certs.leaf_needs_renewal(None, ca, ["svc.ns.svc"])
    other = certs.new_ca("other-ca")
    assert certs.leaf_needs_renewal(leaf, other, ["svc.ns.svc", "127.0.0.1"])  # CA rotated
    # A rotated CA keeps the previous one in the bundle while it is valid.
    rotated = certs.new_ca("test-ca", previous=ca)
    assert rotated.bundle_pem == rotated.cert_pem + ca.cert_pem
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert certs.LEAF_RENEW_BEFORE < left <= certs.LEAF_VALIDITY
