"""Which tests are Vault-facing: the ones `make test` runs against HashiCorp Vault as well.

The rule is mechanical, so a new test cannot silently escape it:

- a test that needs the dev environment (the `devenv` fixture, directly or through any other
  fixture: `kube_admin`, `vault_server`, `operator`, `app`, ...) is **Vault-facing** — the
  environment's Vault server is there, and the operator talks to it — unless it is marked
  `kube_only`;
- `kube_only` is for the few tests that need only the API server (CRDs, the kube client, the
  engine, chart/RBAC objects). Collection FAILS when a test marked `kube_only` reaches Vault:
  one of the Vault fixtures in its fixture closure, or a Vault-ish name (`vault_addr`,
  `VaultClient`, `start_operator`, ...) in its own source or in the source of any fixture it
  uses. So a wrong `kube_only` cannot hide a Vault test from the HashiCorp session;
- a test without the dev environment is Vault-facing if it starts a Vault server of its own
  (a throwaway `server -dev` of the session's kind, a whole dev environment as the benchmark
  test does) or builds a `VaultClient`: the same Vault-ish names; the rest (chart lint,
  Dockerfile, wheel) touch no server and are neither.

`pytest_collection_modifyitems` (tests/conftest.py) adds the `vault_facing` marker to every
Vault-facing test, so the HashiCorp session selects them with `-m vault_facing`
(scripts/test-hashicorp.sh); tests/unit/test_vault_facing.py checks the classes.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "integration"
MARKER = "vault_facing"
KUBE_ONLY = "kube_only"
DEV_ENVIRONMENT_FIXTURE = "devenv"
# Fixtures that hand a test the Vault server or an operator (which logs in to Vault).
VAULT_FIXTURES = frozenset({"vault_server", "operator", "app"})
# Names in a test's (or its fixtures') source that mean it reaches Vault.
VAULT_SOURCE = re.compile(
    r"vault_(?:addr|root_token|unseal_key|server)\b|VaultClient|VaultAdmin|vaultbridge\.vault\b"
    r"|start_operator|setup_auth|OperatorProcess"
    # a Vault server of the test's own: a throwaway `server -dev`, or a whole dev environment
    r"|throwaway_bao|server_binary|resolve_server|VAULTBRIDGE_DEV_HOME"
)


@functools.cache
def _source(function: Callable[..., object]) -> str:
    """A function's source, once per function (fixtures recur in every test's closure)."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""  # a plugin's fixture without source (tmp_path, monkeypatch, ...)


class Misclassified(pytest.UsageError):
    """A test marked `kube_only` reaches Vault."""


def _fixture_sources(item: pytest.Item) -> Iterable[tuple[str, str]]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return
    for name, defs in info.name2fixturedefs.items():
        if name == DEV_ENVIRONMENT_FIXTURE:
            continue  # the environment itself: Kubernetes and Vault alike
        for fixturedef in defs:
            yield name, _source(fixturedef.func)


def vault_reasons(item: pytest.Item) -> list[str]:
    """Why a test reaches Vault: its Vault fixtures and Vault-ish names in its sources."""
    reasons = sorted(VAULT_FIXTURES & set(item.fixturenames))
    function = getattr(item, "function", None)
    if function is not None:
        found = VAULT_SOURCE.search(_source(function))
        if found:
            reasons.append(f"its source names {found.group(0)}")
    for name, source in _fixture_sources(item):
        found = VAULT_SOURCE.search(source)
        if found:
            reasons.append(f"fixture {name} names {found.group(0)}")
    return reasons


def is_vault_facing(item: pytest.Item) -> bool:
    """True if the test needs the dev environment or reaches a Vault server of its own, and is
    not (validly) `kube_only`; raises `Misclassified` for a `kube_only` test that reaches
    Vault."""
    reasons = vault_reasons(item)
    if item.get_closest_marker(KUBE_ONLY) is None:
        return bool(reasons) or DEV_ENVIRONMENT_FIXTURE in item.fixturenames
    if reasons:
        raise Misclassified(
            f"{item.nodeid} is marked {KUBE_ONLY} but reaches Vault ({'; '.join(reasons)}): "
            f"remove the marker, it must run against both Vault servers (tests/vault_facing.py)"
        )
    return False


def mark_vault_facing(items: list[pytest.Item], under: Path | None = None) -> None:
    """Add the `vault_facing` marker to the Vault-facing tests among `items` (only those in
    the directory `under`, when given: unit tests that build a `VaultClient` on a fake
    transport are not)."""
    for item in items:
        if under is not None and not item.path.is_relative_to(under):
            continue
        if is_vault_facing(item):
            item.add_marker(MARKER)
