"""`vaultbridge migrate` end to end on files: inputs, outputs, report formats and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vaultbridge.cli import main
from vaultbridge.migrate.inputs import parse_stream, split_documents

GOOD = """\
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultStaticSecret
metadata: {name: app, namespace: team-a}
spec:
  mount: kvv2
  path: app/db
  type: kv-v2
  destination: {name: app-db, create: true}
---
# a comment-only document is skipped
---
apiVersion: v1
kind: Secret
metadata: {name: plain, namespace: team-a}
data: {token: c2VjcmV0LXZhbHVl}
"""

BAD = """\
apiVersion: secrets.hashicorp.com/v1beta1
kind: CSISecrets
metadata: {name: csi, namespace: team-a}
spec: {}
---
apiVersion: v1
kind: Secret
metadata: {name: broken
data: {token: c2VjcmV0LXZhbHVl}
---
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultConnection
metadata: {name: default, namespace: team-a}
spec: {address: "http://vault:8200", adress: "typo"}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["migrate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_good_file_to_stdout_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "in.yaml"
    f.write_text(GOOD)
    code, out, err = run([str(f), "--report-format", "json"], capsys)
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["VaultStaticSecret", "Secret"]
    assert docs[0]["apiVersion"] == "vaultbridge.dev/v1beta1"
    assert docs[1] == yaml.safe_load(GOOD.split("---")[2])  # passed through untouched
    report = json.loads(err)
    assert [o["result"] for o in report["objects"]] == ["converted", "passed through"]
    assert report["objects"][0]["source"] == f"{f}#1"
    assert report["summary"]["converted"] == 1


def test_bad_input_gives_report_lines_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    code, out, err = run([str(f), "--report-format", "json"], capsys)
    assert code == 1
    assert out == ""  # nothing convertible, nothing printed
    objects = json.loads(err)["objects"]
    assert [o["result"] for o in objects] == ["not convertible"] * 3
    assert objects[0]["problems"][0].startswith("CSISecrets is not supported")
    assert objects[1]["problems"][0].startswith("broken YAML:")
    assert "line 9" in objects[1]["problems"][0]
    assert objects[2]["problems"] == [
        "unknown field spec.adress (not in VSO's VaultConnection schema)"
    ]
    assert "c2VjcmV0LXZhbHVl" not in err and "typo" not in err


def test_table_report_and_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "a.yaml").write_text(GOOD)
    (src / "nested" / "b.yml").write_text(BAD)
    (src / "ignored.txt").write_text("not yaml: [")
    out_dir = tmp_path / "out"
    code, out, err = run([str(src), "--out", str(out_dir)], capsys)
    assert code == 1
    assert out == ""
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "team-a_secret_plain.yaml",
        "team-a_vaultstaticsecret_app.yaml",
    ]
    assert "not convertible" in err and "passed through" in err
    assert "CSISecrets is not" in err
    assert "1 converted, 3 not convertible, 1 passed through" in err


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD))
    code, out, _ = run(["-"], capsys)
    assert code == 0
    assert len(list(yaml.safe_load_all(out))) == 2


def test_missing_file_is_a_report_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(tmp_path / "nope.yaml"), "--report-format", "json"], capsys)
    assert code == 1
    assert json.loads(err)["objects"][0]["problems"] == ["cannot read: No such file or directory"]


def test_no_input_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2
    assert "--from-cluster" in err


def test_global_in_same_stream_is_converted_and_referenced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(
        """\
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultAuth
metadata: {name: auth, namespace: team-a}
spec:
  vaultAuthGlobalRef: {allowDefault: true}
  kubernetes: {role: app}
---
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultAuthGlobal
metadata: {name: default, namespace: vso}
spec:
  allowedNamespaces: ["*"]
  defaultAuthMethod: kubernetes
  kubernetes: {serviceAccount: default, role: fallback}
"""
    )
    code, out, err = run([str(f), "--report-format", "json", "--vso-namespace", "vso"], capsys)
    assert code == 0, err
    auth, glob = list(yaml.safe_load_all(out))
    assert auth["spec"] == {
        "vaultAuthGlobalRef": {"allowDefault": True},
        "kubernetes": {"role": "app"},
    }
    assert (glob["kind"], glob["metadata"]["namespace"]) == (
        "VaultAuthGlobal",
        "vaultbridge-system",
    )
    results = [o["result"] for o in json.loads(err)["objects"]]
    assert results == ["converted", "converted with changes"]


def test_list_documents_are_expanded() -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}],
        }
    )
    docs = list(parse_stream(text, "x"))
    assert [d.source for d in docs] == ["x#1.items[0]"]


def test_split_documents_line_numbers() -> None:
    parts: list[Any] = split_documents("a: 1\n---\nb: 2\n...\n--- {c: 3}\n")
    assert parts == [(1, "a: 1\n"), (3, "b: 2\n"), (5, "{c: 3}\n")]


def test_table_shows_names_literally(capsys: pytest.CaptureFixture[str]) -> None:
    from vaultbridge.migrate.convert import Outcome, Verdict
    from vaultbridge.migrate.report import render_table

    out = io.StringIO()
    render_table(
        [Outcome("f.yaml#1", "[bold]Kind", "ns", "[red]x[/red]", Verdict.FAILED, problems=["[p]"])],
        out,
    )
    text = out.getvalue()
    assert "[bold]Kind" in text and "[red]x[/red]" in text and "[p]" in text


def test_deeply_nested_yaml_is_a_report_line() -> None:
    (doc,) = list(parse_stream("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep"))
    assert doc.error is not None and doc.error.startswith("broken YAML")


def test_same_object_twice_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = GOOD.split("---", maxsplit=1)[0]
    (tmp_path / "a.yaml").write_text(one)
    (tmp_path / "b.yaml").write_text(one)
    code, out, err = run([str(tmp_path), "--report-format", "json"], capsys)
    assert code == 1
    assert len(list(yaml.safe_load_all(out))) == 1
    objects = json.loads(err)["objects"]
    assert [o["result"] for o in objects] == ["converted", "not convertible"]
    assert objects[1]["problems"] == [f"the same object as {tmp_path / 'a.yaml'}#1"]
