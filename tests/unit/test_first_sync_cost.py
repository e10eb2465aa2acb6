"""What a first sync costs the API server, counted (issue #13), and that the cheaper path
keeps every guarantee: a Secret that is not ours is never overwritten, `overwrite: true`
still takes one over, our own Secret missing from the cache is not rewritten for nothing.

Counted with tests/fakes.py's API server, whose apply honours a resourceVersion
precondition the way the real one does (409 for an existing object, ignored on create: the
integration tests in tests/integration/test_static_secret.py run the same paths against the
real API server).
"""

from __future__ import annotations

import base64
from typing import Any, cast

from vaultbridge.api.kinds import VAULT_STATIC_SECRETS
from vaultbridge.controllers.static_secret import VaultStaticSecretReconciler
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import SECRETS

from ..fakes import FakeKube, FakeVault, Harness, make_ctx, reconciled

NS = "app"
KEY = ObjectKey(NS, "obj")


def _vss(destination: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": VAULT_STATIC_SECRETS.api_version,
        "kind": VAULT_STATIC_SECRETS.kind,
        "metadata": {"name": KEY.name, "namespace": NS, "generation": 1},
        "spec": {"mount": "secret", "path": "app", "type": "kv-v2", "destination": destination},
    }


def _static(
    destination: dict[str, Any] | None = None,
) -> tuple[Harness, VaultStaticSecretReconciler]:
    h = make_ctx(FakeVault(kv={"secret/app": {"password": "s3cret"}}))
    h.listed(SECRETS)  # the owned-Secret informer has done its first list
    h.cache(VAULT_STATIC_SECRETS, _vss(destination or {"name": "app-secret", "create": True}))
    return h, VaultStaticSecretReconciler(h.ctx, h.access)


def _condition(h: Harness, type_: str) -> dict[str, Any]:
    obj = h.kube.stored(VAULT_STATIC_SECRETS, NS, KEY.name)
    assert obj is not None
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def _foreign(h: Harness) -> dict[str, Any]:
    """A Secret someone else made: no owner labels, so never in the owned-Secret cache."""
    return h.kube.put(
        SECRETS,
        {"metadata": {"name": "app-secret", "namespace": NS}, "data": {"mine": "a2VlcA=="}},
    )


async def test_first_sync_is_two_writes_and_no_read() -> None:
    h, r = _static()
    await reconciled(r, KEY)
    assert h.kube.calls == [
        ("apply", "secrets", "app-secret"),
        ("patch/status", "vaultstaticsecrets", "obj"),
    ]
    secret = h.kube.stored(SECRETS, NS, "app-secret")
    assert secret is not None
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "VaultStaticSecret"
    assert _condition(h, "SecretSynced")["status"] == "True"


async def test_the_status_write_is_the_reconciles_finish_off_the_worker() -> None:
    """The worker's part ends with the Secret; the status patch is handed to the engine as
    `Result.finish` (engine/controller.py keeps the key in flight until it is written)."""
    h, r = _static()
    result = await r.reconcile(KEY)
    assert h.kube.calls == [("apply", "secrets", "app-secret")]
    assert h.kube.stored(SECRETS, NS, "app-secret") is not None
    assert result.finish is not None
    await result.finish()
    assert h.kube.calls[1:] == [("patch/status", "vaultstaticsecrets", "obj")]
    assert _condition(h, "SecretSynced")["status"] == "True"


async def test_a_failure_writes_its_status_within_the_reconcile() -> None:
    """Only success is deferred: a failing reconcile's conditions are written before it
    returns (its retry delay comes with them)."""
    h, r = _static()
    _foreign(h)
    result = await r.reconcile(KEY)
    assert result.finish is None
    assert [c[0] for c in h.kube.calls] == ["apply", "get", "patch/status"]
    assert _condition(h, "SecretSynced")["reason"] == "DestinationConflict"


async def test_before_the_first_list_the_destination_is_read() -> None:
    h, r = _static()
    h.ctx.informer(SECRETS)._synced.clear()  # cache not authoritative yet: today's path
    await reconciled(r, KEY)
    assert [c[0] for c in h.kube.calls] == ["get", "apply", "patch/status"]


async def test_a_foreign_secret_is_not_overwritten() -> None:
    h, r = _static()
    foreign = _foreign(h)
    result = await reconciled(r, KEY)
    assert h.kube.stored(SECRETS, NS, "app-secret") == foreign  # untouched, same version
    # The create-only apply was refused, then the careful path: read, ownership check.
    assert [c[0] for c in h.kube.calls] == ["apply", "get", "patch/status"]
    synced = _condition(h, "SecretSynced")
    assert (synced["status"], synced["reason"]) == ("False", "DestinationConflict")
    assert result.requeue_after is None
    assert h.events.reasons() == ["DestinationConflict"]


async def test_overwrite_true_still_takes_a_foreign_secret_over() -> None:
    h, r = _static({"name": "app-secret", "create": True, "overwrite": True})
    _foreign(h)
    await reconciled(r, KEY)
    secret = h.kube.stored(SECRETS, NS, "app-secret")
    assert secret is not None
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "VaultStaticSecret"
    # Refused create, read, ownership check (overwrite allowed), apply, and the removal of
    # the key the previous owner wrote (an owned Secret holds exactly the synced keys).
    assert [c[0] for c in h.kube.calls] == ["apply", "get", "apply", "patch", "patch/status"]
    assert "mine" not in secret["data"]
    assert _condition(h, "SecretSynced")["status"] == "True"


