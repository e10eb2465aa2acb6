"""The generated CRDs on the real API server.

The unit tests prove the models and the generated schemas agree with each other; these prove the
API server agrees too: it installs the committed CRDs, serves their field descriptions to
`kubectl explain`, accepts every documented example and refuses bad objects at admission, with
a message that names the offending field, before any controller sees them.
"""

from __future__ import annotations

import copy
import functools
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_api_models import ACCEPTED, REJECTED, Mutation
from vaultbridge.api import (
    HEALTHY,
    KINDS,
    SECRET_SYNCED,
    VAULT_STATIC_SECRET,
    kind_info,
)
from vaultbridge.api.examples import EXAMPLES
from vaultbridge.controllers.status import set_condition
from vaultbridge.devenv.environment import DevState
from vaultbridge.devenv.kubeapi import KubeAdmin

# kube_only: the API server alone, never Vault (tests/vault_facing.py)
pytestmark = [pytest.mark.integration, pytest.mark.kube_only]

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
FIELD_MANAGER = "vaultbridge-tests"

# The schemas cannot check regular expressions (CEL has no "is this a valid RE2" function),
# so the API server admits these and the operator reports them in the object's status.
REGEX_ONLY = "not a valid regular expression"


# --- helpers -----------------------------------------------------------------------------------


def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy; the last failure explains a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s: {result!r}")
        time.sleep(0.1)


class Kubectl:
    """The kubectl built with the dev environment, with a private discovery cache.

    A private cache keeps one session's view of our freshly installed kinds from being
    served stale out of (or leaking into) the user's ~/.kube/cache.
    """

    def __init__(self, devenv: DevState, cache_dir: Path) -> None:
        self._argv = [
            str(Path(devenv.bin_dir) / "kubectl"),
            "--kubeconfig",
            devenv.kubeconfig,
            "--cache-dir",
            str(cache_dir),
        ]

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [*self._argv, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()}"
        return proc.stdout


def _collection(kind: str, namespace: str) -> str:
    info = kind_info(kind)
    return f"/apis/{info.group}/{info.version}/namespaces/{namespace}/{info.plural}"


