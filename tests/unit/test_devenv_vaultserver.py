"""Choosing the dev environment's Vault server, and where the HashiCorp Vault build goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaultbridge.devenv import environment
from vaultbridge.devenv.errors import DevEnvError
from vaultbridge.devenv.vault import vault_dir, vault_module_dir, vault_version
from vaultbridge.devenv.vaultserver import (
    dev_server_argv,
    expected_version,
    resolve_server,
)


def test_flag_beats_environment_variable_beats_running_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VAULTBRIDGE_VAULT_SERVER", raising=False)
    assert resolve_server() == "openbao"
    assert resolve_server(None, "hashicorp") == "hashicorp"
    monkeypatch.setenv("VAULTBRIDGE_VAULT_SERVER", "HashiCorp")
    assert resolve_server(None, "openbao") == "hashicorp"
    assert resolve_server("openbao", "hashicorp") == "openbao"


def test_unknown_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTBRIDGE_VAULT_SERVER", "consul")
    with pytest.raises(DevEnvError) as exc:
        resolve_server()
    assert "'consul'" in str(exc.value)
    assert "openbao, hashicorp" in str(exc.value)


def test_vault_pin_and_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAULTBRIDGE_CACHE", str(tmp_path))
    version = vault_version()
    assert version.startswith("v1.")
    assert expected_version("hashicorp") == version.removeprefix("v")
    directory = vault_dir()
    assert directory.parent == tmp_path
    name, _, pin = directory.name.rpartition("-")
    assert name == f"vault-{version}"
    assert len(pin) == 12


def test_changing_a_pin_changes_the_cache_directory(tmp_path: Path) -> None:
    original = vault_dir()
    module = tmp_path / "vault"
    module.mkdir()
    for name in ("go.mod", "go.sum"):
        (module / name).write_text((vault_module_dir() / name).read_text())
    assert vault_dir(module) == original
    (module / "go.sum").write_text((module / "go.sum").read_text() + "\n")
    assert vault_dir(module) != original


def test_both_servers_share_the_dev_mode_arguments(tmp_path: Path) -> None:
    argv = dev_server_argv("/bin/vault", 8200, "root-x", tmp_path / "audit.hcl")
    assert argv[:3] == ["/bin/vault", "server", "-dev"]
    assert "-dev-root-token-id=root-x" in argv
    assert "-dev-listen-address=127.0.0.1:8200" in argv
    assert f"-config={tmp_path / 'audit.hcl'}" in argv


def test_state_written_before_the_server_was_selectable_still_loads(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps(
            {
                "home": "elsewhere",
                "bin_dir": "/b",
                "ports": {"etcd": 1, "openbao": 2},
                "pids": {"openbao": 3},
                "vault_root_token": "root-1",
                "vault_unseal_key": None,
                "audit": False,
            }
        )
    )
    state = environment.load_state(tmp_path)
    assert state is not None
    assert state.home == str(tmp_path)
    assert state.vault_server == "openbao"
    assert state.ports == {"etcd": 1, "vault": 2}
    assert state.pids == {"vault": 3}
    assert state.vault_addr == "http://127.0.0.1:2"
