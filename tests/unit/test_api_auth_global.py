"""VaultAuthGlobal precedence: lookup, allowedNamespaces, field fill-in and merge strategies."""

from __future__ import annotations

from typing import Any

import pytest

from vaultbridge.api.auth_global import (
    GlobalKey,
    GlobalRefError,
    candidate_keys,
    global_allows,
    merge_auth,
    resolve_global_ref,
)

GLOBAL: dict[str, Any] = {
    "defaultAuthMethod": "kubernetes",
    "defaultMount": "default-mount",
    "defaultVaultNamespace": "default-ns",
    "vaultConnectionRef": "conn",
    "headers": {"H-Default": "d", "H-Both": "default"},
    "params": {"p-default": "d"},
    "kubernetes": {
        "role": "global-role",
        "serviceAccount": "global-sa",
        "audiences": ["vault"],
        "mount": "k8s-mount",
        "headers": {"H-Method": "m", "H-Both": "method"},
    },
    "jwt": {"role": "jwt-role", "namespace": "jwt-ns"},
}


def test_local_fields_override_global() -> None:
    auth = {
        "vaultAuthGlobalRef": {"name": "g"},
        "method": "kubernetes",
        "mount": "local-mount",
        "namespace": "local-ns",
        "vaultConnectionRef": "local-conn",
        "kubernetes": {"role": "local-role"},
    }
    merged = merge_auth(auth, GLOBAL)
    assert merged["mount"] == "local-mount"
    assert merged["namespace"] == "local-ns"
    assert merged["vaultConnectionRef"] == "local-conn"
    assert merged["kubernetes"] == {
        "role": "local-role",
        "serviceAccount": "global-sa",
        "audiences": ["vault"],
    }
    assert "vaultAuthGlobalRef" not in merged


def test_method_block_then_defaults_fill_empty_fields() -> None:
    merged = merge_auth({"vaultAuthGlobalRef": {"name": "g"}}, GLOBAL)
    assert merged["method"] == "kubernetes"
    assert merged["mount"] == "k8s-mount"  # the method block beats defaultMount
    assert merged["namespace"] == "default-ns"
    assert merged["vaultConnectionRef"] == "conn"
    merged_jwt = merge_auth({"vaultAuthGlobalRef": {"name": "g"}, "method": "jwt"}, GLOBAL)
    assert merged_jwt["namespace"] == "jwt-ns"
    assert merged_jwt["mount"] == "default-mount"
    assert merged_jwt["jwt"] == {"role": "jwt-role"}


def test_no_method_anywhere_is_an_error() -> None:
    with pytest.raises(GlobalRefError, match="no method"):
        merge_auth({"vaultAuthGlobalRef": {"name": "g"}}, {})


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (None, {"H-Local": "l", "H-Both": "local"}),
        ("none", {"H-Local": "l", "H-Both": "local"}),
        ("union", {"H-Default": "d", "H-Method": "m", "H-Local": "l", "H-Both": "local"}),
        ("replace", {"H-Local": "l", "H-Both": "local"}),
    ],
)
def test_header_merge_strategies(strategy: str | None, expected: dict[str, str]) -> None:
    ref: dict[str, Any] = {"name": "g"}
    if strategy:
        ref["mergeStrategy"] = {"headers": strategy}
    auth = {"vaultAuthGlobalRef": ref, "headers": {"H-Local": "l", "H-Both": "local"}}
    assert merge_auth(auth, GLOBAL)["headers"] == expected


def test_replace_takes_first_non_empty_set() -> None:
    ref = {"name": "g", "mergeStrategy": {"headers": "replace", "params": "replace"}}
    merged = merge_auth({"vaultAuthGlobalRef": ref}, GLOBAL)
    assert merged["headers"] == {"H-Method": "m", "H-Both": "method"}  # the method block's
    assert merged["params"] == {"p-default": "d"}  # no method params: the defaults


