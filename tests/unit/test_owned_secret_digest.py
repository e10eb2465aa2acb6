"""The owned-Secret cache keeps key names and a MAC instead of values (issue #13): the
decisions made on it are the ones made on the values."""

from __future__ import annotations

import base64
from typing import Any

from vaultbridge.api.destination import Destination
from vaultbridge.api.kinds import VAULT_STATIC_SECRETS
from vaultbridge.controllers import destination, secret_data
from vaultbridge.controllers.static_secret import VaultStaticSecretReconciler
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.resources import SECRETS
from vaultbridge.secrets.hmac import compute_mac

from ..fakes import HMAC_KEY, FakeVault, make_ctx, reconciled

OWNER = {
    "apiVersion": "vaultbridge.dev/v1beta1",
    "kind": "VaultStaticSecret",
    "metadata": {"name": "obj", "namespace": "app", "uid": "u1", "generation": 1},
}
DEST = Destination.model_validate({"name": "app-secret", "create": True})


def _secret(values: dict[str, bytes]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "app-secret",
            "namespace": "app",
            "labels": destination.desired_labels(OWNER, DEST),
            "ownerReferences": [{"uid": "u1", "kind": "VaultStaticSecret", "name": "obj"}],
            "managedFields": [{"manager": "vaultbridge"}],
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in values.items()},
    }


def _digested(values: dict[str, bytes]) -> dict[str, Any]:
    return secret_data.digest_owned_secrets(HMAC_KEY)(_secret(values))


def test_the_cache_entry_holds_no_value() -> None:
    cached = _digested({"password": b"s3cret", "user": b"app"})
    assert "data" not in cached and "managedFields" not in cached["metadata"]
    assert b"s3cret" not in repr(cached).encode() and "czNjcmV0" not in repr(cached)
    assert secret_data.data_keys(cached) == ("password", "user")
    assert secret_data.data_mac(HMAC_KEY, cached) == compute_mac(
        HMAC_KEY, {"password": b"s3cret", "user": b"app"}
    )


def _plan(live: dict[str, Any], data: dict[str, bytes]) -> destination.Plan:
    return destination.plan(
        OWNER, DEST, live, data, vault_changed=False, spec_changed=False, mac_key=HMAC_KEY
    )


def test_plans_on_the_digest_match_plans_on_the_values() -> None:
    cases = [
        ({"a": b"1"}, {"a": b"1"}),  # same
        ({"a": b"1"}, {"a": b"2"}),  # value changed
        ({"a": b"1", "extra": b"x"}, {"a": b"1"}),  # a key added by hand
        ({"a": b"1"}, {"a": b"1", "b": b"2"}),  # a key missing
        ({}, {"a": b"1"}),
    ]
    for live_values, want in cases:
        assert _plan(_digested(live_values), want) == _plan(_secret(live_values), want), (
            live_values,
            want,
        )
    assert _plan(_digested({"a": b"1", "extra": b"x"}), {"a": b"1"}).extra_keys == ("extra",)


async def test_a_digested_cache_entry_in_sync_costs_no_write() -> None:
    h = make_ctx(FakeVault(kv={"secret/app": {"password": "s3cret"}}))
    h.listed(SECRETS)
    h.cache(
        VAULT_STATIC_SECRETS,
        dict(
            OWNER,
            spec={
                "mount": "secret",
                "path": "app",
                "type": "kv-v2",
                "destination": {"name": "app-secret", "create": True},
            },
        ),
    )
    r = VaultStaticSecretReconciler(h.ctx, h.access)
    key = ObjectKey("app", "obj")
    await reconciled(r, key)
    h.refresh(VAULT_STATIC_SECRETS, key)
    stored = h.kube.stored(SECRETS, "app", "app-secret")
    assert stored is not None
    transform = secret_data.digest_owned_secrets(HMAC_KEY)
    h.ctx.informer(SECRETS).store._put(transform(dict(stored)))
    h.kube.calls.clear()
    await reconciled(r, key)
    assert h.kube.calls == []
    # A hand edit (the watch brings the new version, digested): repaired.
    edited = dict(stored, data={"password": base64.b64encode(b"tampered").decode()})
    edited["metadata"] = dict(stored["metadata"], resourceVersion="999")
    h.ctx.informer(SECRETS).store._put(transform(edited))
    await reconciled(r, key)
    assert [c for c in h.kube.calls if c[1] == "secrets"] == [("apply", "secrets", "app-secret")]


def test_our_own_write_is_recognised_on_a_digested_entry() -> None:
    values = {"password": b"s3cret"}
    assert secret_data.data_mac(HMAC_KEY, _digested(values)) == compute_mac(HMAC_KEY, values)
    assert secret_data.data_mac(HMAC_KEY, _digested({"password": b"x"})) != (
        compute_mac(HMAC_KEY, values)
    )
