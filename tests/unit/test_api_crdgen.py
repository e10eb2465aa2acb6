"""The generated CRDs: committed == generated, structural, and carrying the rules we rely on."""

from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import BaseModel, Field

from vaultbridge.api import crdgen
from vaultbridge.api.kinds import KINDS, kind_info
from vaultbridge.api.schema import (
    VALIDATIONS,
    SchemaError,
    iter_nodes,
    structural_problems,
    structural_schema,
)

ROOT = Path(__file__).resolve().parents[2]


def _crd(kind: str) -> dict[str, Any]:
    return crdgen.crd_manifest(kind_info(kind))


def _spec_schema(kind: str) -> dict[str, Any]:
    crd = _crd(kind)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec: dict[str, Any] = schema["properties"]["spec"]
    return spec


def _rules(node: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get(VALIDATIONS, [])]


def test_committed_files_equal_generator_output() -> None:
    expected = crdgen.expected_files(ROOT / "deploy" / "crds", ROOT / "docs" / "crd-reference.md")
    stale = crdgen.stale_files(ROOT / "deploy" / "crds", expected)
    diffs = crdgen.check(expected, stale)
    assert not diffs, "run `python -m vaultbridge.api.crdgen`:\n" + "".join(diffs)


def test_generation_is_deterministic() -> None:
    first = crdgen.render_crds()
    second = crdgen.render_crds()
    assert first == second
    assert crdgen.render_bundle() == crdgen.render_bundle()
    assert sorted(first) == sorted(f"vaultbridge.dev_{k.plural}.yaml" for k in KINDS)


def test_check_mode_reports_drift_and_write_mode_fixes_it(tmp_path: Path) -> None:
    out, docs = tmp_path / "crds", tmp_path / "ref.md"
    assert crdgen.main(["--out", str(out), "--docs", str(docs)]) == 0
    assert crdgen.main(["--check", "--out", str(out), "--docs", str(docs)]) == 0

    victim = out / "vaultbridge.dev_vaultauths.yaml"
    victim.write_text(victim.read_text().replace("vauth", "vax"))
    (out / "vaultbridge.dev_oldkinds.yaml").write_text("stale")
    assert crdgen.main(["--check", "--out", str(out), "--docs", str(docs)]) == 1

    assert crdgen.main(["--out", str(out), "--docs", str(docs)]) == 0
    assert not (out / "vaultbridge.dev_oldkinds.yaml").exists()
    assert crdgen.main(["--check", "--out", str(out), "--docs", str(docs)]) == 0


def test_check_mode_prints_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    crdgen.main(["--out", str(out), "--no-docs"])
    victim = out / "vaultbridge.dev_vaultconnections.yaml"
    victim.write_text(victim.read_text().replace("default: 30s", "default: 31s"))
    assert crdgen.main(["--check", "--out", str(out), "--no-docs"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("-") and line.endswith("default: 31s") for line in lines)
    assert any(line.startswith("+") and line.endswith("default: 30s") for line in lines)
    assert any(line.startswith("+++") and "(generated)" in line for line in lines)


def test_bundle_is_valid_multi_document_yaml() -> None:
    docs = [d for d in yaml.safe_load_all(crdgen.render_bundle()) if d]
    assert [d["spec"]["names"]["kind"] for d in docs] == [k.kind for k in KINDS]


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_crd_envelope(info: Any) -> None:
    crd = yaml.safe_load(crdgen.render_crds()[crdgen.crd_filename(info)])
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{info.plural}.vaultbridge.dev"
    spec = crd["spec"]
    assert spec["group"] == "vaultbridge.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["vaultbridge"]
    assert spec["names"]["shortNames"] == list(info.short_names)
    (version,) = spec["versions"]
    assert version["name"] == "v1beta1"
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    # A VaultAuthGlobal does nothing by itself, so it has no Healthy column.
    assert columns[1:] == (["Age"] if info.kind == "VaultAuthGlobal" else ["Healthy", "Age"])
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}


