"""The Vault-facing rule (tests/vault_facing.py): which integration tests `make test` runs
against HashiCorp Vault as well, and that no test can silently escape it.

Two kinds of check, both by real pytest collection in a subprocess (no server is started;
collection only reads the dev environment's state file): a scratch suite that exercises the
rule's edges, and the project's own tests/integration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Prints {nodeid: [marker names]} of every collected test, one JSON line, after collection.
_COLLECT = """
import json, sys
import pytest

class Report:
    def pytest_collection_finish(self, session):
        print("ITEMS=" + json.dumps(
            {i.nodeid: sorted({m.name for m in i.iter_markers()}) for i in session.items}
        ))

sys.exit(pytest.main([*sys.argv[1:], "--collect-only", "-q", "-p", "no:cacheprovider"],
                     plugins=[Report()]))
"""


def _collect(
    *args: str, cwd: Path = ROOT, home: Path | None = None
) -> tuple[int, dict[str, list[str]], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("VAULTBRIDGE_VAULT_SERVER", None)
    if home is not None:
        env["VAULTBRIDGE_DEV_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", _COLLECT, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    items: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        if line.startswith("ITEMS="):
            items = json.loads(line.removeprefix("ITEMS="))
    return done.returncode, items, done.stdout + done.stderr


_SCRATCH_CONFTEST = """
import pytest
from tests.vault_facing import mark_vault_facing

def pytest_collection_modifyitems(config, items):
    mark_vault_facing(items)

@pytest.fixture
def devenv():
    return object()

@pytest.fixture
def kube_admin(devenv):
    return devenv

@pytest.fixture
def vault_server(devenv):
    return devenv

@pytest.fixture
def policy_reader(kube_admin):
    return kube_admin.vault_addr
"""

_SCRATCH_INI = """
[pytest]
addopts = --strict-markers
markers =
    kube_only: x
    vault_facing: x
"""


def _scratch(tmp_path: Path, tests: str) -> tuple[int, dict[str, list[str]], str]:
    (tmp_path / "pytest.ini").write_text(_SCRATCH_INI)
    (tmp_path / "conftest.py").write_text(_SCRATCH_CONFTEST)
    (tmp_path / "test_scratch.py").write_text(textwrap.dedent(tests))
    return _collect(str(tmp_path), cwd=tmp_path, home=tmp_path / "home")


def test_rule_on_a_scratch_suite(tmp_path: Path) -> None:
    rc, items, out = _scratch(
        tmp_path,
        """
        import pytest

        def test_kube_admin_only(kube_admin): pass

        @pytest.mark.kube_only
        def test_marked_kube_only(kube_admin): pass

        def test_vault_fixture(vault_server): pass

        def test_own_client():
            from vaultbridge.vault.client import VaultClient

        def test_no_server(): pass
        """,
    )
    assert rc == 0, out
    facing = {n.split("::")[1] for n, marks in items.items() if "vault_facing" in marks}
    # Unmarked and on the dev environment: Vault-facing by default, whatever it does.
    assert facing == {"test_kube_admin_only", "test_vault_fixture", "test_own_client"}, out


def test_kube_only_that_reaches_vault_fails_collection(tmp_path: Path) -> None:
    for body, reason in [
        ("def test_x(vault_server): pass", "vault_server"),
        ("def test_x(kube_admin):\n    return kube_admin.vault_root_token", "vault_root_token"),
        ("def test_x(policy_reader): pass", "fixture policy_reader names vault_addr"),
    ]:
        header = "import pytest\npytestmark = pytest.mark.kube_only\n"
        rc, _, out = _scratch(tmp_path, header + body)
        assert rc != 0, out
        assert "is marked kube_only but reaches Vault" in out and reason in out, out


def test_the_integration_suite_is_classified(tmp_path: Path) -> None:
    rc, items, out = _collect("tests/integration", home=tmp_path / "home")
    assert rc == 0, out[-4000:]
    assert items, out[-4000:]
    facing = {n for n, marks in items.items() if "vault_facing" in marks}
    kube_only = {n for n, marks in items.items() if "kube_only" in marks}
    assert not facing & kube_only

    def module(name: str) -> set[str]:
        found = {n for n in items if n.startswith(f"tests/integration/{name}.py::")}
        assert found, name
        return found

    # Every test of the modules that exist to talk to Vault runs against both servers ...
    for name in [
        "test_vault_client",
        "test_static_secret",
        "test_dynamic_secret",
        "test_pki_secret",
        "test_token_persistence",
        "test_connection_auth",
        "test_auth_global",
        "test_inject_agent",
        "test_faults_vault",
        "test_faults_deletion",
        "test_bench_quick",
    ]:
        assert module(name) <= facing, sorted(module(name) - facing)
    # ... the API-server-only ones are kube_only, and the fault tests reaching Vault are in.
    assert module("test_kube_client") <= kube_only
    assert module("test_crds") <= kube_only
    faults = {n for n, marks in items.items() if "faults" in marks}
    assert faults and faults <= facing, sorted(faults - facing)
