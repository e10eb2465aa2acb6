"""VaultAccess with VaultAuthGlobals: the merged spec, the reasons a global makes a VaultAuth
unusable, and the global's place in the client-cache key (pure parts, fake informers)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
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

from ..fakes import Harness, make_ctx

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


def _world(global_obj: dict[str, Any], auth: dict[str, Any]) -> tuple[Harness, dict[str, Any]]:
    """A VaultAuthGlobal, a VaultAuth and the default VaultConnection (allowing team-a) in
    the informer caches; returns the harness and the connection."""
    from vaultbridge.api.kinds import VAULT_AUTHS, VAULT_CONNECTIONS

    h = make_ctx()
    for res in (VAULT_AUTH_GLOBALS, VAULT_CONNECTIONS):
        h.ctx.informers[res] = Informer(cast(KubeClient, h.kube), res)
    h.cache(VAULT_AUTH_GLOBALS, global_obj)
    h.cache(VAULT_AUTHS, auth)
    conn = {
        "metadata": {"name": "default", "namespace": "vaultbridge-system"},
        "spec": {"address": "http://127.0.0.1:8200", "allowedNamespaces": ["team-a"]},
    }
    h.cache(VAULT_CONNECTIONS, conn)
    return h, conn


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


class _Counting:
    """Stands in for a spec model in resolution.py: counts validations, delegates."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0

    def model_validate(self, raw: Any) -> Any:
        self.calls += 1
        return self.model.model_validate(raw)


async def test_specs_are_parsed_once_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU (issue #13): thousands of objects share one VaultAuth and one VaultConnection;
    their specs are validated once per stored version, not once per reconcile — counted —
    while every per-consumer check still runs on every resolve."""
    from vaultbridge.api.auth import VaultAuthSpec
    from vaultbridge.api.connection import VaultConnectionSpec
    from vaultbridge.api.kinds import VAULT_CONNECTIONS
    from vaultbridge.controllers import resolution

    auths, conns, globals_ = (
        _Counting(VaultAuthSpec),
        _Counting(VaultConnectionSpec),
        _Counting(resolution.VaultAuthGlobalSpec),
    )
    monkeypatch.setattr(resolution, "VaultAuthSpec", auths)
    monkeypatch.setattr(resolution, "VaultConnectionSpec", conns)
    monkeypatch.setattr(resolution, "VaultAuthGlobalSpec", globals_)
    h, conn = _world(
        _global(allowedNamespaces=["team-a", "team-b"]),
        {**_auth(), "spec": {**_auth()["spec"], "allowedNamespaces": ["team-a"]}},
    )
    access = VaultAccess(h.ctx)
    first = await access.resolve("team-a", "via-global")
    for _ in range(99):
        again = await access.resolve("team-a", "via-global")
        assert again.auth is first.auth and again.settings is first.settings
    assert (auths.calls, conns.calls, globals_.calls) == (1, 1, 1)
    # Per-consumer checks are not remembered: another namespace is still refused.
    with pytest.raises(ReconcileProblem) as info:
        await access.resolve("team-b", "team-a/via-global")
    assert info.value.reason == "NamespaceNotAllowed"
    # A new version of the VaultAuthGlobal (a new stored object) is merged again ...
    h.cache(VAULT_AUTH_GLOBALS, _global(allowedNamespaces=["team-a"]))
    await access.resolve("team-a", "via-global")
    assert (auths.calls, globals_.calls) == (2, 2)
    # ... and a new VaultConnection version is parsed again; a refusal is never remembered
    # (parsed and checked on every resolve, its message fresh).
    h.cache(VAULT_CONNECTIONS, {**conn, "spec": {**conn["spec"], "allowedNamespaces": []}})
    for _ in range(2):
        with pytest.raises(ReconcileProblem) as info:
            await access.resolve("team-b", "team-a/via-global")
        assert info.value.reason == "NamespaceNotAllowed"
        with pytest.raises(ReconcileProblem) as info:
            await access.resolve("team-a", "via-global")
        assert "does not allow VaultAuths of namespace" in info.value.message
    assert conns.calls == 1 + 2


async def test_what_was_parsed_is_dropped_when_the_object_is_gone() -> None:
    """The parsed VaultAuth / VaultConnection are held per key; a deleted object's entry is
    dropped by its reconciler (VaultAuth: purge_stale_tokens; VaultConnection: its reconcile
    of the deleted key), so the memory is bounded by the objects that exist."""
    from vaultbridge.api.kinds import VAULT_AUTHS, VAULT_CONNECTIONS
    from vaultbridge.controllers.connection import VaultConnectionReconciler

    h, _ = _world(_global(allowedNamespaces=["team-a"]), _auth())
    access = VaultAccess(h.ctx)
    resolved = await access.resolve("team-a", "via-global")
    assert resolved.auth_key in access._auths
    assert resolved.connection_key in access._connections
    h.ctx.informer(VAULT_AUTHS).store._delete(resolved.auth_key)
    purged: list[object] = []
    h.ctx.clients = cast(Any, SimpleNamespace(purge=purged.append))  # no client was made
    await access.purge_stale_tokens(resolved.auth_key, None)
    assert resolved.auth_key not in access._auths and len(purged) == 1
    h.ctx.informer(VAULT_CONNECTIONS).store._delete(resolved.connection_key)
    await VaultConnectionReconciler(h.ctx, access).reconcile(resolved.connection_key)
    assert resolved.connection_key not in access._connections
