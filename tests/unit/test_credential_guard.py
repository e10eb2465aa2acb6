"""The pure parts of the credential guard: the Vault address allow-list, its admission answer,
the spec rules that refuse credential-injecting destinations and unsafe defaults, the audit
findings, and the guard's decisions given what an API server answers.

(What the guard does against the real API server — TokenReview, opt-in, no TokenRequest — is in
tests/integration/test_credential_guard.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vaultbridge.api.auth import VAULT_LOGIN_ANNOTATION, VaultAuthSpec
from vaultbridge.api.connection import VaultConnectionSpec
from vaultbridge.api.destination import Destination
from vaultbridge.controllers.credential_guard import (
    AUDIENCE_VERDICT_SECONDS,
    CredentialGuard,
    TokenGrant,
)
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.guard.addresses import AddressAllowList
from vaultbridge.guard.audit.analyse import analyse
from vaultbridge.guard.audit.collect import cluster_grants
from vaultbridge.guard.audit.model import Inventory, NamespaceInfo, VaultConnectionInfo
from vaultbridge.guard.webhook import review_response
from vaultbridge.kube.errors import Forbidden, KubeUnreachable
from vaultbridge.settings import Settings


@pytest.mark.parametrize(
    ("entry", "address", "allowed"),
    [
        ("https://vault.example:8200", "https://vault.example:8200", True),
        ("https://vault.example:8200", "https://VAULT.example:8200/", True),
        ("https://vault.example", "https://vault.example:443", True),
        ("https://vault.example", "http://vault.example", False),  # scheme matters
        ("https://vault.example:8200", "https://vault.example:8201", False),
        ("https://vault.example:8200", "https://vault.example.evil.test:8200", False),
        ("https://vault.example:8200", "https://evil.test:8200/vault.example:8200", False),
        ("https://*.vault.svc:8200", "https://a.vault.svc:8200", True),
        ("https://*.vault.svc:8200", "https://vault.svc:8200", False),
        ("https://*.vault.svc:8200", "https://a.b.vault.svc:8200", False),
        ("https://proxy.example/vault", "https://proxy.example/vault/v1", True),
        ("https://proxy.example/vault", "https://proxy.example/vaultx", False),
        ("https://proxy.example/vault", "https://proxy.example/", False),
        ("https://vault.example", "https://user@vault.example", False),
        ("https://vault.example", "not a url", False),
    ],
)
def test_address_allow_list(entry: str, address: str, allowed: bool) -> None:
    assert AddressAllowList.parse(entry).allows(address) is allowed


def test_empty_list_allows_everything_and_bad_entries_are_refused() -> None:
    empty = AddressAllowList.parse(" , ")
    assert not empty.restricted and empty.allows("http://anything:1")
    both = AddressAllowList.parse("https://a.example, https://b.example:8200")
    assert both.allows("https://b.example:8200") and not both.allows("https://c.example")
    refusal = both.refusal("https://c.example")
    assert refusal is not None and "https://a.example" in refusal
    for bad in ("ftp://x", "https://", "https://u:p@x"):
        with pytest.raises(ValueError, match=r"scheme|host|user"):
            AddressAllowList.parse(bad)


def _connection_review(address: str, operation: str = "CREATE", **extra: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultConnection",
        "metadata": {"name": "evil", "namespace": "team-a"},
        "spec": {"address": address},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-2",
            "kind": {"group": "vaultbridge.dev", "version": "v1beta1", "kind": "VaultConnection"},
            "namespace": "team-a",
            "operation": operation,
            "object": obj,
            **extra,
        },
    }


def test_webhook_refuses_connections_outside_the_allow_list() -> None:
    allow = AddressAllowList.parse("https://vault.example:8200")
    ok = review_response(_connection_review("https://vault.example:8200"), None, addresses=allow)
    assert ok["response"]["allowed"] is True
    bad = review_response(_connection_review("http://127.0.0.1:9"), None, addresses=allow)
    response = bad["response"]
    assert response["allowed"] is False
    assert response["status"]["details"]["causes"][0]["reason"] == "VaultAddressNotAllowed"
    assert "VaultConnection team-a/evil" in response["status"]["message"]
    # No list: every address is admitted (the documented default).
    assert review_response(_connection_review("http://127.0.0.1:9"), None)["response"]["allowed"]
    # An object stored before the list was tightened can still get metadata edits.
    old = _connection_review("http://127.0.0.1:9")["request"]["object"]
    same = _connection_review("http://127.0.0.1:9", "UPDATE", oldObject=old)
    assert review_response(same, None, addresses=allow)["response"]["allowed"]


@pytest.mark.parametrize(
    "dest",
    [
        {"type": "kubernetes.io/service-account-token"},
        {"type": "bootstrap.kubernetes.io/token"},
        {"annotations": {"kubernetes.io/service-account.name": "deployer"}},
        {"annotations": {"kubernetes.io/service-account.uid": "x"}},
    ],
)
def test_destinations_kubernetes_fills_with_credentials_are_refused(dest: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"ServiceAccount token|credentials"):
        Destination.model_validate({"name": "d", "create": True, **dest})
    Destination.model_validate({"name": "d", "type": "kubernetes.io/tls"})


def test_service_account_tokens_default_to_the_vault_audience() -> None:
    spec = VaultAuthSpec.model_validate(
        {"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "default"}}
    )
    assert spec.kubernetes is not None and spec.kubernetes.audiences == ["vault"]
    other = VaultAuthSpec.model_validate(
        {"method": "jwt", "jwt": {"role": "r", "serviceAccount": "default"}}
    )
    assert other.jwt is not None and other.jwt.audiences == ["vault"]
    # The default list is a fresh copy per object.
    spec.kubernetes.audiences.append("x")
    again = VaultAuthSpec.model_validate(
        {"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "default"}}
    )
    assert again.kubernetes is not None and again.kubernetes.audiences == ["vault"]


def test_connections_are_usable_from_their_own_namespace_unless_they_say_otherwise() -> None:
    own = VaultConnectionSpec.model_validate({"address": "https://v:8200"})
    assert own.allows_namespace("a", own_namespace="a")
    assert not own.allows_namespace("b", own_namespace="a")
    listed = VaultConnectionSpec.model_validate(
        {"address": "https://v:8200", "allowedNamespaces": ["b"]}
    )
    assert listed.allows_namespace("b", own_namespace="a")
    assert not listed.allows_namespace("c", own_namespace="a")
    star = VaultConnectionSpec.model_validate(
        {"address": "https://v:8200", "allowedNamespaces": ["*"]}
    )
    assert star.allows_namespace("c", own_namespace="a")
    with pytest.raises(ValidationError, match="only entry"):
        VaultConnectionSpec.model_validate(
            {"address": "https://v:8200", "allowedNamespaces": ["*", "b"]}
        )


def test_audit_reports_connections_outside_the_list_and_privileged_vault_logins() -> None:
    cluster_roles = [
        {"metadata": {"name": "cluster-admin"}, "rules": [{"verbs": ["*"], "resources": ["*"]}]},
        {"metadata": {"name": "viewer"}, "rules": [{"verbs": ["get"], "resources": ["pods"]}]},
    ]

    def binding(name: str, role: str, sa: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "roleRef": {"kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "namespace": "team-a", "name": sa}],
        }

    inv = Inventory(
        namespaces=[NamespaceInfo("team-a")],
        connections=[
            VaultConnectionInfo("team-a", "evil", "http://attacker.example:8200"),
            VaultConnectionInfo("team-a", "ok", "https://vault.example:8200"),
        ],
        vault_login_accounts=["team-a/deployer", "team-a/app"],
        cluster_grants=cluster_grants(
            cluster_roles,
            [
                binding("ci", "cluster-admin", "deployer"),
                binding("view", "viewer", "app"),
                binding("other", "cluster-admin", "not-opted-in"),
            ],
        ),
    )
    report = analyse(inv, allowed_addresses=AddressAllowList.parse("https://vault.example:8200"))
    found = {(f.code, f.subject, f.severity) for f in report.findings}
    assert found == {
        ("CONNECTION_OUTSIDE_ALLOW_LIST", "VaultConnection team-a/evil", "high"),
        ("VAULT_LOGIN_SA_CLUSTER_RIGHTS", "ServiceAccount team-a/deployer", "critical"),
        ("VAULT_LOGIN_SA_CLUSTER_RIGHTS", "ServiceAccount team-a/app", "high"),
    }
    # Without a list, no connection is reported (the audit cannot know the operator's flag).
    report = analyse(inv)
    assert not [f for f in report.findings if f.code == "CONNECTION_OUTSIDE_ALLOW_LIST"]


class _FakeKube:
    """The four API calls the guard makes, answered like an API server whose audiences are
    `api_audiences` (a pure-logic double: the real one is in the integration test)."""

    def __init__(self, api_audiences: set[str], issuer: str | None = None) -> None:
        self.api_audiences = api_audiences
        self.issuer = issuer
        self.annotations: dict[str, str] = {VAULT_LOGIN_ANNOTATION: "true"}
        self.token_requests: list[list[str]] = []
        self.reviews = 0
        self.review_error: Exception | None = None

    async def get(self, _res: Any, name: str, namespace: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "annotations": self.annotations}}

    async def openid_configuration(self) -> dict[str, Any]:
        if self.issuer is None:
            raise KubeUnreachable("no discovery")
        return {"issuer": self.issuer}

    async def create_token(
        self, _ns: str, _sa: str, audiences: list[str], expiration_seconds: int
    ) -> str:
        self.token_requests.append(list(audiences))
        return "aud=" + ",".join(audiences)

    async def create_object(self, _res: Any, body: dict[str, Any]) -> dict[str, Any]:
        self.reviews += 1
        if self.review_error is not None:
            raise self.review_error
        token_audiences = set(body["spec"]["token"].removeprefix("aud=").split(","))
        return {"status": {"authenticated": bool(token_audiences & self.api_audiences)}}


def _grant(*audiences: str) -> TokenGrant:
    return TokenGrant(
        auth_key=ObjectKey("team-a", "auth"),
        connection_key=ObjectKey("team-a", "conn"),
        connection=VaultConnectionSpec.model_validate({"address": "https://vault.example"}),
        namespace="team-a",
        service_account="deployer",
        audiences=audiences,
        expiration_seconds=600,
    )


def _guard(kube: _FakeKube, audiences: str, now: list[float]) -> CredentialGuard:
    settings = Settings(allowed_token_audiences=audiences)
    return CredentialGuard(kube, settings, clock=lambda: now[0])  # type: ignore[arg-type]


async def test_guard_drops_a_token_the_api_server_accepts_and_remembers() -> None:
    # The API server accepts `api` (an --api-audiences entry that is not its issuer), and the
    # flag lists it by mistake: the TokenReview finds out, the token is never returned.
    kube = _FakeKube({"api"}, issuer=None)
    now = [0.0]
    guard = _guard(kube, "vault,api", now)
    with pytest.raises(ReconcileProblem) as refused:
        await guard.service_account_token(_grant("api"))
    assert refused.value.reason == "AudienceNotAllowed" and not refused.value.retry
    assert "aud=" not in refused.value.message  # the token is in no message
    assert kube.token_requests == [["api"]] and kube.reviews == 1
    # Remembered: the next attempt is refused before any TokenRequest...
    with pytest.raises(ReconcileProblem):
        await guard.service_account_token(_grant("api"))
    assert kube.token_requests == [["api"]] and kube.reviews == 1
    # ...until the verdict expires, when the API server is asked again.
    now[0] += AUDIENCE_VERDICT_SECONDS
    with pytest.raises(ReconcileProblem):
        await guard.service_account_token(_grant("api"))
    assert len(kube.token_requests) == 2 and kube.reviews == 2

    # The Vault audience: reviewed once (refused by the API server), then trusted from cache.
    assert await guard.service_account_token(_grant("vault")) == "aud=vault"
    assert await guard.service_account_token(_grant("vault")) == "aud=vault"
    assert kube.reviews == 3


async def test_guard_refuses_before_any_token_request() -> None:
    kube = _FakeKube({"https://issuer.example"}, issuer="https://issuer.example")
    now = [0.0]
    guard = _guard(kube, "vault,https://issuer.example", now)
    for audiences, words in [
        (("https://issuer.example",), "issuer"),
        ((), "no audience"),
        (("other",), "other not allowed"),
        (("vault", "other"), "other not allowed"),
    ]:
        with pytest.raises(ReconcileProblem, match=words) as refused:
            await guard.service_account_token(_grant(*audiences))
        assert refused.value.reason == "AudienceNotAllowed"
    kube.annotations = {}
    with pytest.raises(ReconcileProblem) as refused:
        await guard.service_account_token(_grant("vault"))
    assert refused.value.reason == "ServiceAccountNotAllowed"
    kube.annotations = {VAULT_LOGIN_ANNOTATION: "yes"}  # only "true" opts in
    with pytest.raises(ReconcileProblem):
        await guard.service_account_token(_grant("vault"))
    assert kube.token_requests == [] and kube.reviews == 0

    outside = _guard(kube, "vault", now)
    outside.addresses = AddressAllowList.parse("https://other.example")
    kube.annotations = {VAULT_LOGIN_ANNOTATION: "true"}
    with pytest.raises(ReconcileProblem) as refused:
        await outside.service_account_token(_grant("vault"))
    assert refused.value.reason == "VaultAddressNotAllowed"
    assert kube.token_requests == []


async def test_guard_fails_closed_when_the_review_fails() -> None:
    kube = _FakeKube(set())
    kube.review_error = Forbidden(403, "Forbidden", "tokenreviews is forbidden")
    guard = _guard(kube, "vault", [0.0])
    with pytest.raises(ReconcileProblem) as refused:
        await guard.service_account_token(_grant("vault"))
    assert refused.value.reason == "AudienceCheckFailed" and refused.value.retry
    assert "aud=" not in refused.value.message
