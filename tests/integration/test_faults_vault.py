"""Vault misbehaves: frozen (SIGSTOP), sealed, or the operator's token revoked.

What must hold every time: destination Secrets stay exactly as they were, every resource
reports `Healthy=False` with a reason naming the failure, retries are jittered (no burst of
synchronised retries), and every retry scheduled during the outage comes within ~10 s, so
everything is synced again soon after Vault's return.
Runs only in the fault session (`make test-faults`): it freezes and seals that session's Vault.
"""

from __future__ import annotations

import os
import signal
import statistics
import time

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import read_unseal_key

from .faults_support import (
    CANARY,
    OwnOperator,
    assert_no_canary,
    bao,
    condition,
    failures_by_resource,
    list_vss,
    log_records,
    log_time,
    max_in_window,
    wait_all_synced,
)
from .helpers import App, wait_for
from .operator_harness import crd_path
from .pki_support import PKI, PLURAL

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RESOURCES = 12
#: How long Vault stays frozen or sealed: a full minute, long enough for every resource's
#: backoff to reach its cap.
OUTAGE_SECONDS = 60.0
#: Vault's return → every resource synced again: the longest retry delay the operator may
#: schedule while Vault itself is down (static_secret.outage_backoff: 8 s cap, +25 % jitter).
#: Checked on the delays the operator logged, not on a stopwatch.
OUTAGE_RETRY_CAP = 8.0 * 1.25


def _names(prefix: str) -> list[str]:
    return [f"{prefix}-{i}" for i in range(RESOURCES)]


def _prepare(app: App, prefix: str) -> list[str]:
    names = _names(prefix)
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": f"{name}-v1", "canary": CANARY})
        app.vss(name, refreshAfter="2s")
    return names


def _all_unhealthy(admin: KubeAdmin, ns: str, reasons: tuple[str, ...]) -> bool:
    items = list_vss(admin, ns)
    return len(items) == RESOURCES and all(
        (c := condition(o, "Healthy")) is not None
        and c["status"] == "False"
        and c["reason"] in reasons
        for o in items
    )


def _assert_secrets_intact(app: App, names: list[str], version: str) -> None:
    for name in names:
        data = app.secret_data(name)
        assert data is not None and set(data) == {"value", "canary", "_raw"}, name
        assert data["value"] == f"{name}-{version}", name


def _retry_delays(op_log: str, namespace: str, since: float, until: float) -> list[float]:
    """The retry delays the operator decided on (``retry_in`` of its "sync failed" lines)."""
    return [
        float(rec["retry_in"])
        for rec in log_records(op_log)
        if rec.get("msg", "").startswith("sync failed")
        and f"/{namespace}/" in str(rec.get("resource") or "")
        and "retry_in" in rec
        and since <= log_time(rec) <= until
    ]


def _assert_outage_retries_capped(op_log: str, namespace: str, since: float, until: float) -> None:
    """Every retry scheduled while Vault was away comes within the outage cap, so every
    resource tries again (and syncs) within that long of Vault's return, however loaded the
    machine is when it does."""
    delays = _retry_delays(op_log, namespace, since, until)
    assert len(delays) >= RESOURCES, f"only {len(delays)} logged retries during the outage"
    assert max(delays) <= OUTAGE_RETRY_CAP, sorted(delays)[-5:]


def _recover_and_measure(app: App, names: list[str], back_at: float) -> float:
    """Write new values and wait until every resource delivered them and is Healthy again."""
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": f"{name}-v2", "canary": CANARY})

    def all_back() -> bool:
        items = {o["metadata"]["name"]: o for o in list_vss(app.admin, app.ns)}
        for name in names:
            cond = condition(items.get(name, {}), "Healthy")
            if cond is None or cond["status"] != "True":
                return False
            if (app.secret_data(name) or {}).get("value") != f"{name}-v2":
                return False
        return True

    wait_for(all_back, 90, "every resource synced after Vault's return")
    return time.time() - back_at


