"""The database secrets engine of one test (`DB`): its mount on the dev environment's OpenBao,
configured for the PostgreSQL of the `pg` fixture (conftest.py), its roles and the app's
VaultDynamicSecrets. Used by test_dynamic_secret.py and every module that needs real leases.
"""

from __future__ import annotations

from typing import Any

from .helpers import App
from .operator_harness import PG_SUPERUSER_PASSWORD, Postgres, dump

PLURAL = "vaultdynamicsecrets"


class DB:
    """One test's database secrets engine mount and the app's VaultDynamicSecrets."""

    def __init__(self, app: App, pg: Postgres) -> None:
        self.app = app
        self.pg = pg
        self.bao = app.vault.bao
        self.mount = f"db-{app.ns}"
        self.bao.must("POST", f"sys/mounts/{self.mount}", {"type": "database"})
        self.bao.must(
            "POST",
            f"{self.mount}/config/pg",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:"
                f"{pg.port}/postgres?sslmode=disable",
                "username": "postgres",
                "password": PG_SUPERUSER_PASSWORD,
                "allowed_roles": ["*"],
                "verify_connection": True,
            },
        )
        # The operator's token may read credentials of this mount and renew/revoke leases.
        policy = f"""
path "{self.mount}/creds/*" {{ capabilities = ["read", "update"] }}
path "{self.mount}/static-creds/*" {{ capabilities = ["read"] }}
path "kv1/{app.ns}/*" {{ capabilities = ["read"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
path "sys/leases/revoke" {{ capabilities = ["update"] }}
"""
        self.bao.must("PUT", f"sys/policies/acl/{app.vault.role}", {"policy": policy})

    def role(self, name: str, default_ttl: str, max_ttl: str) -> None:
        self.bao.must(
            "POST",
            f"{self.mount}/roles/{name}",
            {
                "db_name": "pg",
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                    "VALID UNTIL '{{expiration}}';"
                ],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            },
        )

    def vds(self, name: str, role: str = "app", **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "vaultbridge.dev/v1beta1",
            "kind": "VaultDynamicSecret",
            "metadata": {"name": name},
            "spec": {
                "vaultAuthRef": "default",
                "mount": self.mount,
                "path": f"creds/{role}",
                "destination": {"name": name, "create": True},
                **spec,
            },
        }
        return self.app.create(PLURAL, body)

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.app.get(PLURAL, name) or {}).get("status") or {})

    def wait_synced(self, name: str, timeout: float = 30) -> dict[str, str]:
        self.app.wait_condition(name, "SecretSynced", "True", plural=PLURAL, timeout=timeout)
        data = self.app.secret_data(name)
        assert data is not None and data.get("username") and data.get("password"), dump(
            self.status(name)
        )
        return data

    def lease_ttl(self, lease_id: str) -> int | None:
        """Remaining TTL of the lease in OpenBao; None when OpenBao no longer knows it."""
        status, resp = self.bao.call("PUT", "sys/leases/lookup", {"lease_id": lease_id})
        if status != 200:
            return None
        return int(resp["data"]["ttl"])

    def can_login(self, data: dict[str, str]) -> bool:
        code, out = self.pg.login(data["username"], data["password"])
        return code == 0 and out == data["username"]

    def close(self) -> None:
        # Unmounting revokes every lease of the mount first (a DROP ROLE each in PostgreSQL):
        # with 100 leases on a loaded machine that took over 10 s (HashiCorp Vault, 2026-11-30).
        self.bao.call("DELETE", f"sys/mounts/{self.mount}", timeout=180)