def _example(kind: str, mutate: Mutation | None = None, name: str | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(EXAMPLES[kind])
    # The examples carry the documentation's namespace; the URL decides where they go.
    obj["metadata"] = {"name": name} if name else {"generateName": "case-"}
    if mutate is not None:
        mutate(obj["spec"])
    return obj


def _dry_run_create(
    admin: KubeAdmin, namespace: str, obj: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Full validation and admission, nothing stored: cases cannot collide or leak."""
    return admin.request("POST", _collection(obj["kind"], namespace) + "?dryRun=All", obj)


def _changed_fields(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Top-level spec fields a mutation added, removed or changed."""
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _crd_files() -> dict[str, dict[str, Any]]:
    crds = (yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(CRD_DIR.glob("*.yaml")))
    return {crd["spec"]["names"]["kind"]: crd for crd in crds}


def _condition(crd: dict[str, Any], kind: str) -> str | None:
    for cond in crd.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return str(cond["status"])
    return None


def _established(admin: KubeAdmin, name: str) -> dict[str, Any]:
    status, crd = admin.request("GET", f"{CRD_API}/{name}")
    assert status == 200, crd
    ready = _condition(crd, "Established") == "True" and _condition(crd, "NamesAccepted") == "True"
    return crd if ready else {}


def _apply_crds(kubectl: Kubectl) -> None:
    # --force-conflicts: another session or a `make deploy` may own the fields; ours win.
    kubectl.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        str(CRD_DIR),
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kubectl(devenv: DevState, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(devenv, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="session")
def crds_installed(kube_admin: KubeAdmin, kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    """Server-side apply deploy/crds/ (idempotent) and wait until every kind is served.

    Returns kind → the CRD as the API server stores it.
    """
    _apply_crds(kubectl)
    return {
        info.kind: _eventually(functools.partial(_established, kube_admin, info.crd_name), 30)
        for info in KINDS
    }


@pytest.fixture(scope="module")
def scratch_namespace(kube_admin: KubeAdmin) -> Iterator[str]:
    """One namespace for the many dry-run admission cases, instead of one per case."""
    name = f"t-crds-{secrets.token_hex(4)}"
    kube_admin.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    yield name
    kube_admin.request("DELETE", f"/api/v1/namespaces/{name}")


# --- installation ------------------------------------------------------------------------------


def test_committed_crds_cover_every_kind() -> None:
    from vaultbridge.api.kinds import ALL_KINDS  # namespaced kinds + VaultPathPolicy

    assert sorted(_crd_files()) == sorted(info.kind for info in ALL_KINDS)


def test_crds_are_established_with_names_and_the_schema_we_sent(
    crds_installed: dict[str, dict[str, Any]],
) -> None:
    files = _crd_files()
    for info in KINDS:
        stored = crds_installed[info.kind]
        accepted = stored["status"]["acceptedNames"]
        assert accepted["plural"] == info.plural
        assert accepted["shortNames"] == list(info.short_names)
        assert accepted["categories"] == ["vaultbridge"]
        # The API server silently drops schema keywords it does not know; a stored schema
        # equal to the file proves every rule and description we generated is in force.
        (version,) = stored["spec"]["versions"]
        assert version == files[info.kind]["spec"]["versions"][0], info.kind


def test_reapplying_the_crds_changes_nothing(
    crds_installed: dict[str, dict[str, Any]], kube_admin: KubeAdmin, kubectl: Kubectl
) -> None:
    before = {
        kind: kube_admin.request("GET", f"{CRD_API}/{kind_info(kind).crd_name}")[1]["metadata"]
        for kind in crds_installed
    }
    _apply_crds(kubectl)
    for kind, meta in before.items():
        _, crd = kube_admin.request("GET", f"{CRD_API}/{kind_info(kind).crd_name}")
        assert crd["metadata"]["generation"] == meta["generation"], kind
        assert crd["metadata"]["resourceVersion"] == meta["resourceVersion"], kind


# --- kubectl explain ---------------------------------------------------------------------------


def _schema_at(crd: dict[str, Any], path: list[str]) -> dict[str, Any]:
    node: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for name in path:
        node = node["properties"][name]
    return node


@pytest.mark.parametrize(
    ("resource", "kind", "path"),
    [
        ("vaultstaticsecret.spec.destination", "VaultStaticSecret", ["spec", "destination"]),
        ("vaultauth.spec.kubernetes", "VaultAuth", ["spec", "kubernetes"]),
        ("vss.spec.refreshAfter", "VaultStaticSecret", ["spec", "refreshAfter"]),
    ],
)
def test_kubectl_explain_shows_our_descriptions(
    crds_installed: dict[str, dict[str, Any]],
    kubectl: Kubectl,
    resource: str,
    kind: str,
    path: list[str],
) -> None:
    node = _schema_at(crds_installed[kind], path)

    def explained() -> str:
        # The API server publishes a new CRD's OpenAPI a moment after it is Established.
        out = " ".join(kubectl.run("explain", resource).split())
        assert f"KIND: {kind}" in out and "VERSION: v1beta1" in out, out
        assert " ".join(node["description"].split()) in out, out
        return out

    out = _eventually(explained)
    required = set(node.get("required", []))
    for name, prop in node.get("properties", {}).items():
        assert "description" in prop, f"{resource}.{name} has no description"
        # kubectl wraps long descriptions; whitespace is collapsed on both sides.
        description = re.escape(" ".join(prop["description"].split()))
        marker = " -required-" if name in required else ""
        line = rf"(^| ){re.escape(name)} <[^>]+>{marker} {description}"
        assert re.search(line, out), f"{resource}.{name}{marker} is not explained: {out}"


# --- admission ---------------------------------------------------------------------------------


def test_every_example_is_accepted_and_server_defaults_match_the_models(
    crds_installed: dict[str, dict[str, Any]], kube_admin: KubeAdmin, namespace: str
) -> None:
    for info in KINDS:  # dependency order, as a user would apply them
        status, created = kube_admin.request(
            "POST", _collection(info.kind, namespace), _example(info.kind, name="example")
        )
        assert status == 201, (info.kind, created.get("message"))
        status, stored = kube_admin.request("GET", f"{_collection(info.kind, namespace)}/example")
        assert status == 200, stored
        # The CRD's defaults were applied by the server and mean what the models' defaults
        # mean: the controller sees the same spec whether a field was defaulted or omitted.
        assert info.parse_spec(stored) == info.parse_spec(EXAMPLES[info.kind]), info.kind

    _, vss = kube_admin.request("GET", f"{_collection('VaultStaticSecret', namespace)}/example")
    assert vss["spec"]["hmacSecretData"] is True
    assert vss["spec"]["destination"]["type"] == "Opaque"
    assert vss["spec"]["destination"]["overwrite"] is False


def _unset(*fields: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        for name in fields:
            spec.pop(name, None)

    return mutate


def _update(**fields: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        spec.update(fields)

    return mutate


# (kind, mutation, field the API server reports, text its message must contain)
NAMED_REJECTIONS: list[tuple[str, Mutation, str, str]] = [
    ("VaultStaticSecret", _update(type="kv-v3"), "spec.type", 'Unsupported value: "kv-v3"'),
    (
        "VaultStaticSecret",
        _update(refreshAfter="5 minutes"),
        "spec.refreshAfter",
        'spec.refreshAfter: Invalid value: "5 minutes"',
    ),
    (
        "VaultStaticSecret",
        _update(destination={"create": True}),
        "spec.destination.name",
        "spec.destination.name: Invalid value: destination.name is required when delivery is "
        "secret",
    ),
    (
        "VaultStaticSecret",
        _update(type="kv-v1", version=2),
        "spec.version",
        "version can only be set with type kv-v2",
    ),
    (
        "VaultStaticSecret",
        _update(sources=[{"mount": "kv", "path": "a", "type": "kv-v2"}]),
        "spec",
        "set either mount, path and type, or a non-empty sources list, not both",
    ),
    (
        "VaultAuth",
        _unset("kubernetes"),
        "spec",
        "kubernetes must be set when method is kubernetes",
    ),
    (
        "VaultStaticSecret",
        _update(path="team-a/../team-b"),
        "spec.path",
        "must not contain '..' segments",
    ),
    (
        "VaultStaticSecret",
        _update(destination={"name": "Bad_Name"}),
        "spec.destination.name",
        'spec.destination.name: Invalid value: "Bad_Name"',
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "text"),
    NAMED_REJECTIONS,
    ids=[f"{k}-{f}-{t[:30]}" for k, _, f, t in NAMED_REJECTIONS],
)
def test_api_server_rejects_with_the_field_named(
    crds_installed: dict[str, dict[str, Any]],
    kube_admin: KubeAdmin,
    scratch_namespace: str,
    kind: str,
    mutate: Mutation,
    field: str,
    text: str,
) -> None:
    status, resp = _dry_run_create(kube_admin, scratch_namespace, _example(kind, mutate))
    assert status == 422, resp
    assert resp["reason"] == "Invalid"
    assert text in resp["message"]
    # Tools (kubectl, Argo CD, Flux) point at the field through the structured causes.
    causes = resp["details"]["causes"]
    assert any(c["field"] == field and c["message"] in resp["message"] for c in causes), causes


SERVER_REJECTED = [case for case in REJECTED if case[2] != REGEX_ONLY]
OPERATOR_REJECTED = [case for case in REJECTED if case[2] == REGEX_ONLY]


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    SERVER_REJECTED,
    ids=[f"{k}-{e}" for k, _, e in SERVER_REJECTED],
)
def test_api_server_rejects_what_the_models_reject(
    crds_installed: dict[str, dict[str, Any]],
    kube_admin: KubeAdmin,
    scratch_namespace: str,
    kind: str,
    mutate: Mutation,
    expected: str,
) -> None:
    obj = _example(kind, mutate)
    status, resp = _dry_run_create(kube_admin, scratch_namespace, obj)
    assert status == 422, resp
    message = resp["message"]
    assert expected in message
    changed = _changed_fields(EXAMPLES[kind]["spec"], obj["spec"])
    assert any(name in message for name in changed), (changed, message)


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    OPERATOR_REJECTED,
    ids=[f"{k}-{e}" for k, _, e in OPERATOR_REJECTED],
)
def test_invalid_regexes_pass_admission_and_are_left_to_the_operator(
    crds_installed: dict[str, dict[str, Any]],
    kube_admin: KubeAdmin,
    scratch_namespace: str,
    kind: str,
    mutate: Mutation,
    expected: str,
) -> None:
    # If the API server learns to refuse these, move them to the admission tests above and
    # drop the status reporting the controllers do for them.
    status, resp = _dry_run_create(kube_admin, scratch_namespace, _example(kind, mutate))
    assert status == 201, resp.get("message")


@pytest.mark.parametrize(
    ("kind", "mutate"), ACCEPTED, ids=[f"{k}-{i}" for i, (k, _) in enumerate(ACCEPTED)]
)
def test_api_server_accepts_what_the_models_accept(
    crds_installed: dict[str, dict[str, Any]],
    kube_admin: KubeAdmin,
    scratch_namespace: str,
    kind: str,
    mutate: Mutation,
) -> None:
    obj = _example(kind, mutate)
    status, resp = _dry_run_create(kube_admin, scratch_namespace, obj)
    assert status == 201, resp.get("message")
    assert kind_info(kind).parse_spec(resp) == kind_info(kind).parse_spec(obj)


# --- kubectl get and status --------------------------------------------------------------------
#
# The dev environment is shared: an operator started by another test or by hand may reconcile
# the objects made here and write their status at any moment. These tests therefore retry on
# conflicts and compare what kubectl prints with the object as it was when kubectl read it.


def _table(output: str) -> list[dict[str, str]]:
    """Rows of `kubectl get` output, cut at the header's column offsets (cells may be empty)."""
    header, *lines = output.rstrip("\n").splitlines()
    names = header.split()
    starts = [header.index(f" {n}") + 1 if i else 0 for i, n in enumerate(names)]
    ends = [*starts[1:], None]
    return [
        {n: line[a:b].strip() for n, a, b in zip(names, starts, ends, strict=True)}
        for line in lines
    ]


def _write_fresh(
    admin: KubeAdmin, path: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """GET, change, PUT — again on a conflict with a concurrent writer."""
    for _ in range(20):
        _, obj = admin.request("GET", path.removesuffix("/status"))
        change(obj)
        status, resp = admin.request("PUT", path, obj)
        if status != 409:
            assert status == 200, resp
            return resp
        time.sleep(0.05)
    raise AssertionError(f"PUT {path}: conflicts did not stop")


def _condition_status(obj: dict[str, Any], kind: str) -> str:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return str(cond["status"])
    return ""


def test_kubectl_get_shows_synced_healthy_and_age(
    crds_installed: dict[str, dict[str, Any]],
    kube_admin: KubeAdmin,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    base = _collection("VaultStaticSecret", namespace)
    status, resp = kube_admin.request("POST", base, _example("VaultStaticSecret", name="shown"))
    assert status == 201, resp

    def set_status(obj: dict[str, Any]) -> None:
        if obj.get("status", {}).get("conditions"):
            return  # an operator got there first: its conditions serve as well as ours
        status: dict[str, Any] = {}
        set_condition(status, SECRET_SYNCED, True, "Synced", "", 1)
        set_condition(status, HEALTHY, False, "VaultError", "sealed", None)
        obj["status"] = status

    _write_fresh(kube_admin, f"{base}/shown/status", set_status)

    def consistent_view() -> tuple[dict[str, str], dict[str, Any]] | None:
        _, before = kube_admin.request("GET", f"{base}/shown")
        (row,) = _table(kubectl.run("get", "vss", "-n", namespace, "-o", "wide"))
        _, after = kube_admin.request("GET", f"{base}/shown")
        same = before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
        return (row, after) if same else None

    row, obj = _eventually(consistent_view)
    assert list(row) == ["NAME", "SYNCED", "HEALTHY", "AGE"]
    assert row["NAME"] == "shown"
    assert row["SYNCED"] == _condition_status(obj, SECRET_SYNCED)
    assert row["HEALTHY"] == _condition_status(obj, HEALTHY)
    assert {row["SYNCED"], row["HEALTHY"]} & {"True", "False"}, row
    assert row["AGE"][:-1].isdigit() and row["AGE"][-1] in "smhd", row


def test_columns_and_category_for_every_kind(
    crds_installed: dict[str, dict[str, Any]],
    kube_admin: KubeAdmin,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    for info in KINDS:
        status, resp = kube_admin.request(
            "POST", _collection(info.kind, namespace), _example(info.kind, name="shown")
        )
        assert status == 201, resp
    for info in KINDS:
        (row,) = _table(kubectl.run("get", info.short_names[0], "-n", namespace))
        assert list(row) == ["NAME", *(c.name.upper() for c in info.columns)], info.kind
        assert row["NAME"] == "shown"

    # `kubectl get vaultbridge` lists every kind through the shared category.
    out = kubectl.run("get", "vaultbridge", "-n", namespace, "-o", "name")
    assert set(out.split()) == {f"{info.singular}.{info.group}/shown" for info in KINDS}


def test_status_is_a_subresource(
    crds_installed: dict[str, dict[str, Any]], kube_admin: KubeAdmin, namespace: str
) -> None:
    # Controllers write status without racing users' spec edits, and users cannot forge it.
    base = _collection("VaultStaticSecret", namespace)
    obj = _example("VaultStaticSecret", name="s")
    obj["status"] = {"secretMAC": "forged"}
    status, created = kube_admin.request("POST", base, obj)
    assert status == 201, created
    assert created.get("status", {}).get("secretMAC") is None
    assert created["metadata"]["generation"] == 1

    def edit_spec_and_forge_status(current: dict[str, Any]) -> None:
        current["spec"]["refreshAfter"] = "2h"
        current["status"] = {"secretMAC": "forged"}

    edited = _write_fresh(kube_admin, f"{base}/s", edit_spec_and_forge_status)
    assert edited["metadata"]["generation"] == 2
    assert edited["spec"]["refreshAfter"] == "2h"
    assert edited.get("status", {}).get("secretMAC") != "forged"

    def write_status(current: dict[str, Any]) -> None:
        current["spec"]["refreshAfter"] = "3h"  # ignored by the status subresource
        current["status"] = {"lastGeneration": 2, "secretMAC": "mac"}

    updated = _write_fresh(kube_admin, f"{base}/s/status", write_status)
    assert updated["metadata"]["generation"] == 2
    assert updated["spec"]["refreshAfter"] == "2h"
    written = VAULT_STATIC_SECRET.status_model.model_validate(updated["status"])
    assert (written.last_generation, written.secret_mac) == (2, "mac")