def test_frozen_vault_keeps_secrets_and_recovers(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = fault_app
    names = _prepare(app, "frz")
    own_operator.start()
    wait_all_synced(app.admin, app.ns, RESOURCES, 90)
    pid = devenv.pids["vault"]
    frozen_at = time.time()
    os.kill(pid, signal.SIGSTOP)
    try:
        # Requests hang until the VaultConnection's 5 s timeout: "VaultTimeout".
        wait_for(
            lambda: _all_unhealthy(app.admin, app.ns, ("VaultTimeout", "VaultUnreachable")),
            90,
            "every resource Healthy=False while Vault is frozen",
        )
        _assert_secrets_intact(app, names, "v1")
        time.sleep(max(0.0, frozen_at + OUTAGE_SECONDS - time.time()))
        _assert_secrets_intact(app, names, "v1")
    finally:
        os.kill(pid, signal.SIGCONT)
    back_at = time.time()
    elapsed = _recover_and_measure(app, names, back_at)
    print(f"frozen: every resource synced {elapsed:.1f}s after SIGCONT")
    _assert_outage_retries_capped(own_operator.log_text(), app.ns, frozen_at, back_at)
    cond = condition(list_vss(app.admin, app.ns)[0], "SecretSynced")
    assert cond is not None and cond["status"] == "True"
    assert own_operator.op.proc is not None and own_operator.op.proc.poll() is None
    assert_no_canary(app, own_operator.log_text())


def test_sealed_vault_keeps_secrets_retries_jittered_and_recovers(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = fault_app
    names = _prepare(app, "seal")
    own_operator.start()
    wait_all_synced(app.admin, app.ns, RESOURCES, 90)
    root = bao(devenv)
    unseal_key = devenv.vault_unseal_key or read_unseal_key(devenv.log_file("vault"))
    assert unseal_key, "the dev server printed no unseal key"
    sealed_at = time.time()
    root.must("PUT", "sys/seal")
    try:
        wait_for(
            lambda: _all_unhealthy(
                app.admin, app.ns, ("VaultSealedOrUnavailable", "VaultLoginFailed")
            ),
            60,
            "every resource Healthy=False while Vault is sealed",
        )
        cond = condition(list_vss(app.admin, app.ns)[0], "Healthy")
        assert cond is not None and "sealed" in cond["message"].lower(), cond
        _assert_secrets_intact(app, names, "v1")
        time.sleep(max(0.0, sealed_at + OUTAGE_SECONDS - time.time()))
        _assert_secrets_intact(app, names, "v1")
    finally:
        status, resp = root.call("PUT", "sys/unseal", {"key": unseal_key})
    assert status == 200 and resp.get("sealed") is False, resp
    back_at = time.time()

    # A sealed Vault answers at once, so each failure is logged at the moment its retry was
    # due: the spread of those moments is the spread of the backoff schedule itself.
    failures = failures_by_resource(own_operator.log_text(), app.ns, sealed_at, back_at)
    assert len(failures) == RESOURCES, sorted(failures)
    retries = [t for times in failures.values() for t in sorted(times)[1:]]
    assert len(retries) >= 2 * RESOURCES, f"only {len(retries)} retries during the outage"
    # Without jitter every resource would wait exactly the same delays: the time from its
    # first failure to its third would be identical (to the millisecond) for all of them.
    to_third = [sorted(t)[2] - sorted(t)[0] for t in failures.values() if len(t) >= 3]
    assert len(to_third) >= RESOURCES // 2, failures
    spread = statistics.pstdev(to_third)
    assert spread > 0.1, f"first→third failure takes the same {to_third[0]:.2f}s everywhere"
    # ... and retries would arrive as bursts of all twelve at once.
    burst = max_in_window(retries, 0.1)
    assert burst <= RESOURCES * 2 // 3, f"{burst} retries within 100 ms: synchronised retries"

    elapsed = _recover_and_measure(app, names, back_at)
    print(
        f"sealed: {len(retries)} retries, first→third failure sd {spread:.2f}s, "
        f"largest 100 ms burst {burst}, back in {elapsed:.1f}s"
    )
    _assert_outage_retries_capped(own_operator.log_text(), app.ns, sealed_at, back_at)
    assert_no_canary(app, own_operator.log_text())


def _revoke_role_tokens(devenv: DevState, role: str) -> int:
    root = bao(devenv)
    status, listed = root.call("LIST", "auth/token/accessors")
    assert status == 200, listed
    revoked = 0
    for accessor in listed["data"]["keys"]:
        status, info = root.call("POST", "auth/token/lookup-accessor", {"accessor": accessor})
        if status != 200:
            continue
        meta = (info.get("data") or {}).get("meta") or {}
        if meta.get("role") == role:
            root.must("POST", "auth/token/revoke-accessor", {"accessor": accessor})
            revoked += 1
    return revoked


@pytest.mark.both_servers
def test_revoked_token_is_replaced_by_a_new_login(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = fault_app
    names = [f"tok-{i}" for i in range(5)]
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": f"{name}-v1", "canary": CANARY})
        app.vss(name, refreshAfter="2s")
    op = own_operator.start()
    wait_all_synced(app.admin, app.ns, len(names), 90)
    logins_before = op.metric(
        "vaultbridge_vault_logins_total", method="kubernetes", result="success"
    )
    revoked_at = time.time()
    assert _revoke_role_tokens(devenv, app.vault.role) >= 1, "no token of the test role found"
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": f"{name}-v2"})
    for name in names:
        app.wait_data(name, {"value": f"{name}-v2"}, timeout=60)
    logins_after = op.metric(
        "vaultbridge_vault_logins_total", method="kubernetes", result="success"
    )
    assert logins_after > logins_before, (logins_before, logins_after)
    # The re-login happened inside the reconciles: not one of them failed because of it.
    failures = failures_by_resource(op.log_text(), app.ns, revoked_at, time.time())
    assert failures == {}, failures
    for obj in list_vss(app.admin, app.ns):
        cond = condition(obj, "Healthy")
        assert cond is not None and cond["status"] == "True", obj["status"]
    assert_no_canary(app, op.log_text())


@pytest.mark.both_servers
def test_sealed_vault_keeps_the_certificate_and_issues_after_unseal(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    """The PKI kind through the same outage: a spec change made while Vault is sealed cannot
    be issued; the certificate in use stays; after the unseal the new one is issued."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    app = fault_app
    pki = PKI(app)
    own_operator.start()
    root = bao(devenv)
    unseal_key = devenv.vault_unseal_key or read_unseal_key(devenv.log_file("vault"))

    def common_name() -> str:
        pem = (app.secret_data("cert") or {}).get("certificate", "")
        if not pem:
            return ""
        cert = x509.load_pem_x509_certificate(pem.encode())
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    try:
        pki.vps("cert", commonName="before.example.com")
        before = pki.wait_synced("cert", timeout=60)["certificate"]
        root.must("PUT", "sys/seal")
        try:
            status, resp = app.admin.request_patch(  # type: ignore[attr-defined]
                crd_path(PLURAL, app.ns, "cert"),
                {"spec": {"commonName": "after.example.com"}},
            )
            assert status == 200, resp
            cond = app.wait_condition("cert", "SecretSynced", "False", plural=PLURAL, timeout=60)
            assert "seal" in cond["message"].lower() or cond["reason"].startswith("Vault"), cond
            time.sleep(5)
            assert app.secret_data("cert")["certificate"] == before  # type: ignore[index]
        finally:
            status, resp = root.call("PUT", "sys/unseal", {"key": unseal_key})
        assert status == 200 and resp.get("sealed") is False, resp
        back_at = time.time()
        wait_for(lambda: common_name() == "after.example.com", 90, "the new certificate")
        elapsed = time.time() - back_at
        print(f"pki: new certificate {elapsed:.1f}s after the unseal")
        app.wait_condition("cert", "SecretSynced", "True", plural=PLURAL, timeout=30)
        assert_no_canary(app, own_operator.log_text())
    finally:
        app.admin.request(
            "DELETE", f"/apis/vaultbridge.dev/v1beta1/namespaces/{app.ns}/{PLURAL}/cert"
        )
        wait_for(lambda: app.get(PLURAL, "cert") is None, 60, "the VaultPKISecret to be deleted")
        pki.close()
