"""VaultPathPolicy semantics: patterns, namespace selection, verdicts, effective paths."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vaultbridge.api.path_policy import VaultPathPolicySpec
from vaultbridge.guard.matching import (
    DEFAULT_ALLOW_ALL,
    DEFAULT_DENY,
    PathPolicy,
    evaluate,
    pattern_matches,
    policy_from_object,
)
from vaultbridge.guard.paths import effective_paths


def policy(name: str, **spec: Any) -> PathPolicy:
    return PathPolicy(name, VaultPathPolicySpec.model_validate(spec))


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("secret/data/team-a/prod/*", "secret/data/team-a/prod/db", True),
        ("secret/data/team-a/prod/*", "secret/data/team-a/prod/db/main", True),
        ("secret/data/team-a/prod/*", "secret/data/team-a/staging/db", False),
        ("secret/data/team-a/prod/*", "secret/data/team-a/prod", False),
        ("database/creds/team-a-*", "database/creds/team-a-app", True),
        ("database/creds/team-a-*", "database/creds/team-b-app", False),
        ("secret/data/*/signing-keys/*", "secret/data/team-a/signing-keys/jwt", True),
        ("secret/data/*/signing-keys/*", "secret/data/a/b/signing-keys/jwt", False),
        ("secret/data/exact", "secret/data/exact", True),
        ("secret/data/exact", "secret/data/exact/more", False),
        ("secret/data/a.b", "secret/data/axb", False),
    ],
)
def test_patterns(pattern: str, path: str, expected: bool) -> None:
    assert pattern_matches(pattern, path) is expected


def test_namespace_placeholder() -> None:
    assert pattern_matches("secret/data/{namespace}/*", "secret/data/team-a/db", "team-a")
    assert not pattern_matches("secret/data/{namespace}/*", "secret/data/team-b/db", "team-a")
    assert not pattern_matches("secret/data/{namespace}/*", "secret/data//db", "")


def test_allow_never_sync_and_default() -> None:
    prod = policy(
        "team-a-prod",
        namespaces=["team-a-prod"],
        allow=["secret/data/team-a/prod/*", "secret/data/{namespace}/*"],
        neverSync=["secret/data/*/signing-keys/*"],
    )
    ok = evaluate([prod], "team-a-prod", None, ["secret/data/team-a/prod/db"])
    assert ok.allowed and ok.policies == ("team-a-prod",)
    assert evaluate([prod], "team-a-prod", None, ["secret/data/team-a-prod/x"]).allowed

    denied = evaluate(
        [prod], "team-a-prod", None, ["secret/data/team-a/prod/db", "secret/data/team-a/dev/db"]
    )
    assert not denied.allowed and denied.reason == "PathNotAllowed"
    assert "'secret/data/team-a/dev/db'" in denied.message
    assert "team-a-prod" in denied.message

    # neverSync of any policy applies everywhere, even to namespaces it does not select and
    # under the allow-all default.
    forbidden = evaluate([prod], "other", None, ["secret/data/other/signing-keys/k"])
    assert forbidden.reason == "SyncForbidden"
    assert (
        "secret/data/*/signing-keys/*" in forbidden.message and "team-a-prod" in forbidden.message
    )

    assert evaluate([prod], "other", None, ["anything/at/all"], DEFAULT_ALLOW_ALL).allowed
    deny = evaluate([prod], "other", None, ["anything/at/all"], DEFAULT_DENY)
    assert deny.reason == "PathNotAllowed" and "default is deny" in deny.message


def test_several_policies_union_their_allows() -> None:
    a = policy("a", namespaces=["ns"], allow=["secret/data/a/*"])
    b = policy("b", namespaces=["ns"], allow=["secret/data/b/*"])
    assert evaluate([a, b], "ns", None, ["secret/data/a/x", "secret/data/b/y"]).allowed
    v = evaluate([a, b], "ns", None, ["secret/data/c/z"])
    assert not v.allowed and "a, b" in v.message


def test_namespace_selector() -> None:
    by_label = policy(
        "prod",
        namespaceSelector={
            "matchLabels": {"env": "prod"},
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}],
        },
        allow=["secret/data/prod/*"],
    )
    assert by_label.selects("x", {"env": "prod", "team": "a"})
    assert not by_label.selects("x", {"env": "prod", "team": "c"})
    assert not by_label.selects("x", {"env": "staging", "team": "a"})
    assert not by_label.selects("x", None)
    exprs = policy(
        "e",
        namespaceSelector={
            "matchExpressions": [
                {"key": "a", "operator": "Exists"},
                {"key": "b", "operator": "DoesNotExist"},
                {"key": "c", "operator": "NotIn", "values": ["1"]},
            ]
        },
    )
    assert exprs.selects("x", {"a": ""})
    assert not exprs.selects("x", {"a": "", "b": ""})
    assert not exprs.selects("x", {"a": "", "c": "1"})
    assert policy("all", namespaceSelector={}).selects("any", {})


def test_spec_needs_exactly_one_selector() -> None:
    with pytest.raises(ValidationError):
        VaultPathPolicySpec.model_validate({"allow": ["x/*"]})
    with pytest.raises(ValidationError):
        VaultPathPolicySpec.model_validate(
            {"namespaces": ["a"], "namespaceSelector": {}, "allow": ["x/*"]}
        )
    assert isinstance(policy_from_object({"metadata": {"name": "bad"}, "spec": {}}), str)
    good = policy_from_object({"metadata": {"name": "p"}, "spec": {"namespaces": ["a"]}})
    assert isinstance(good, PathPolicy) and good.name == "p"


def test_effective_paths_of_every_kind() -> None:
    dest = {"destination": {"name": "d", "create": True}}
    assert effective_paths(
        "VaultStaticSecret", {"mount": "secret", "path": "team-a/db", "type": "kv-v2", **dest}
    ) == ["secret/data/team-a/db"]
    assert effective_paths(
        "VaultStaticSecret", {"mount": "kv1", "path": "team-a/db", "type": "kv-v1", **dest}
    ) == ["kv1/team-a/db"]
    assert effective_paths(
        "VaultStaticSecret",
        {
            "sources": [
                {"mount": "secret", "path": "a", "type": "kv-v2"},
                {"mount": "kv", "path": "b", "type": "kv-v1", "prefix": "b_"},
            ],
            **dest,
        },
    ) == ["secret/data/a", "kv/b"]
    assert effective_paths(
        "VaultDynamicSecret", {"mount": "database", "path": "creds/app", **dest}
    ) == ["database/creds/app"]
    assert effective_paths("VaultPKISecret", {"mount": "pki", "role": "web", **dest}) == [
        "pki/issue/web"
    ]


def test_the_multi_environment_example_in_security_md_means_what_it_says() -> None:
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    block = doc[doc.index("### Example: one cluster, three environments") :]
    text = re.search(r"```yaml\n(.*?)```", block, re.DOTALL).group(1)  # type: ignore[union-attr]
    policies = []
    for obj in yaml.safe_load_all(text):
        parsed = policy_from_object(obj)
        assert isinstance(parsed, PathPolicy), parsed
        policies.append(parsed)
    prod, staging = {"environment": "prod"}, {"environment": "staging"}

    def verdict(ns: str, labels: dict[str, str], path: str) -> str:
        v = evaluate(policies, ns, labels, [path], DEFAULT_DENY)
        return "ok" if v.allowed else v.reason

    assert verdict("shop-prod", prod, "secret/data/shop/prod/db") == "ok"
    assert verdict("shop-prod", prod, "secret/data/shop-prod/db") == "ok"
    assert verdict("shop-prod", prod, "database/creds/shop-prod") == "ok"
    assert verdict("shop-prod", prod, "secret/data/shop/staging/db") == "PathNotAllowed"
    assert verdict("shop-staging", staging, "secret/data/shop/staging/db") == "ok"
    assert verdict("shop-staging", staging, "secret/data/shop/prod/db") == "PathNotAllowed"
    assert verdict("shop-staging", staging, "secret/data/shop/staging/signing-keys/jwt") == (
        "SyncForbidden"
    )
    assert verdict("ingress", {}, "pki/issue/ingress") == "ok"
    assert verdict("new-team", {}, "secret/data/new-team/x") == "PathNotAllowed"
    message = evaluate(
        policies, "shop-staging", staging, ["secret/data/shop/prod/db"], DEFAULT_DENY
    ).message
    assert message in " ".join(block.split())