def test_none_strategy_drops_global_maps() -> None:
    merged = merge_auth({"vaultAuthGlobalRef": {"name": "g"}}, GLOBAL)
    assert "headers" not in merged and "params" not in merged


def test_invalid_strategy() -> None:
    with pytest.raises(GlobalRefError, match=r"mergeStrategy\.params"):
        merge_auth({"vaultAuthGlobalRef": {"mergeStrategy": {"params": "both"}}}, GLOBAL)


def test_candidate_keys() -> None:
    ref = {"name": "g"}
    assert candidate_keys(ref, auth_namespace="a", operator_namespace="op") == [GlobalKey("a", "g")]
    ref = {"name": "g", "namespace": "b"}
    assert candidate_keys(ref, auth_namespace="a", operator_namespace="op") == [GlobalKey("b", "g")]
    ref2: dict[str, Any] = {"allowDefault": True}
    assert candidate_keys(ref2, auth_namespace="a", operator_namespace="op") == [
        GlobalKey("a", "default"),
        GlobalKey("op", "default"),
    ]
    ref2["namespace"] = "c"
    assert candidate_keys(ref2, auth_namespace="a", operator_namespace="op") == [
        GlobalKey("c", "default")
    ]
    with pytest.raises(GlobalRefError, match="allowDefault"):
        candidate_keys({}, auth_namespace="a", operator_namespace="op")


def test_allow_default_falls_back_to_operator_namespace() -> None:
    store = {GlobalKey("op", "default"): {"allowedNamespaces": ["*"]}}
    key, _ = resolve_global_ref(
        {"allowDefault": True}, auth_namespace="a", operator_namespace="op", lookup=store.get
    )
    assert key == GlobalKey("op", "default")
    store[GlobalKey("a", "default")] = {}
    key, _ = resolve_global_ref(
        {"allowDefault": True}, auth_namespace="a", operator_namespace="op", lookup=store.get
    )
    assert key == GlobalKey("a", "default")


def test_allowed_namespaces() -> None:
    assert global_allows({}, auth_namespace="a", global_namespace="a")
    assert not global_allows({}, auth_namespace="a", global_namespace="b")
    assert global_allows({"allowedNamespaces": ["*"]}, auth_namespace="a", global_namespace="b")
    assert global_allows({"allowedNamespaces": ["a"]}, auth_namespace="a", global_namespace="b")
    assert not global_allows({"allowedNamespaces": ["c"]}, auth_namespace="a", global_namespace="b")
    store = {GlobalKey("b", "g"): {"allowedNamespaces": ["c"]}}
    with pytest.raises(GlobalRefError, match="does not allow namespace a"):
        resolve_global_ref(
            {"name": "g", "namespace": "b"},
            auth_namespace="a",
            operator_namespace="op",
            lookup=store.get,
        )
    with pytest.raises(GlobalRefError, match="not found"):
        resolve_global_ref(
            {"name": "missing"}, auth_namespace="a", operator_namespace="op", lookup=store.get
        )


# -- the kind and the operator-side entry point ----------------------------------------------


def test_effective_spec_without_ref_is_the_spec_itself() -> None:
    from vaultbridge.api.auth_global import effective_auth_spec

    spec = {"method": "token", "token": {"secretRef": "t"}}
    merged, key = effective_auth_spec(
        spec, auth_namespace="a", operator_namespace="op", lookup=lambda _k: None
    )
    assert (merged, key) == (spec, None)


