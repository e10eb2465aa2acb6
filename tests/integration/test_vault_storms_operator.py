"""Issue #20 through a running operator: a policy that denies the path costs no logins.

Today's half of the issue's "done when" (the Vault layer): objects denied by policy report the
path and capability and retry with the same token; the identity's logins and live tokens stay
bounded; fixing the policy syncs them without a login. (The objects still report
`SecretSynced=False` with a Warning event while denied: that is the reconcilers' part.)
"""

from __future__ import annotations

import time

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.settings import Settings

from .faults_support import OwnOperator, bao, wait_all_synced
from .helpers import App, wait_for

pytestmark = pytest.mark.integration

OBJECTS = 30
#: How long the denied objects retry (their backoff climbs 5 s → 60 s meanwhile).
DENIED_SECONDS = 60.0


def role_accessors(devenv: DevState, role: str) -> set[str]:
    """Live token accessors issued to the Kubernetes auth role ``role``."""
    root = bao(devenv)
    status, listed = root.call("LIST", "auth/token/accessors")
    assert status == 200, listed
    found = set()
    for accessor in listed["data"]["keys"]:
        status, info = root.call("POST", "auth/token/lookup-accessor", {"accessor": accessor})
        if status == 200 and ((info.get("data") or {}).get("meta") or {}).get("role") == role:
            found.add(accessor)
    return found


def test_denied_objects_cost_no_logins_and_sync_once_the_policy_is_fixed(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = fault_app
    names = [f"denied-{i}" for i in range(OBJECTS)]
    for name in names:
        app.vault.kv_put(f"{app.ns}-elsewhere/{name}", {"value": name})
        app.vss(name, path=f"{app.ns}-elsewhere/{name}", refreshAfter="5s")
    before = role_accessors(devenv, app.vault.role)
    op = own_operator.start()
    for name in names:
        cond = app.wait_condition(name, "SecretSynced", "False", "VaultPermissionDenied")
        assert (
            f"a policy must grant 'read' on 'secret/data/{app.ns}-elsewhere/{name}'"
            in (cond["message"])
        ), cond
    time.sleep(DENIED_SECONDS)  # the objects retry on their backoff meanwhile
    logins = op.metric("vaultbridge_vault_logins_total", method="kubernetes", result="success")
    live = role_accessors(devenv, app.vault.role) - before
    checks = op.metric("vaultbridge_vault_token_checks_total")
    reads = op.metric("vaultbridge_vault_requests_total", operation="kv_read")
    print(
        f"\n{OBJECTS} denied objects for {DENIED_SECONDS:.0f} s: {logins:.0f} login(s), "
        f"{len(live)} live token(s), {reads:.0f} denied reads, {checks:.0f} lookup-self checks"
    )
    assert logins <= 1
    assert len(live) <= 2

    # Fixing the policy: every object syncs on its next retry, with the same token.
    app.vault.allow_role(
        [f"secret/data/{app.ns}/*", f"secret/data/{app.ns}-elsewhere/*", f"kv1/{app.ns}/*"]
    )
    for name in names:
        app.wait_condition(name, "SecretSynced", "True", timeout=120)
    assert op.metric("vaultbridge_vault_logins_total", method="kubernetes", result="success") == (
        logins
    )
    wait_for(lambda: op.metric("vaultbridge_vault_live_tokens") >= 1, 10, "live tokens gauge")


#: A quota well below what the operator manages on a loaded test machine (~5 syncs/s), so it
#: bites; the issue's 20/s does not, here.
QUOTA_OBJECTS = 100
QUOTA_RATE = 2
#: The operator's default --workers (the test starts it without the flag): the reads that can
#: be in flight when the first 429 comes back.
WORKERS = Settings.workers


def test_rate_limit_quota_is_a_rate_signal_not_object_failures(
    fault_app: App, own_operator: OwnOperator, devenv: DevState
) -> None:
    app = fault_app
    names = [f"q-{i}" for i in range(QUOTA_OBJECTS)]
    for name in names:
        app.vault.kv_put(f"{app.ns}/{name}", {"value": name})
    root = bao(devenv)
    quota = f"storm-{app.ns}"
    # On this namespace's KV paths only: other tests' reads are not limited.
    root.must(
        "POST",
        f"sys/quotas/rate-limit/{quota}",
        {"path": f"secret/data/{app.ns}/*", "rate": QUOTA_RATE, "interval": "1s"},
    )
    try:
        for name in names:
            app.vss(name)
        # A cold start: all 300 are waiting when the operator starts.
        op = own_operator.start()
        started = time.monotonic()
        wait_all_synced(app.admin, app.ns, QUOTA_OBJECTS, 600)
        elapsed = time.monotonic() - started
    finally:
        root.call("DELETE", f"sys/quotas/rate-limit/{quota}")
    reads = op.metric("vaultbridge_vault_requests_total", operation="kv_read")
    rejected = op.metric("vaultbridge_vault_requests_total", operation="kv_read", status="429")
    _, resp = app.admin.request("GET", f"/api/v1/namespaces/{app.ns}/events")
    warnings = [e for e in resp.get("items", []) if e.get("type") == "Warning"]
    print(
        f"\n{QUOTA_OBJECTS} objects under a {QUOTA_RATE}/s quota: {reads:.0f} reads, "
        f"{rejected:.0f} rejected ({100 * rejected / max(reads, 1):.1f} %), synced in "
        f"{elapsed:.1f} s (N / quota = {QUOTA_OBJECTS / QUOTA_RATE:.0f} s), "
        f"{len(warnings)} Warning events, rate limit now "
        f"{op.metric('vaultbridge_vault_request_rate_limit'):.1f}/s"
    )
    # The first 429 is seen one round trip late: what the workers had in flight then is
    # rejected once; after that, at most 5 %.
    assert rejected <= WORKERS + 0.05 * reads
    assert warnings == [], [(e["reason"], e["message"]) for e in warnings[:5]]
