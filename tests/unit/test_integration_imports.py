"""No module of tests/integration imports from a test module (issue #18).

A test module that others import from cannot be read, moved or deleted on its own, and a
fixture imported into another module is a second, separate fixture with the same name. What
several modules share lives in the non-test modules of tests/integration (helpers.py,
operator_harness.py, *_support.py) and its fixtures in conftest.py.

Read from the source's AST, imports inside functions included (a lazy import is still one).
"""

from __future__ import annotations

import ast
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
PACKAGE = "tests.integration"


def _is_test_module(name: str) -> bool:
    return name.startswith("test_")


def imports_of_test_modules(source: str, *, package: str = PACKAGE) -> list[str]:
    """The imports in `source` (a module of `package`) that name a test module of `package`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                module = node.module or ""
            else:
                # Resolve `from .x`/`from ..integration.x` against the module's package.
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                module = ".".join([*base, *([node.module] if node.module else [])])
            if module == package:
                # `from . import test_x` / `from tests.integration import test_x`
                names = [f"{package}.{a.name}" for a in node.names if _is_test_module(a.name)]
            elif module.startswith(package + ".") and _is_test_module(
                module.removeprefix(package + ".").split(".")[0]
            ):
                names = [module]
            else:
                names = []
        elif isinstance(node, ast.Import):
            names = [
                a.name
                for a in node.names
                if a.name.startswith(package + ".")
                and _is_test_module(a.name.removeprefix(package + ".").split(".")[0])
            ]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names]
    return found


def test_the_rule_sees_every_spelling() -> None:
    refused = [
        "from .test_static_secret import wait_for",
        "from .test_deploy_rbac import (\n    CHART,\n    helm_bin,\n)",
        "from . import test_pki_secret",
        "from tests.integration.test_dynamic_secret import DB",
        "from tests.integration import test_vault_tls",
        "import tests.integration.test_inject_webhook",
        "from ..integration.test_pki_secret import PKI",
        "def f():\n    from .test_pki_secret import PKI, PLURAL\n",
    ]
    for source in refused:
        assert imports_of_test_modules(source), source
    allowed = [
        "from .helpers import App, wait_for",
        "from .faults_support import OwnOperator",
        "from . import helpers",
        "from tests.integration.operator_harness import install_crds",
        "from vaultbridge.devenv import environment",
        "import pytest",
        "from ..unit.test_x import y",  # not an integration module: not this rule's business
    ]
    for source in allowed:
        assert not imports_of_test_modules(source), source


def test_no_integration_module_imports_a_test_module() -> None:
    modules = sorted(INTEGRATION.glob("*.py"))
    assert len([m for m in modules if _is_test_module(m.name)]) > 10, "tests/integration moved?"
    offences = {
        str(path.relative_to(INTEGRATION.parents[1])): found
        for path in modules
        if (found := imports_of_test_modules(path.read_text()))
    }
    assert not offences, (
        "a module of tests/integration imports from a test module; move what it needs to a "
        f"non-test module (helpers.py, *_support.py) or a fixture to conftest.py: {offences}"
    )


def test_helper_modules_hold_no_tests() -> None:
    """A non-test module of tests/integration is never collected: a test there would not run."""
    for path in sorted(INTEGRATION.glob("*.py")):
        if _is_test_module(path.name):
            continue
        tree = ast.parse(path.read_text())
        tests = [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name.startswith(("test_", "Test"))
        ]
        assert not tests, f"{path.name} defines {tests}: tests belong in a test_*.py module"
