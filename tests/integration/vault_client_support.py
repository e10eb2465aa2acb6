"""Pieces of the Vault client tests that more than one module uses: `uid` (a random name),
`Recorder` (the transport's `on_request` hook) and `make_approle` (an AppRole mount and role
with its credentials). Used by test_vault_client.py and test_vault_storms.py.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from vaultbridge.vault import VaultClient


def uid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


class Recorder:
    """``on_request`` hook that keeps every (operation, outcome)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | str]] = []

    def __call__(self, operation: str, outcome: int | str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((operation, outcome))

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)


@dataclass
class AppRole:
    mount: str
    role: str
    role_id: str
    secret_id: str


async def make_approle(
    root: VaultClient, *, policies: list[str] | None = None, **role: Any
) -> AppRole:
    mount, name = uid("approle"), uid("role")
    await root.write(f"sys/auth/{mount}", {"type": "approle"})
    await root.write(
        f"auth/{mount}/role/{name}",
        {"token_policies": policies or ["default"], "secret_id_num_uses": 0, **role},
    )
    role_id = await root.read(f"auth/{mount}/role/{name}/role-id")
    secret = await root.write(f"auth/{mount}/role/{name}/secret-id", {}, method="POST")
    assert role_id.data is not None
    assert secret is not None
    assert secret.data is not None
    return AppRole(mount, name, role_id.data["role_id"], secret.data["secret_id"])
