"""VaultAccess with VaultAuthGlobals: the merged spec, the reasons a global makes a VaultAuth
unusable, and the global's place in the client-cache key (pure parts, fake informers)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from vaultbridge.api.kinds import VAULT_AUTH_GLOBALS
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.controllers.resolution import ResolvedAuth
from vaultbridge.controllers.vault_access import VaultAccess
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.client import KubeClient
from vaultbridge.persistence.token_store import ClientKey

from ..fakes import make_ctx

AUTH_KEY = ObjectKey("team-a", "via-global")


def _global(name: str = "shared", ns: str = "platform", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultAuthGlobal",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "generation": 3},
        "spec": {
            "defaultAuthMethod": "kubernetes",
            "kubernetes": {"role": "r", "serviceAccount": "default"},
            **spec,
        },
    }


def _auth(**ref: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": AUTH_KEY.name, "namespace": AUTH_KEY.namespace},
        "spec": {"vaultAuthGlobalRef": {"name": "shared", "namespace": "platform", **ref}},
    }


def _access(*globals_: dict[str, Any]) -> VaultAccess:
    h = make_ctx()
    h.ctx.informers[VAULT_AUTH_GLOBALS] = Informer(cast(KubeClient, h.kube), VAULT_AUTH_GLOBALS)
    for obj in globals_:
        h.cache(VAULT_AUTH_GLOBALS, obj)
    return VaultAccess(h.ctx)


def test_merged_spec_and_the_global_used() -> None:
    access = _access(_global(allowedNamespaces=["team-a"]))
    auth, glob = access.effective_auth(AUTH_KEY, _auth())
    assert auth.method == "kubernetes" and auth.kubernetes is not None
    assert auth.kubernetes.role == "r"
    assert glob is not None and glob["metadata"]["name"] == "shared"


@pytest.mark.parametrize(
    ("globals_", "auth", "reason", "retry"),
    [
        ((), _auth(), "VaultAuthGlobalNotFound", True),
        ((_global(),), _auth(), "VaultAuthGlobalNamespaceNotAllowed", False),
        ((_global(allowedNamespaces=["team-a"], defaultAuthMethod=None, kubernetes=None),),
         _auth(), "InvalidVaultAuth", False),
        ((_global(allowedNamespaces=["*"], kubernetes={"role": "r"}),), _auth(),
         "InvalidVaultAuth", False),
        ((_global(allowedNamespaces=["team-a"], headers={"k": 1}),), _auth(),
         "InvalidVaultAuthGlobal", False),
    ],
)  # fmt: skip
def test_why_a_global_makes_a_vaultauth_unusable(
    globals_: tuple[dict[str, Any], ...], auth: dict[str, Any], reason: str, retry: bool
) -> None:
    access = _access(*globals_)
    with pytest.raises(ReconcileProblem) as info:
        access.effective_auth(AUTH_KEY, auth)
    assert (info.value.reason, info.value.retry) == (reason, retry), info.value.message


def test_the_global_is_part_of_the_login_identity() -> None:
    base = ClientKey("team-a", "a", "uid-a", 1, "uid-c", 1)
    assert "vaultAuthGlobal" not in base.identity()  # records without a global keep their name
    with_global = replace(base, auth_global="platform/shared@uid-shared:3")
    assert with_global.identity()["vaultAuthGlobal"] == "platform/shared@uid-shared:3"
    assert with_global.secret_name() != base.secret_name()
    newer = replace(base, auth_global="platform/shared@uid-shared:4")
    assert newer != with_global and newer.secret_name() != with_global.secret_name()
    resolved = ResolvedAuth(
        AUTH_KEY, {}, cast(Any, None), ObjectKey("x", "y"), {}, cast(Any, None), _global()
    )
    assert resolved.global_version() == "platform/shared@uid-shared:3"
