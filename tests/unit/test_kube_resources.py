"""REST paths of resources, error typing from Status objects, object accessors."""

from __future__ import annotations

import pytest

from vaultbridge.api.kinds import (
    SECRET_TRANSFORMATIONS,
    VAULT_AUTHS,
    VAULT_CONNECTIONS,
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
    VAULT_STATIC_SECRETS,
)
from vaultbridge.api.labels import managed_by_selector
from vaultbridge.kube import objects
from vaultbridge.kube.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ResourceExpired,
    Unauthorized,
    api_error_from_status,
)
from vaultbridge.kube.resources import (
    CRDS,
    DEPLOYMENTS,
    LEASES,
    NAMESPACES,
    SECRETS,
    SERVICE_ACCOUNTS,
)


def test_core_paths() -> None:
    assert SECRETS.path() == "/api/v1/secrets"
    assert SECRETS.path("ns") == "/api/v1/namespaces/ns/secrets"
    assert SECRETS.path("ns", "s") == "/api/v1/namespaces/ns/secrets/s"
    assert (
        SERVICE_ACCOUNTS.path("ns", "default", "token")
        == "/api/v1/namespaces/ns/serviceaccounts/default/token"
    )
    assert NAMESPACES.path() == "/api/v1/namespaces"
    assert NAMESPACES.path(name="ns") == "/api/v1/namespaces/ns"
    assert SECRETS.api_version == "v1"


def test_group_paths() -> None:
    assert DEPLOYMENTS.path("ns", "web") == "/apis/apps/v1/namespaces/ns/deployments/web"
    assert LEASES.path("ns", "l") == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"
    assert CRDS.path(name="x.y") == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.y"
    assert (
        VAULT_STATIC_SECRETS.path("ns", "a", "status")
        == "/apis/vaultbridge.dev/v1beta1/namespaces/ns/vaultstaticsecrets/a/status"
    )
    assert VAULT_STATIC_SECRETS.api_version == "vaultbridge.dev/v1beta1"


def test_our_kinds() -> None:
    kinds = {
        r.kind: r.plural
        for r in (
            VAULT_CONNECTIONS,
            VAULT_AUTHS,
            VAULT_STATIC_SECRETS,
            VAULT_DYNAMIC_SECRETS,
            VAULT_PKI_SECRETS,
            SECRET_TRANSFORMATIONS,
        )
    }
    assert kinds == {
        "VaultConnection": "vaultconnections",
        "VaultAuth": "vaultauths",
        "VaultStaticSecret": "vaultstaticsecrets",
        "VaultDynamicSecret": "vaultdynamicsecrets",
        "VaultPKISecret": "vaultpkisecrets",
        "SecretTransformation": "secrettransformations",
    }


def test_path_misuse_is_rejected_and_segments_are_quoted() -> None:
    with pytest.raises(ValueError):
        NAMESPACES.path("ns")
    with pytest.raises(ValueError):
        SECRETS.path(name="s")
    with pytest.raises(ValueError):
        SECRETS.path("ns", subresource="status")
    with pytest.raises(ValueError):
        SECRETS.path("ns", "..")
    assert SECRETS.path("ns", "a/b?c") == "/api/v1/namespaces/ns/secrets/a%2Fb%3Fc"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (410, ResourceExpired),
        (422, Invalid),
        (500, ApiError),
    ],
)
def test_error_class_by_status(status: int, cls: type[ApiError]) -> None:
    err = api_error_from_status(
        status,
        {"kind": "Status", "reason": "R", "message": "m", "details": {"name": "x"}, "code": status},
    )
    assert type(err) is cls
    assert (err.status, err.reason, err.message, err.details) == (status, "R", "m", {"name": "x"})


def test_watch_error_code_inside_status_wins_and_junk_is_tolerated() -> None:
    err = api_error_from_status(500, {"code": 410, "reason": "Expired", "message": "too old"})
    assert isinstance(err, ResourceExpired) and err.status == 410
    junk = api_error_from_status(502, "<html>bad gateway</html>")
    assert type(junk) is ApiError and junk.status == 502
    huge = api_error_from_status(422, {"message": "x" * 10_000})
    assert len(huge.message) == 1024


def test_object_accessors() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "7",
            "generation": 3,
            "labels": {"a": "b"},
            "annotations": {"c": "d"},
            "ownerReferences": [{"kind": "X", "name": "x", "controller": True}, "junk"],
        },
    }
    assert (objects.name(obj), objects.namespace(obj), objects.uid(obj)) == ("s", "ns", "u")
    assert objects.resource_version(obj) == "7" and objects.generation(obj) == 3
    assert objects.labels(obj) == {"a": "b"} and objects.annotations(obj) == {"c": "d"}
    assert objects.controller_owner(obj) == {"kind": "X", "name": "x", "controller": True}
    assert len(objects.owner_references(obj)) == 1
    assert not objects.is_deleting(obj)
    empty: dict[str, object] = {}
    assert objects.name(empty) == "" and objects.labels(empty) == {}
    assert objects.generation(empty) == 0 and objects.controller_owner(empty) is None
    assert objects.api_group("apps/v1") == "apps" and objects.api_group("v1") == ""
    assert managed_by_selector() == "app.kubernetes.io/managed-by=vaultbridge"
    assert objects.is_label_value("a" * 63) and not objects.is_label_value("a" * 64)
    assert not objects.is_label_value("-bad")


def test_segments_are_quoted_as_quote_quotes_them() -> None:
    """The unquoted fast path (names made of unreserved characters) changes no path."""
    from urllib.parse import quote

    from vaultbridge.kube.resources import _segment

    for char in map(chr, range(0x250)):
        for value in (char, f"a{char}b", char * 2, f"ns-1{char}"):
            if value not in (".", ".."):
                assert _segment(value) == quote(value, safe=""), repr(value)
