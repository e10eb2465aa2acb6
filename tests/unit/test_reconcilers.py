"""The decisions of the three secret-kind reconcilers, with an in-memory API server and Vault
(tests/fakes.py): no servers. What is checked here is what the flow decides — write or not,
delete after a rename, refuse a foreign Secret, reissue or keep, keep the Secret on failure —
the real calls are covered by the integration tests.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from vaultbridge.api.kinds import (
    VAULT_DYNAMIC_SECRETS,
    VAULT_PKI_SECRETS,
    VAULT_STATIC_SECRETS,
)
from vaultbridge.controllers.delivery import Prepared
from vaultbridge.controllers.dynamic_secret import VaultDynamicSecretReconciler
from vaultbridge.controllers.pki_secret import VaultPKISecretReconciler
from vaultbridge.controllers.static_secret import VaultStaticSecretReconciler
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube.resources import SECRETS, Resource
from vaultbridge.vault.errors import VaultUnreachable

from ..fakes import FakeVault, Harness, make_ctx, reconciled, response

NS = "app"
KEY = ObjectKey(NS, "obj")
DEST = {"name": "app-secret", "create": True}


def _obj(res: Resource, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": res.api_version,
        "kind": res.kind,
        "metadata": {"name": KEY.name, "namespace": NS, "generation": generation},
        "spec": spec,
    }


def _secret(h: Harness, name: str = "app-secret") -> dict[str, Any] | None:
    return h.kube.stored(SECRETS, NS, name)


def _condition(h: Harness, res: Resource, type_: str) -> dict[str, Any]:
    obj = h.kube.stored(res, NS, KEY.name)
    assert obj is not None
    conds = (obj.get("status") or {}).get("conditions") or []
    return next(c for c in conds if c["type"] == type_)


def _decoded(secret: dict[str, Any] | None) -> dict[str, bytes]:
    assert secret is not None
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


# -- VaultStaticSecret ----------------------------------------------------------------------

STATIC = {"mount": "secret", "path": "app", "type": "kv-v2", "destination": DEST}


def _static(vault: FakeVault | None = None) -> tuple[Harness, VaultStaticSecretReconciler]:
    h = make_ctx(vault or FakeVault(kv={"secret/app": {"password": "s3cret"}}))
    return h, VaultStaticSecretReconciler(h.ctx, h.access)


async def test_static_first_sync_creates_an_owned_secret() -> None:
    h, r = _static()
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    result = await reconciled(r, KEY)
    secret = _secret(h)
    assert _decoded(secret)["password"] == b"s3cret"
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["kind"] == (
        "VaultStaticSecret"
    )
    assert _condition(h, VAULT_STATIC_SECRETS, "Ready")["status"] == "True"
    assert h.events.reasons() == ["SecretSynced"]
    assert result.requeue_after is not None  # hmacSecretData: refresh on the default period


async def test_static_refuses_a_secret_it_does_not_own_and_leaves_it_alone() -> None:
    h, r = _static()
    foreign = h.kube.put(SECRETS, {"metadata": {"name": "app-secret", "namespace": NS}})
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    result = await reconciled(r, KEY)
    assert _secret(h) == foreign
    assert not [c for c in h.kube.writes() if c[1] == "secrets"]
    synced = _condition(h, VAULT_STATIC_SECRETS, "SecretSynced")
    assert (synced["status"], synced["reason"]) == ("False", "DestinationConflict")
    assert result.requeue_after is None  # only an edit fixes it: no retry loop
    assert h.events.reasons() == ["DestinationConflict"]


async def test_static_rename_writes_the_new_secret_and_deletes_the_old() -> None:
    h, r = _static()
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    await reconciled(r, KEY)
    obj = h.refresh(VAULT_STATIC_SECRETS, KEY)
    obj["spec"]["destination"] = {"name": "renamed", "create": True}
    obj["metadata"]["generation"] = 2
    h.cache(VAULT_STATIC_SECRETS, obj)
    await reconciled(r, KEY)
    assert _secret(h) is None
    assert _decoded(_secret(h, "renamed"))["password"] == b"s3cret"


async def test_static_vault_failure_keeps_the_secret_and_retries_soon() -> None:
    h, r = _static()
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, STATIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_STATIC_SECRETS, KEY)
    h.vault.error = VaultUnreachable("connection refused")
    result = await reconciled(r, KEY)
    assert _decoded(_secret(h))["password"] == b"s3cret"
    healthy = _condition(h, VAULT_STATIC_SECRETS, "Healthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "VaultUnreachable")
    # Outage retries are capped (8 s + 25 % jitter), not the ordinary backoff.
    assert result.requeue_after is not None and result.requeue_after <= 10.0
    assert "VaultClientError" in h.events.reasons()


async def test_static_invalid_spec_is_reported_without_vault_or_retry() -> None:
    h, r = _static()
    h.cache(VAULT_STATIC_SECRETS, _obj(VAULT_STATIC_SECRETS, {"destination": DEST}))
    result = await reconciled(r, KEY)
    assert _condition(h, VAULT_STATIC_SECRETS, "Ready")["reason"] == "InvalidSpec"
    assert h.vault.requests == [] and result.requeue_after is None


# -- VaultDynamicSecret ---------------------------------------------------------------------

DYNAMIC = {"mount": "database", "path": "creds/app", "destination": DEST}


def _dynamic() -> tuple[Harness, VaultDynamicSecretReconciler]:
    vault = FakeVault(
        responses=[
            response(
                {"username": "u1", "password": "p1"},
                lease_id="database/creds/app/1",
                duration=3600,
                renewable=True,
            ),
            response(
                {"username": "u2", "password": "p2"},
                lease_id="database/creds/app/2",
                duration=3600,
                renewable=True,
            ),
        ]
    )
    h = make_ctx(vault)
    return h, VaultDynamicSecretReconciler(h.ctx, h.access)


async def _prepared(r: VaultDynamicSecretReconciler, h: Harness) -> Prepared[Any]:
    obj = h.ctx.informer(VAULT_DYNAMIC_SECRETS).store.get(KEY)
    assert obj is not None
    return await r.prepare(KEY, obj, r.info.parse_spec(obj), dict(obj.get("status") or {}))


async def test_dynamic_reissue_causes() -> None:
    h, r = _dynamic()
    h.cache(VAULT_DYNAMIC_SECRETS, _obj(VAULT_DYNAMIC_SECRETS, DYNAMIC))
    p = await _prepared(r, h)
    assert r.reissue_cause(p, None, None) == "create"

    await reconciled(r, KEY)
    obj = h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    held = r.current(KEY, obj)
    assert held is not None and held.lease_id == "database/creds/app/1"
    p = await _prepared(r, h)
    live = _secret(h)
    assert r.reissue_cause(p, held, live) is None
    assert r.reissue_cause(p, held, None) == "destination-missing"
    tampered = dict(live or {}, data={"password": base64.b64encode(b"edited").decode()})
    assert r.reissue_cause(p, held, tampered) == "drift"

    obj["metadata"]["generation"] = 2
    h.cache(VAULT_DYNAMIC_SECRETS, obj)
    p = await _prepared(r, h)
    assert r.reissue_cause(p, held, live) == "spec-change"


async def test_dynamic_restart_keeps_the_lease_from_the_status() -> None:
    h, r = _dynamic()
    h.cache(VAULT_DYNAMIC_SECRETS, _obj(VAULT_DYNAMIC_SECRETS, DYNAMIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    issued = list(h.vault.requests)
    # A new process: nothing in memory, the lease comes from the status.
    fresh = VaultDynamicSecretReconciler(h.ctx, h.access)
    result = await reconciled(fresh, KEY)
    assert h.vault.requests == issued  # no new credentials, no renewal yet
    assert _decoded(_secret(h))["username"] == b"u1"
    assert result.requeue_after is not None and 0 < result.requeue_after <= 3600


async def test_dynamic_edited_secret_gets_new_credentials_and_a_rotation_event() -> None:
    h, r = _dynamic()
    h.cache(VAULT_DYNAMIC_SECRETS, _obj(VAULT_DYNAMIC_SECRETS, DYNAMIC))
    await reconciled(r, KEY)
    h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    secret = _secret(h)
    assert secret is not None
    secret["data"]["password"] = base64.b64encode(b"edited").decode()
    await reconciled(r, KEY)
    assert _decoded(_secret(h))["username"] == b"u2"
    assert h.events.reasons() == ["SecretSynced", "SecretRotated"]


async def test_dynamic_failure_keeps_the_secret_and_retries_before_expiry() -> None:
    h, r = _dynamic()
    short = response({"username": "u1", "password": "p1"}, lease_id="l1", duration=20)
    h.vault.responses = [short]
    h.cache(VAULT_DYNAMIC_SECRETS, _obj(VAULT_DYNAMIC_SECRETS, DYNAMIC))
    await reconciled(r, KEY)
    obj = h.refresh(VAULT_DYNAMIC_SECRETS, KEY)
    obj["metadata"]["generation"] = 2  # a spec change needs new credentials...
    h.cache(VAULT_DYNAMIC_SECRETS, obj)
    h.vault.error = VaultUnreachable("connection refused")  # ...and Vault is down
    for _ in range(12):  # grow the backoff well past the lease's 20 s
        result = await reconciled(r, KEY)
    assert _decoded(_secret(h))["username"] == b"u1"
    assert _condition(h, VAULT_DYNAMIC_SECRETS, "SecretSynced")["reason"] == "VaultUnreachable"
    # However long the backoff has grown, the retry comes before the held lease expires.
    assert result.requeue_after is not None and result.requeue_after <= 20 * 0.9


# -- VaultPKISecret -------------------------------------------------------------------------

PKI = {"mount": "pki", "role": "web", "commonName": "web.app.svc", "destination": DEST}


def _cert(serial: str) -> dict[str, Any]:
    return {
        "certificate": f"CERT-{serial}",
        "private_key": f"KEY-{serial}",
        "private_key_type": "rsa",
        "issuing_ca": "CA",
        "ca_chain": ["CA"],
        "serial_number": serial,
        "expiration": int(time.time()) + 7 * 24 * 3600,
    }


def _pki() -> tuple[Harness, VaultPKISecretReconciler]:
    h = make_ctx(FakeVault(responses=[response(_cert("01")), response(_cert("02"))]))
    return h, VaultPKISecretReconciler(h.ctx, h.access)


async def test_pki_keeps_a_valid_certificate_and_reissues_on_spec_change() -> None:
    h, r = _pki()
    h.cache(VAULT_PKI_SECRETS, _obj(VAULT_PKI_SECRETS, PKI))
    await reconciled(r, KEY)
    obj = h.refresh(VAULT_PKI_SECRETS, KEY)
    assert _decoded(_secret(h))["serial_number"] == b"01"
    assert h.vault.requests == [("write", "pki/issue/web")]

    await reconciled(r, KEY)  # nothing due: no Vault request
    assert len(h.vault.requests) == 1

    obj["spec"]["commonName"] = "www.app.svc"
    obj["metadata"]["generation"] = 2
    h.cache(VAULT_PKI_SECRETS, obj)
    await reconciled(r, KEY)
    assert _decoded(_secret(h))["serial_number"] == b"02"
    assert h.events.reasons() == ["SecretSynced", "SecretRotated"]
    assert h.kube.stored(VAULT_PKI_SECRETS, NS, KEY.name)["status"]["serialNumber"] == "02"  # type: ignore[index]


async def test_pki_finalizer_only_when_revoke_or_clear() -> None:
    h, r = _pki()
    h.cache(VAULT_PKI_SECRETS, _obj(VAULT_PKI_SECRETS, {**PKI, "revoke": True}))
    await reconciled(r, KEY)
    stored = h.kube.stored(VAULT_PKI_SECRETS, NS, KEY.name)
    assert stored is not None
    assert stored["metadata"].get("finalizers") == ["vaultbridge.dev/pki-cleanup"]
