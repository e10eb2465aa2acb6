"""Bad input, one test per row of the table in docs/security.md.

Each bad input is either refused at admission (schema / CEL, the field named in the
response's causes) or accepted and turned by the operator into a status condition and a
Warning event that name the field, key, template or object at fault. Meanwhile:

- the operator keeps running and a healthy resource in another namespace keeps syncing
  (checked at the end of every test: a new value in Vault reaches its Secret);
- every value planted in Vault holds a canary, and the last test proves no canary reached
  the operator's debug log, events, status, metrics or exception messages.

Admission rows already proven by tests/integration/test_crds.py are listed in the table with
a pointer to that file, not repeated here.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

from .helpers import App, wait_for
from .operator_harness import OPERATOR_NAMESPACE, OperatorProcess, crd_path, dump

pytestmark = pytest.mark.integration

CANARY = "canary-9d4c-bad-input-never-leak"
TOUCHED_NAMESPACES: list[str] = []


# --- a healthy resource that must keep syncing whatever the others do -----------------------


@dataclass
class Sentinel:
    app: App
    ticks: int = 0

    def still_syncing(self) -> None:
        self.ticks += 1
        value = f"tick-{self.ticks}"
        self.app.vault.kv_put(f"{self.app.ns}/healthy", {"value": value})
        self.app.wait_data("healthy", {"value": value}, timeout=30)


@pytest.fixture(scope="module")
def sentinel(
    devenv: DevState, kube_admin: KubeAdmin, operator: OperatorProcess
) -> Iterator[Sentinel]:
    ns = f"t-sentinel-{secrets.token_hex(3)}"
    kube_admin.ensure(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    wait_for(
        lambda: (
            kube_admin.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200
        ),
        30,
        "default ServiceAccount",
    )
    kube_admin.opt_in_vault_login(ns)
    app = App(devenv, kube_admin, ns)
    app.setup_auth()
    app.vault.kv_put(f"{ns}/healthy", {"value": "tick-0"})
    app.vss("healthy", refreshAfter="1s")
    app.wait_data("healthy", {"value": "tick-0"})
    yield Sentinel(app)
    kube_admin.request("DELETE", f"/api/v1/namespaces/{ns}")


@pytest.fixture
def bad(app: App, sentinel: Sentinel) -> Iterator[App]:
    TOUCHED_NAMESPACES.append(app.ns)
    yield app
    # Whatever this test fed the operator, it still serves everyone else ...
    sentinel.still_syncing()
    # ... and none of the canary values it planted reached an event or a status.
    assert canary_sightings(app.admin, app.ns) == []


def canary_sightings(admin: KubeAdmin, ns: str) -> list[str]:
    found = []
    for plural in ("vaultstaticsecrets", "vaultauths", "vaultconnections", "secrettransformations"):
        _, objs = admin.request("GET", crd_path(plural, ns))
        for obj in objs.get("items", []):
            if CANARY in json.dumps(obj.get("status") or {}):
                found.append(f"status of {plural}/{ns}/{obj['metadata']['name']}")
    _, events = admin.request("GET", f"/api/v1/namespaces/{ns}/events")
    for event in events.get("items", []):
        if CANARY in event.get("message", "") or CANARY in json.dumps(event):
            found.append(f"event {event['reason']} in {ns}")
    return found


# --- admission: refused by the API server, the field named in the causes -------------------


def _dry_run(app: App, plural: str, kind: str, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": kind,
        "metadata": {"name": "bad", "namespace": app.ns},
        "spec": spec,
    }
    return app.admin.request("POST", crd_path(plural, app.ns) + "?dryRun=All", body)


def _vss_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "vaultAuthRef": "default",
        "mount": "secret",
        "type": "kv-v2",
        "path": "team/db",
        "destination": {"name": "db", "create": True},
    }
    spec.update(overrides)
    return spec


def _tr(**transformation: Any) -> dict[str, Any]:
    return {"name": "bad", "create": True, "transformation": transformation}


ADMISSION: list[tuple[str, str, str, dict[str, Any], str]] = [
    # (id, plural, kind, spec, field named in the causes)
    ("negative-duration", "vaultstaticsecrets", "VaultStaticSecret",
     _vss_spec(refreshAfter="-5s"), "spec.refreshAfter"),
    ("version-not-a-number", "vaultstaticsecrets", "VaultStaticSecret",
     _vss_spec(version="latest"), "spec.version"),
    ("address-without-scheme", "vaultconnections", "VaultConnection",
     {"address": "vault.example.com:8200"}, "spec.address"),
    ("address-with-space", "vaultconnections", "VaultConnection",
     {"address": "http://vault local:8200"}, "spec.address"),
    ("timeout-not-a-duration", "vaultconnections", "VaultConnection",
     {"address": "http://vault:8200", "timeout": "forever"}, "spec.timeout"),
    ("prefix-with-slash", "vaultstaticsecrets", "VaultStaticSecret",
     {**_vss_spec(mount=None, path=None, type=None),
      "sources": [{"mount": "secret", "path": "a", "type": "kv-v2", "prefix": "a/b"}]},
     "spec.sources[0].prefix"),
    ("too-many-sources", "vaultstaticsecrets", "VaultStaticSecret",
     {**_vss_spec(mount=None, path=None, type=None),
      "sources": [{"mount": "secret", "path": f"p{i}", "type": "kv-v2", "prefix": f"p{i}"}
                  for i in range(17)]},
     "spec.sources"),
    ("template-too-long", "vaultstaticsecrets", "VaultStaticSecret",
     _vss_spec(destination=_tr(templates={"k": {"text": "x" * 70_000}})),
     "spec.destination.transformation.templates.k.text"),
    ("template-key-with-slash", "vaultstaticsecrets", "VaultStaticSecret",
     _vss_spec(destination=_tr(templates={"a/b": {"text": "x"}})),
     "spec.destination.transformation.templates"),
    ("unknown-auth-method", "vaultauths", "VaultAuth",
     {"method": "ldap"}, "spec.method"),
    ("empty-vault-role", "vaultauths", "VaultAuth",
     {"method": "kubernetes", "kubernetes": {"role": "", "serviceAccount": "default"}},
     "spec.kubernetes.role"),
    ("mount-dotdot-first", "vaultstaticsecrets", "VaultStaticSecret",
     _vss_spec(mount="../sys"), "spec.mount"),
]  # fmt: skip

# Null fields are dropped before validation, so spell the "unset" cases out.
for _case in ADMISSION:
    for _k in [k for k, v in _case[3].items() if v is None]:
        del _case[3][_k]


@pytest.mark.parametrize(
    ("plural", "kind", "spec", "field"),
    [c[1:] for c in ADMISSION],
    ids=[c[0] for c in ADMISSION],
)
def test_refused_at_admission(
    bad: App, plural: str, kind: str, spec: dict[str, Any], field: str
) -> None:
    status, resp = _dry_run(bad, plural, kind, spec)
    assert status == 422, dump(resp)
    causes = resp["details"]["causes"]
    assert any(c.get("field", "").startswith(field) for c in causes), dump(resp)


# --- accepted by the API server, refused by the operator with a condition and an event -------


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[App], None]
    reason: str
    names: str  # text the condition message must contain: the field, key, template or object
    event: str | None = None  # Warning event reason; default from the condition reason


def _plant(app: App, data: dict[str, Any] | None = None, path: str = "bad") -> None:
    app.vault.kv_put(f"{app.ns}/{path}", data or {"password": CANARY, "user": "app"})


def _bad_vss(app: App, **spec: Any) -> None:
    _plant(app)
    spec.setdefault("path", f"{app.ns}/bad")
    app.vss("bad", **spec)


def _templates(**templates: str) -> Callable[[App], None]:
    def setup(app: App) -> None:
        _bad_vss(
            app,
            destination=_tr(templates={k: {"text": v} for k, v in templates.items()}),
        )

    return setup


def _transformation(**transformation: Any) -> Callable[[App], None]:
    def setup(app: App) -> None:
        _bad_vss(app, destination=_tr(**transformation))

    return setup


def _vault_data(data: dict[str, Any], **spec: Any) -> Callable[[App], None]:
    def setup(app: App) -> None:
        _plant(app, data)
        app.vss("bad", path=f"{app.ns}/bad", **spec)

    return setup


# More than 1 MiB of data in one Vault secret, spread over four keys: HashiCorp Vault (≥ 1.21)
# refuses any JSON string value over 1 MiB (its listener's `max_json_string_value_length`),
# OpenBao does not, and one Vault secret holding over 1 MiB is what the operator must refuse on
# both servers (docs/compatibility.md).
OVER_1MIB_VALUE = 300_000
OVER_1MIB = {f"big-{i}": CANARY + "x" * OVER_1MIB_VALUE for i in range(4)}
assert sum(len(v) for v in OVER_1MIB.values()) > 1 << 20 > OVER_1MIB_VALUE + len(CANARY)


def _auth(name: str, spec: dict[str, Any]) -> Callable[[App], None]:
    def setup(app: App) -> None:
        app.create(
            "vaultauths",
            {
                "apiVersion": "vaultbridge.dev/v1beta1",
                "kind": "VaultAuth",
                "metadata": {"name": name},
                "spec": {"vaultConnectionRef": f"{OPERATOR_NAMESPACE}/default", **spec},
            },
        )
        _bad_vss(app, vaultAuthRef=name)

    return setup


def _two_sources(app: App) -> None:
    _plant(app, {"password": CANARY}, "one")
    _plant(app, {"password": CANARY + "-2"}, "two")
    app.vss(
        "bad",
        sources=[
            {"mount": "secret", "path": f"{app.ns}/one", "type": "kv-v2"},
            {"mount": "secret", "path": f"{app.ns}/two", "type": "kv-v2", "prefix": ""},
        ],
        destination=_tr(excludeRaw=True),
    )


def _missing_transformation(app: App) -> None:
    _bad_vss(app, destination=_tr(transformationRefs=[{"name": "no-such-transformation"}]))


def _forbidden_path(app: App) -> None:
    # The role reads only <ns>/*; the canary sits next door.
    app.vault.kv_put(f"{app.ns}-elsewhere/bad", {"password": CANARY})
    app.vss("bad", path=f"{app.ns}-elsewhere/bad")


def _tls_type_without_tls_keys(app: App) -> None:
    _bad_vss(app, destination={"name": "bad", "create": True, "type": "kubernetes.io/tls"})


OPERATOR: list[Case] = [
    Case("regex-invalid", _transformation(includes=["(unclosed"]), "InvalidSpec",
         "destination.transformation.includes"),
    # RE2 syntax, as Go's regexp (VSO): no backreferences. Shapes that only a backtracking
    # engine would choke on, such as ^(a+)+$, are ordinary patterns under RE2.
    Case("regex-backreference", _transformation(excludes=[r"(a)\1"]), "InvalidSpec",
         "destination.transformation.excludes"),
    Case("template-syntax", _templates(broken="{{ secrets.password "), "TransformationError",
         "template 'broken'"),
    Case("template-unknown-filter", _templates(f="{{ secrets.password | nosuchfilter }}"),
         "TransformationError", "template 'f'"),
    Case("template-escape-class", _templates(x="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
         "TransformationError", "template 'x'"),
    Case("template-escape-globals", _templates(x="{{ lipsum.__globals__['os'] }}"),
         "TransformationError", "template 'x'"),
    Case("template-include-file", _templates(x="{% include '/etc/passwd' %}"),
         "TransformationError", "template 'x'"),
    Case("template-output-blowup", _templates(x="{{ 'x' * 50000000 }}"),
         "TransformationError", "template 'x'"),
    Case("template-nested-blowup",
         _templates(x="{% for a in range(1000) %}{% for b in range(1000) %}"
                      "{{ secrets.password }}{% endfor %}{% endfor %}"),
         "TransformationError", "template 'x'"),
    Case("template-runs-forever",
         _templates(x="{% for i in range(100000000) %}{{ i }}{% endfor %}"),
         "TransformationError", "template 'x'"),
    Case("template-value-as-key", _templates(x="{{ secrets[secrets.password] }}"),
         "TransformationError", "template 'x'"),
    Case("template-value-as-include", _templates(x="{% include secrets.password %}"),
         "TransformationError", "template 'x'"),
    Case("template-value-as-attribute", _templates(x="{{ secrets.user[secrets.password] }}"),
         "TransformationError", "template 'x'"),
    Case("vault-data-over-1mib", _vault_data(OVER_1MIB), "SecretTooLarge", "1000000 bytes",
         event="TransformationError"),
    Case("vault-key-not-a-secret-key", _vault_data({"bad key!": CANARY}), "InvalidKey",
         "'bad key!'", event="TransformationError"),
    Case("vault-key-raw-collides", _vault_data({"_raw": CANARY}), "KeyCollision", "'_raw'",
         event="TransformationError"),
    Case("sources-same-key", _two_sources, "KeyCollision", "'password'",
         event="TransformationError"),
    Case("missing-vaultauth", lambda app: _bad_vss(app, vaultAuthRef="no-such-auth"),
         "VaultAuthNotFound", "vaultAuthRef 'no-such-auth'"),
    Case("missing-vaultconnection",
         _auth("no-conn", {"vaultConnectionRef": "no-such-connection", "method": "kubernetes",
                           "kubernetes": {"role": "r", "serviceAccount": "default"}}),
         "VaultConnectionNotFound", "no-such-connection"),
    Case("missing-secrettransformation", _missing_transformation,
         "SecretTransformationNotFound", "no-such-transformation"),
    Case("nonexistent-vault-role",
         _auth("no-role", {"method": "kubernetes",
                           "kubernetes": {"role": "no-such-role", "serviceAccount": "default"}}),
         "VaultLoginFailed", "no-such-role", event="VaultClientError"),
    Case("missing-service-account",
         _auth("no-sa", {"method": "kubernetes",
                         "kubernetes": {"role": "r", "serviceAccount": "ghost"}}),
         "ServiceAccountNotFound", "ghost"),
    Case("missing-vault-path", lambda app: app.vss("bad", path=f"{app.ns}/not-written"),
         "VaultNotFound", "not-written", event="VaultClientError"),
    Case("encoded-dotdot-not-decoded",
         lambda app: app.vss("bad", path=f"{app.ns}/%2e%2e/bad"),
         "VaultNotFound", "%2e%2e", event="VaultClientError"),
    Case("permission-denied", _forbidden_path, "VaultPermissionDenied", "permission denied",
         event="VaultClientError"),
    Case("destination-type-mismatch", _tls_type_without_tls_keys, "DestinationInvalid",
         "tls.crt"),
]  # fmt: skip


# The cases where Vault's own answer decides the outcome also run against HashiCorp Vault in
# `make test` (marker both_servers; docs/compatibility.md).
BOTH_SERVERS = {"vault-data-over-1mib", "nonexistent-vault-role", "missing-vault-path",
                "permission-denied"}  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.both_servers] if c.id in BOTH_SERVERS else [])
        for c in OPERATOR
    ],
)
def test_reported_in_status_and_event(bad: App, case: Case) -> None:
    case.setup(bad)
    cond = bad.wait_condition("bad", "SecretSynced", "False", case.reason, timeout=45)
    assert case.names in cond["message"], cond
    ready = bad.condition("vaultstaticsecrets", "bad", "Ready")
    assert ready is not None and ready["status"] == "False"
    event = bad.wait_event("bad", case.event or case.reason)
    assert event["type"] == "Warning" and case.names in event["message"], event
    # Nothing half-written: no Secret unless a previous good sync made one.
    assert bad.secret("bad") is None


# --- odd Vault values that are valid: converted by documented rules, never mangled -----------


def test_nested_and_typed_vault_values_become_compact_json(bad: App) -> None:
    _plant(
        bad,
        {
            "nested": {"b": [1, {"c": CANARY}], "a": None},
            "number": 1.5,
            "flag": True,
            "empty": "",
            "unicode": "żółw 🐢",
        },
    )
    bad.vss("bad", path=f"{bad.ns}/bad")
    data = bad.wait_data("bad", {"flag": "true"})
    assert data["nested"] == '{"a":null,"b":[1,{"c":"' + CANARY + '"}]}'
    assert data["number"] == "1.5"
    assert data["empty"] == ""
    assert data["unicode"] == "żółw 🐢"


def test_binary_and_control_characters_survive_byte_for_byte(bad: App) -> None:
    # Vault speaks JSON, so "binary" arrives as text: NUL and control characters are kept
    # exactly; a lone surrogate (not valid UTF-8) was already replaced by Vault's decoder.
    raw_body = (
        '{"data": {"nul": "a\\u0000b", "ctl": "\\u0001\\u007f\\u001b[0m", "half": "\\udc80"}}'
    )
    status, _ = _vault_raw_put(bad, f"{bad.ns}/bin", raw_body)
    assert status in (200, 204)
    bad.vss("bin", path=f"{bad.ns}/bin")
    wait_for(lambda: bad.secret("bin") is not None, 30, "Secret bin")
    raw = {
        k: base64.b64decode(v)
        for k, v in bad.secret("bin")["data"].items()  # type: ignore[index]
    }
    assert raw["nul"] == b"a\x00b"
    assert raw["ctl"] == b"\x01\x7f\x1b[0m"
    assert raw["half"] == "\ufffd".encode()


def _vault_raw_put(app: App, path: str, body: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{app.devenv.vault_addr}/v1/secret/data/{path}", data=body.encode(), method="POST"
    )
    req.add_header("X-Vault-Token", app.devenv.vault_root_token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_vaultauth_with_nonexistent_role_is_invalid(bad: App) -> None:
    kubernetes = {"role": "no-such-role", "serviceAccount": "default"}
    _auth("ghost-role", {"method": "kubernetes", "kubernetes": kubernetes})(bad)
    cond = bad.wait_condition(
        "ghost-role", "Ready", "False", "VaultLoginFailed", plural="vaultauths"
    )
    assert "no-such-role" in cond["message"]
    assert bad.get("vaultauths", "ghost-role")["status"]["valid"] is False  # type: ignore[index]


def test_fixing_the_input_recovers(bad: App) -> None:
    _templates(broken="{{ secrets.password ")(bad)
    bad.wait_condition("bad", "SecretSynced", "False", "TransformationError")
    bad.patch_vss(
        "bad",
        {"spec": {"destination": {"transformation": {"templates": {"broken": None}}}}},
    )
    bad.wait_data("bad", {"password": CANARY, "user": "app"})
    bad.wait_condition("bad", "SecretSynced", "True")


# --- leaks: the canary planted in every test above never left the data path ------------------


def test_zz_no_canary_in_logs_or_metrics(operator: OperatorProcess) -> None:
    # Events and status were checked after each test, before its namespace went away.
    if len(TOUCHED_NAMESPACES) < len(OPERATOR):
        pytest.skip("the leak check needs the whole module to have run first")
    forms = [CANARY, base64.b64encode(CANARY.encode()).decode()[:24], json.dumps(CANARY)[1:-1]]
    text = operator.log_text()
    metrics = operator.metrics()
    assert '"level": "debug"' in text
    found = [f"log: {f}" for f in forms if f in text]
    found += [f"metrics: {f}" for f in forms if f in metrics]
    assert found == [], found
