"""Condition reasons: the strings users see are unchanged, and each has a declared origin."""

from __future__ import annotations

import ast
from pathlib import Path

from vaultbridge.controllers.reasons import (
    GIVE_UP_ON_DELETE_REASONS,
    ORIGINS,
    Origin,
    Reason,
    event_reason,
    is_vault_side,
    origin,
)
from vaultbridge.secrets import errors as data_errors
from vaultbridge.vault import errors as vault_errors


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def test_every_reason_declares_an_origin() -> None:
    assert set(ORIGINS) == set(Reason)


def test_every_vault_error_reason_is_vault_side() -> None:
    reasons = {vault_errors.VaultError.reason} | {
        c.reason for c in _subclasses(vault_errors.VaultError)
    }
    for reason in reasons:
        assert Reason(reason).origin is Origin.VAULT, reason
        assert event_reason(reason) == "VaultClientError"


def test_every_data_error_reason_is_the_specs_and_grouped_in_events() -> None:
    for cls in [data_errors.DataError, *_subclasses(data_errors.DataError)]:
        assert Reason(cls.reason).origin is Origin.SPEC
        assert event_reason(cls.reason) == "TransformationError"


def test_references_spelled_vault_are_not_vault_side() -> None:
    # The old rule was a "Vault" prefix minus exceptions; the origins keep its answers.
    for reason in ("VaultAuthNotFound", "VaultConnectionNotFound", "InvalidVaultAuth"):
        assert not is_vault_side(reason)
        assert event_reason(reason) == reason
    assert set(Reason) >= GIVE_UP_ON_DELETE_REASONS


def test_strings_are_what_users_see() -> None:
    assert Reason.INVALID_SPEC == "InvalidSpec"
    assert f"{Reason.PATH_NOT_ALLOWED}" == "PathNotAllowed"
    assert origin("SomethingNew") is Origin.KUBERNETES
    assert not is_vault_side("SomethingNew")


def test_no_reconcile_problem_spells_its_reason_as_a_string() -> None:
    # A reason written as a literal has no declared origin (it would fall back to
    # "Kubernetes side" silently): every ReconcileProblem names a `Reason` member, or passes
    # on the reason of a typed error (VaultError, DataError, a policy verdict).
    src = Path(__file__).resolve().parents[2] / "src" / "vaultbridge"
    literal = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "ReconcileProblem"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                literal.append(f"{path.relative_to(src)}:{node.lineno} {node.args[0].value!r}")
    assert not literal, "\n".join(literal)