def test_short_names_and_synced_columns() -> None:
    names = {k.kind: k.short_names for k in KINDS}
    assert names == {
        "VaultConnection": ("vconn",),
        "VaultAuth": ("vauth",),
        "VaultAuthGlobal": ("vag",),
        "VaultStaticSecret": ("vss",),
        "VaultDynamicSecret": ("vds",),
        "VaultPKISecret": ("vpki",),
        "SecretTransformation": ("vst",),
    }
    for kind in ("VaultStaticSecret", "VaultDynamicSecret", "VaultPKISecret"):
        col = _crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"][0]
        assert col["name"] == "Synced"
        assert col["jsonPath"] == '.status.conditions[?(@.type=="SecretSynced")].status'
    for kind in ("VaultConnection", "VaultAuth", "VaultAuthGlobal", "SecretTransformation"):
        col = _crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"][0]
        assert (col["jsonPath"], col["type"]) == (".status.valid", "boolean")


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural_and_documented(info: Any) -> None:
    schema = _crd(info.kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        node = schema["properties"][part]
        assert structural_problems(node) == []
        for path, sub in iter_nodes(node):
            assert "$ref" not in sub and "anyOf" not in sub and "title" not in sub, path
            assert "type" in sub, path


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_every_string_list_and_map_is_bounded(info: Any) -> None:
    """The API server refuses CEL rules whose cost it cannot bound; bound everything."""
    schema = _crd(info.kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, node in iter_nodes(schema["properties"][part]):
            kind = node["type"]
            if kind == "string" and "enum" not in node and node.get("format") != "date-time":
                assert "maxLength" in node, path
            if kind == "array":
                assert "maxItems" in node, path
            if kind == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, path


def test_camel_case_and_vso_spellings() -> None:
    conn = _spec_schema("VaultConnection")["properties"]
    assert {
        "address",
        "caCertSecretRef",
        "tlsServerName",
        "skipTLSVerify",
        "headers",
        "timeout",
    } <= set(conn)
    assert conn["timeout"]["default"] == "30s"
    assert conn["skipTLSVerify"]["default"] is False
    pki = _spec_schema("VaultPKISecret")["properties"]
    assert "excludeCNFromSans" in pki and "ipSans" in pki and "uriSans" in pki
    assert pki["format"]["enum"] == ["pem", "der", "pem_bundle"]
    assert pki["privateKeyFormat"]["enum"] == ["", "der", "pkcs8"]
    dyn = _spec_schema("VaultDynamicSecret")["properties"]
    assert dyn["requestHTTPMethod"]["enum"] == ["GET", "POST", "PUT"]
    assert (dyn["renewalPercent"]["minimum"], dyn["renewalPercent"]["maximum"]) == (0, 90)
    assert dyn["renewalPercent"]["default"] == 67
    status = _crd("VaultDynamicSecret")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    status_props = status["properties"]["status"]["properties"]
    assert "requestID" in status_props["secretLease"]["properties"]
    assert {"secretMAC", "staticCredsMetaData", "lastRenewalTime"} <= set(status_props)


def test_required_fields_and_defaults() -> None:
    auth = _spec_schema("VaultAuth")
    # With a vaultAuthGlobalRef a VaultAuth may leave out what the global sets, so nothing is
    # `required` in the schema: CEL rules require it when there is no global (below).
    assert "required" not in auth
    assert auth["properties"]["method"]["enum"] == ["kubernetes", "jwt", "appRole", "token"]
    assert "default" not in auth["properties"]["mount"]  # method-specific, see effective_mount()
    k8s = auth["properties"]["kubernetes"]
    assert "required" not in k8s
    assert k8s["properties"]["tokenExpirationSeconds"]["minimum"] == 600
    # The default (600) is applied to the effective spec (VaultAuthSpec), after the merge.
    assert "default" not in k8s["properties"]["tokenExpirationSeconds"]
    glob = _spec_schema("VaultAuthGlobal")
    assert "required" not in glob
    assert glob["properties"]["defaultAuthMethod"]["enum"] == [
        "kubernetes",
        "jwt",
        "appRole",
        "token",
    ]
    assert {"role", "serviceAccount", "mount", "namespace", "headers", "params"} <= set(
        glob["properties"]["kubernetes"]["properties"]
    )
    static = _spec_schema("VaultStaticSecret")
    # destination (and its name) is required by a CEL rule only when delivery is secret.
    assert "required" not in static
    assert static["properties"]["delivery"]["default"] == "secret"
    assert static["properties"]["hmacSecretData"]["default"] is True
    dest = static["properties"]["destination"]
    assert "required" not in dest
    rules = [r["message"] for r in static["x-kubernetes-validations"]]
    assert "destination.name is required when delivery is secret" in rules
    assert dest["properties"]["name"]["maxLength"] == 253
    assert dest["properties"]["type"]["default"] == "Opaque"
    assert _spec_schema("VaultPKISecret")["properties"]["expiryOffset"]["default"] == "5m"
    assert sorted(_spec_schema("VaultDynamicSecret")["required"]) == [
        "mount",
        "path",
    ]


def test_cel_rules_present_where_expected() -> None:
    auth = _spec_schema("VaultAuth")
    rules = _rules(auth)
    assert "has(self.vaultAuthGlobalRef) || has(self.method)" in rules
    for method in ("kubernetes", "jwt", "appRole", "token"):
        assert (
            "has(self.vaultAuthGlobalRef) || !has(self.method) || "
            f"self.method != '{method}' || has(self.{method})"
        ) in rules
    assert any("has(self.kubernetes.role)" in r for r in rules)
    assert "!has(self.serviceAccount) || !has(self.secretRef)" in _rules(auth["properties"]["jwt"])
    assert _rules(auth["properties"]["vaultAuthGlobalRef"])
    assert _rules(auth["properties"]["allowedNamespaces"])

    static = _spec_schema("VaultStaticSecret")
    rules = " ".join(_rules(static))
    assert "self.sources" in rules and "kv-v2" in rules
    for field in ("mount", "path"):
        field_rules = " ".join(_rules(static["properties"][field]))
        assert "startsWith('/')" in field_rules and "[.][.]" in field_rules
    source = static["properties"]["sources"]["items"]
    assert "kv-v2" in " ".join(_rules(source))
    templates = static["properties"]["destination"]["properties"]["transformation"]["properties"][
        "templates"
    ]
    assert "k.matches(r'^[-._a-zA-Z0-9]+$')" in " ".join(_rules(templates))

    conditions = _crd("VaultStaticSecret")["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_descriptions_come_from_field_docstrings() -> None:
    conn = _spec_schema("VaultConnection")
    assert conn["properties"]["address"]["description"].startswith("URL of the server")
    # Wrapped docstrings are joined into one line for kubectl explain to re-wrap.
    assert "\n" not in conn["properties"]["caCertSecretRef"]["description"]


class _Leaf(BaseModel):
    """A leaf."""

    x: int


class _Union(BaseModel):
    value: int | str


class _Recursive(BaseModel):
    child: "_Recursive | None" = None


class _Optional(BaseModel):
    leaf: Annotated[_Leaf | None, Field(description="Optional leaf.")] = None
    keyed: Annotated[dict[Annotated[str, Field(pattern="^[a-z]+$")], int], Field(max_length=3)] = {}


def test_converter_inlines_refs_and_collapses_optionals() -> None:
    schema = structural_schema(_Optional)
    leaf = schema["properties"]["leaf"]
    assert leaf["type"] == "object" and leaf["description"] == "Optional leaf."
    assert leaf["properties"]["x"] == {"type": "integer"}
    keyed = schema["properties"]["keyed"]
    assert keyed["additionalProperties"] == {"type": "integer"}
    assert _rules(keyed) == ["self.all(k, k.matches(r'^[a-z]+$'))"]
    assert "default" not in keyed  # empty defaults are left out


def test_converter_refuses_what_is_not_structural() -> None:
    with pytest.raises(SchemaError, match="unions"):
        structural_schema(_Union)
    with pytest.raises(SchemaError, match="recursive"):
        structural_schema(_Recursive)
