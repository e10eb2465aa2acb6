"""Import contracts between the layers (docs/architecture.md), read from the source's AST.

- `kube/` and `engine/` are Kubernetes-generic: they import nothing of our kinds (`api/`), of
  the decisions (`controllers/`, `guard/`), of Vault (`vault/`) or of the wiring.
- `vault/` knows nothing of Kubernetes; `secrets/` is pure.
- No import cycle between modules, counting imports inside functions too (a lazy import that
  hides a cycle is still two modules that need each other); only `if TYPE_CHECKING:` imports,
  which never run, are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "vaultbridge"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, *, top_level_only: bool, type_checking: bool = True) -> Iterator[str]:
    """The vaultbridge modules `path` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))

    def walk(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                if type_checking:
                    yield from walk(node.body)
                continue
            if top_level_only and isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                if isinstance(node, ast.ClassDef):
                    yield from walk(node.body)
                continue
            yield node
            if not top_level_only:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        yield from walk([child])
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        if isinstance(child, ast.ExceptHandler):
                            yield from walk(child.body)
                        elif isinstance(child, ast.stmt):
                            yield from walk([child])

    for node in walk(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vaultbridge"):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("vaultbridge"):
                continue
            yield target
            for alias in node.names:
                # `from . import destination` imports a module, not a name.
                candidate = f"{target}.{alias.name}"
                if _module_path(candidate) is not None:
                    yield candidate


def _module_path(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _modules(under: str = "") -> list[Path]:
    root = PACKAGE / under if under else PACKAGE
    return sorted(root.rglob("*.py"))


FORBIDDEN = {
    "kube": ("api", "controllers", "guard", "vault", "secrets", "engine", "operator", "devenv"),
    "engine": ("api", "controllers", "guard", "vault", "secrets", "operator", "devenv"),
    "vault": ("api", "controllers", "guard", "kube", "engine", "operator", "devenv"),
    "secrets": ("api", "controllers", "guard", "kube", "engine", "vault", "operator", "devenv"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    bad = [
        f"{_module_name(path)} imports {target}"
        for path in _modules(layer)
        for target in _imports(path, top_level_only=False)
        if any(
            target == f"vaultbridge.{other}" or target.startswith(f"vaultbridge.{other}.")
            for other in FORBIDDEN[layer]
        )
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in _modules():
        name = _module_name(path)
        deps = set()
        for target in _imports(path, top_level_only=False, type_checking=False):
            if _module_path(target) is not None and target != name:
                deps.add(target)
        graph[name] = deps

    # Tarjan-free DFS: report the first cycle found, with its path.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is not a cycle of concern.
            if node.startswith(dep + ".") or dep.startswith(node + "."):
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_contract_test_sees_imports() -> None:
    """Guard against a walker that silently finds nothing."""
    controllers = _module_path("vaultbridge.controllers.static_secret")
    assert controllers is not None
    found = set(_imports(controllers, top_level_only=True))
    assert "vaultbridge.engine.controller" in found
    assert any(t.startswith("vaultbridge.controllers.") for t in found)


# `vaultbridge agent` runs in every injected pod: it loads the contract, the spec models, the
# pure pipeline, the Vault client and `fetch`, and nothing of the operator.
AGENT_FORBIDDEN = (
    "kube",
    "engine",
    "controllers",
    "guard",
    "operator",
    "settings",
    "devenv",
    "changes",
    "persistence",
    "migrate",
    "observability.metrics",
    "observability.server",
)


def _forbidden_for_agent(module: str) -> bool:
    return any(
        module == f"vaultbridge.{other}" or module.startswith(f"vaultbridge.{other}.")
        for other in AGENT_FORBIDDEN
    )


def test_agent_modules_import_nothing_of_the_operator() -> None:
    paths = [*_modules("agent"), PACKAGE / "fetch.py", PACKAGE / "backoff.py"]
    bad = [
        f"{_module_name(path)} imports {target}"
        for path in paths
        for target in _imports(path, top_level_only=False)
        if _forbidden_for_agent(target)
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "entry",
    [
        # What the init container and the sidecar run: the CLI's `agent` subcommand.
        "from vaultbridge.cli import main; rc = main(['agent', '--once'])",
        "from vaultbridge.agent.main import main; rc = main(['--once'])",
    ],
)
def test_agent_process_loads_nothing_of_the_operator(entry: str) -> None:
    """At run time, transitively: every module the agent's process has loaded once it has
    parsed its arguments and its (here missing) config."""
    import json
    import os
    import subprocess
    import sys

    code = f"import json, sys; {entry}; print(json.dumps([rc, sorted(sys.modules)]))"
    env = {k: v for k, v in os.environ.items() if k != "VAULTBRIDGE_AGENT_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    rc, modules = json.loads(proc.stdout.splitlines()[-1])
    assert rc == 2  # no config: refused, after every agent module was imported
    loaded = [m for m in modules if m.startswith("vaultbridge")]
    assert "vaultbridge.agent.objects" in loaded and "vaultbridge.fetch" in loaded
    bad = [m for m in loaded if _forbidden_for_agent(m)]
    assert not bad, f"the agent process loaded {bad}"