async def test_our_secret_missing_from_the_cache_is_not_rewritten() -> None:
    h, r = _static()
    await reconciled(r, KEY)
    written = h.kube.stored(SECRETS, NS, "app-secret")
    assert written is not None
    h.refresh(VAULT_STATIC_SECRETS, KEY)  # the status write reached the cache ...
    h.kube.calls.clear()  # ... the Secret's ADDED event not yet
    await reconciled(r, KEY)
    # Refused create, one read, nothing to change: no second write.
    assert [c[0] for c in h.kube.calls] == ["apply", "get"]
    assert h.kube.stored(SECRETS, NS, "app-secret") == written


async def test_a_cached_secret_costs_no_request_at_all() -> None:
    h, r = _static()
    await reconciled(r, KEY)
    h.refresh(VAULT_STATIC_SECRETS, KEY)
    stored = h.kube.stored(SECRETS, NS, "app-secret")
    assert stored is not None
    h.ctx.informer(SECRETS).store._put(dict(stored))
    h.kube.calls.clear()
    await reconciled(r, KEY)
    assert h.kube.calls == []


async def test_create_false_still_reads_the_secret_it_writes_into() -> None:
    h, r = _static({"name": "app-secret", "create": False})
    _foreign(h)
    await reconciled(r, KEY)
    assert [c[0] for c in h.kube.calls] == ["get", "apply", "patch/status"]
    secret = h.kube.stored(SECRETS, NS, "app-secret")
    assert secret is not None and secret["data"]["mine"] == "a2VlcA=="


# -- Events: a cold sync does not write one per object ------------------------------------


def _obj(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": f"o{i}", "namespace": NS, "uid": f"u{i}"},
    }


async def test_routine_events_are_sampled_under_bulk() -> None:
    kube = FakeKube()
    recorder = EventRecorder(cast(KubeClient, kube), routine_burst=5, routine_per_second=0.0)
    for i in range(200):
        recorder.emit_routine(_obj(i), "Normal", "SecretSynced", f"created Secret s{i}")
    await recorder.flush()
    assert len([c for c in kube.calls if c[:2] == ("create", "events")]) == 5
    assert recorder.routine_skipped == {"SecretSynced": 195}
    # Other Events are not affected by that budget.
    recorder.emit(_obj(0), "Warning", "VaultClientError", "boom")
    await recorder.flush()
    assert len([c for c in kube.calls if c[:2] == ("create", "events")]) == 6


async def test_one_routine_event_alone_is_written() -> None:
    kube = FakeKube()
    recorder = EventRecorder(cast(KubeClient, kube))
    recorder.emit_routine(_obj(1), "Normal", "SecretSynced", "created Secret s1")
    await recorder.flush()
    assert [c[:2] for c in kube.calls] == [("create", "events")]
    assert recorder.routine_skipped == {}


async def test_a_first_sync_decodes_no_answer() -> None:
    """CPU (issue #13): the answers of a first sync's two writes (the whole Secret, the whole
    object) are not read, so the client is told not to decode them (`decode=False`;
    tests/unit/test_kube_client_local.py shows it then decodes nothing). The new status comes
    back through the informer, which is what the next reconcile reads."""
    h, r = _static()
    await reconciled(r, KEY)
    assert [c[0] for c in h.kube.writes()] == ["apply", "patch/status"]
    assert h.kube.decoded == []


async def test_the_apply_answer_is_decoded_only_when_extra_keys_are_checked() -> None:
    """A key added by hand to our Secret survives an apply; the operator reads the apply's
    answer to see whether it is still there, and only then."""
    h, r = _static()
    await reconciled(r, KEY)
    h.refresh(VAULT_STATIC_SECRETS, KEY)
    stored = h.kube.stored(SECRETS, NS, "app-secret")
    assert stored is not None
    stored["data"]["by-hand"] = "eA=="  # someone adds a key
    h.ctx.informer(SECRETS).store._put(h.kube.put(SECRETS, stored))
    h.kube.calls.clear()
    await reconciled(r, KEY)
    assert h.kube.decoded == [("apply", "secrets", "app-secret")]
    assert [c[0] for c in h.kube.writes()] == ["apply", "patch"]
    secret = h.kube.stored(SECRETS, NS, "app-secret")
    assert secret is not None
    assert "by-hand" not in secret["data"]
    assert "password" in secret["data"]


async def test_a_first_sync_computes_one_mac_of_its_data(monkeypatch: Any) -> None:
    """CPU (issue #13): the HMAC of the data (status.secretMAC, and the fingerprint that
    recognises our own write's watch event) is computed once per sync, not once per use."""
    from vaultbridge.controllers import secret_target, static_secret
    from vaultbridge.secrets import hmac

    macs: list[str] = []

    def counting(key: bytes, data: Any) -> str:
        macs.append(hmac.compute_mac(key, data))
        return macs[-1]

    monkeypatch.setattr(static_secret, "compute_mac", counting)
    monkeypatch.setattr(secret_target, "compute_mac", counting)
    h, r = _static()
    await reconciled(r, KEY)
    assert len(macs) == 1
    secret = h.kube.stored(SECRETS, NS, "app-secret")
    assert secret is not None
    # That one MAC is also the fingerprint our own write's event is recognised by.
    assert r.own_writes._expected[ObjectKey(NS, "app-secret")] == macs[0]
    assert r.own_writes.is_echo("MODIFIED", None, secret)
