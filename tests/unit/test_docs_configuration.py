"""docs/configuration.md must document every flag of `vaultbridge run`."""

from __future__ import annotations

from pathlib import Path

from vaultbridge.settings import flag_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_flag_and_env_var_is_documented() -> None:
    text = DOC.read_text()
    for flag, env, default, help_text in flag_table():
        row = f"| `{flag}` | `{env}` | `{default}` | {help_text} |"
        assert row in text, f"docs/configuration.md lacks or misstates {flag}"
