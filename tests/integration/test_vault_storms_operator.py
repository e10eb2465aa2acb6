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

from .test_faults_support import OwnOperator, bao, fault_app, own_operator
from .test_static_secret import App, wait_for

pytestmark = pytest.mark.integration

__all__ = ["fault_app", "own_operator"]

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