def test_effective_spec_merges_and_validates_as_a_complete_vaultauth() -> None:
    from vaultbridge.api.auth import VaultAuthSpec
    from vaultbridge.api.auth_global import GlobalNotAllowed, GlobalNotFound, effective_auth_spec

    glob = {**GLOBAL, "allowedNamespaces": ["a"]}
    found = {GlobalKey("platform", "g"): glob}
    ref = {"name": "g", "namespace": "platform", "mergeStrategy": {"headers": "union"}}
    merged, key = effective_auth_spec(
        {"vaultAuthGlobalRef": ref}, auth_namespace="a", operator_namespace="op", lookup=found.get
    )
    assert key == GlobalKey("platform", "g")
    auth = VaultAuthSpec.model_validate(merged)
    assert auth.method == "kubernetes" and auth.kubernetes is not None
    assert (auth.kubernetes.role, auth.kubernetes.service_account) == ("global-role", "global-sa")
    assert auth.effective_mount() == "k8s-mount"
    assert auth.headers == {"H-Default": "d", "H-Both": "method", "H-Method": "m"}
    with pytest.raises(GlobalNotAllowed):
        effective_auth_spec(
            {"vaultAuthGlobalRef": ref},
            auth_namespace="b",
            operator_namespace="op",
            lookup=found.get,
        )
    with pytest.raises(GlobalNotFound):
        effective_auth_spec(
            {"vaultAuthGlobalRef": {"name": "other"}},
            auth_namespace="a",
            operator_namespace="op",
            lookup=found.get,
        )


def test_global_model_and_allowed_namespaces() -> None:
    from pydantic import ValidationError

    from vaultbridge.api.auth_global import VaultAuthGlobalSpec

    spec = VaultAuthGlobalSpec.model_validate(GLOBAL)
    assert spec.kubernetes is not None and spec.kubernetes.mount == "k8s-mount"
    assert spec.allows_namespace("g-ns", own_namespace="g-ns")
    assert not spec.allows_namespace("x", own_namespace="g-ns")
    star = VaultAuthGlobalSpec.model_validate({"allowedNamespaces": ["*"]})
    assert star.allows_namespace("x", own_namespace="g-ns")
    with pytest.raises(ValidationError):
        VaultAuthGlobalSpec.model_validate({"allowedNamespaces": ["*", "a"]})
    with pytest.raises(ValidationError):
        VaultAuthGlobalSpec.model_validate({"defaultAuthMethod": "aws"})
    with pytest.raises(ValidationError):
        VaultAuthGlobalSpec.model_validate({"jwt": {"serviceAccount": "a", "secretRef": "b"}})


def test_vaultauth_resource_spec_is_complete_without_a_global() -> None:
    from pydantic import ValidationError

    from vaultbridge.api.auth import VaultAuthResourceSpec

    VaultAuthResourceSpec.model_validate(
        {"vaultAuthGlobalRef": {"allowDefault": True}, "kubernetes": {"role": "r"}}
    )
    with pytest.raises(ValidationError):
        VaultAuthResourceSpec.model_validate({"kubernetes": {"role": "r"}})  # no method
    with pytest.raises(ValidationError):
        VaultAuthResourceSpec.model_validate({"method": "kubernetes", "kubernetes": {"role": "r"}})
    with pytest.raises(ValidationError):
        VaultAuthResourceSpec.model_validate({"vaultAuthGlobalRef": {}})  # no name, no default


def test_watch_mapper_matches_named_and_default_candidates() -> None:
    from vaultbridge.controllers.watches import auth_uses_global

    def obj(ns: str, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"metadata": {"namespace": ns, "name": name}, "spec": spec or {}}

    named = obj("a", "x", {"vaultAuthGlobalRef": {"name": "g", "namespace": "p"}})
    assert auth_uses_global(named, obj("p", "g"), "op")
    assert not auth_uses_global(named, obj("a", "g"), "op")
    default = obj("a", "y", {"vaultAuthGlobalRef": {"allowDefault": True}})
    assert auth_uses_global(default, obj("a", "default"), "op")
    assert auth_uses_global(default, obj("op", "default"), "op")
    assert not auth_uses_global(default, obj("p", "default"), "op")
    assert not auth_uses_global(obj("a", "z", {"method": "token"}), obj("a", "default"), "op")
