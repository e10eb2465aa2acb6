"""Classification of Vault answers into typed errors with condition reasons."""

from __future__ import annotations

from typing import Any

import pytest

from vaultbridge.vault import errors as e
from vaultbridge.vault.errors import classify

PERM = {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}


@pytest.mark.parametrize(
    ("status", "body", "cls", "reason"),
    [
        (400, {"errors": ["missing client token"]}, e.InvalidRequest, "VaultInvalidRequest"),
        (403, PERM, e.PermissionDenied, "VaultPermissionDenied"),
        (404, {"errors": []}, e.NotFound, "VaultNotFound"),
        (404, None, e.NotFound, "VaultNotFound"),
        (405, {"errors": ["unsupported operation"]}, e.InvalidRequest, "VaultInvalidRequest"),
        (
            429,
            {"errors": ["request path x: rate limit quota exceeded"]},
            e.VaultThrottled,
            "VaultThrottled",
        ),
        (503, {"errors": ["Vault is sealed"]}, e.SealedOrUnavailable, "VaultSealedOrUnavailable"),
        (
            503,
            {"errors": ["local node not active but active cluster node not found"]},
            e.SealedOrUnavailable,
            "VaultSealedOrUnavailable",
        ),
        (502, None, e.SealedOrUnavailable, "VaultSealedOrUnavailable"),
        (504, "<html>gateway</html>", e.SealedOrUnavailable, "VaultSealedOrUnavailable"),
        (500, {"errors": ["internal error"]}, e.ServerError, "VaultServerError"),
        (302, None, e.BadResponse, "VaultBadResponse"),
    ],
)
def test_status_and_body_map_to_typed_errors(
    status: int, body: Any, cls: type[e.VaultError], reason: str
) -> None:
    err = classify(status, body, path="secret/data/app", operation="kv_read")
    assert type(err) is cls
    assert err.reason == reason
    assert err.status == status
    assert err.path == "secret/data/app"
    assert err.operation == "kv_read"
    assert isinstance(err, e.VaultError)


def test_redirects_are_reported_not_followed() -> None:
    err = classify(307, None, path="secret/data/app")
    assert isinstance(err, e.BadResponse)
    assert "redirect (307) not followed" in str(err)


def test_sealed_is_named_in_the_message() -> None:
    assert "sealed" in str(classify(503, {"errors": ["Vault is sealed"]}))
    assert "unavailable" in str(classify(503, None))


def test_vault_multi_line_errors_are_tidied_into_one_line() -> None:
    err = classify(403, PERM, path="secret/data/x")
    assert err.errors == ["permission denied"]
    assert str(err) == "permission denied, path=secret/data/x, status=403: permission denied"


def test_errors_are_bounded_in_count_and_length() -> None:
    err = classify(400, {"errors": ["x" * 5000] * 50})
    assert len(err.errors) == 5
    assert all(len(m) <= 300 for m in err.errors)


def test_only_errors_strings_are_kept_never_response_data() -> None:
    body = {"errors": ["bad", 42, {"nested": "s3cr3t"}], "data": {"password": "s3cr3t"}}
    err = classify(400, body)
    assert err.errors == ["bad"]
    assert "s3cr3t" not in str(err)
    assert "s3cr3t" not in repr(err.args)


def test_deleted_kv2_version_is_a_distinct_not_found() -> None:
    body = {
        "data": {
            "data": None,
            "metadata": {
                "created_time": "2026-01-01T00:00:00Z",
                "deletion_time": "2026-01-02T00:00:00Z",
                "destroyed": False,
                "version": 3,
            },
        }
    }
    err = classify(404, body, path="secret/data/app")
    assert isinstance(err, e.SecretVersionDeleted)
    assert isinstance(err, e.NotFound)
    assert err.reason == "VaultSecretVersionDeleted"
    assert err.version == 3
    assert not err.destroyed


def test_destroyed_kv2_version_is_flagged() -> None:
    body = {
        "data": {"data": None, "metadata": {"deletion_time": "", "destroyed": True, "version": 1}}
    }
    err = classify(404, body)
    assert isinstance(err, e.SecretVersionDeleted)
    assert err.destroyed


def test_404_with_live_metadata_is_plain_not_found() -> None:
    body = {"data": {"metadata": {"deletion_time": "", "destroyed": False}}}
    assert type(classify(404, body)) is e.NotFound


@pytest.mark.parametrize(
    ("cls", "reason", "parent"),
    [
        (e.VaultUnreachable, "VaultUnreachable", e.VaultError),
        (e.VaultTLSError, "VaultTLSError", e.VaultUnreachable),
        (e.VaultTimeout, "VaultTimeout", e.VaultUnreachable),
        (e.BadResponse, "VaultBadResponse", e.VaultError),
        (e.InvalidPath, "VaultInvalidPath", e.InvalidRequest),
        (e.NamespacesUnsupported, "VaultNamespacesUnsupported", e.InvalidRequest),
    ],
)
def test_transport_level_errors_have_reasons_and_hierarchy(
    cls: type[e.VaultError], reason: str, parent: type[e.VaultError]
) -> None:
    assert cls.reason == reason
    assert issubclass(cls, parent)
    err = cls("cannot reach", operation="kv_read")
    assert err.status is None
    assert err.errors == []


def test_condition_reasons_are_valid_kubernetes_reasons() -> None:
    # metav1.Condition.reason: ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$, at most 1024 chars
    import re

    pattern = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    # A set: `RateLimited` is the former name of `VaultThrottled`, not another class.
    classes = {c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.VaultError)}
    assert len(classes) == 14
    for c in classes:
        assert pattern.match(c.reason), c
    assert len({c.reason for c in classes}) == len(classes)


@pytest.mark.parametrize(
    ("method", "capability"),
    [
        ("GET", "read"),
        ("LIST", "list"),
        ("DELETE", "delete"),
        ("PUT", "update"),
        ("POST", "update"),
    ],
)
def test_permission_denied_names_path_and_capability(method: str, capability: str) -> None:
    err = e.classify(
        403, {"errors": ["permission denied"]}, path="kv/data/app", operation="x", method=method
    )
    assert isinstance(err, e.PermissionDenied)
    assert err.capability == capability
    assert f"a policy must grant {capability!r} on 'kv/data/app'" in str(err)


def test_throttled_carries_retry_after() -> None:
    err = e.classify(429, None, path="kv/data/app", retry_after=2.5)
    assert isinstance(err, e.VaultThrottled)
    assert e.RateLimited is e.VaultThrottled
    assert err.retry_after == 2.5
    assert err.reason == "VaultThrottled"
