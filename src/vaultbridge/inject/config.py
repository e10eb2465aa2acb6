"""The contract between the two halves of inject mode: what the webhook tells `vaultbridge agent`.

Inject mode delivers a secret kind's data into pods as files in memory instead of a Kubernetes
Secret. The work is split where the trust boundary is:

- the **mutating webhook** (in the operator) resolves everything from the custom resources and
  the admission request — the object's spec with SecretTransformation references already
  inlined, the VaultAuth's mount and role, the VaultConnection's address and CA certificate,
  the pod's own file layout — checks that the pod's namespace may use all of it, and writes
  the result as JSON into the agent containers' environment variable `VAULTBRIDGE_AGENT_CONFIG`;
- the **agent** (in the pod) logs in as the pod's own ServiceAccount with the projected token
  the webhook mounted, and fetches, builds and writes. It never reads a custom resource, so the
  pod's ServiceAccount needs no RBAC at all.

The config carries **no secret value**: addresses, paths, roles, templates and a CA
certificate (public). It is therefore safe in a pod spec, which anyone with `get pods` reads.

Versioned: the webhook writes `version: 1`; an agent refuses a version it does not know with a
clear message (an operator upgraded before its agent image, or the reverse, fails loudly at pod
start instead of writing wrong files).

This module is pure (pydantic only): the agent imports it, and must stay light.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

AGENT_CONFIG_ENV = "VAULTBRIDGE_AGENT_CONFIG"
"""Environment variable of the init container and the sidecar holding the JSON config."""

AGENT_ROOT_ENV = "VAULTBRIDGE_AGENT_ROOT"
"""Optional: a directory prefixed to every absolute path of the config (token file, output
directory, touch file). Unset in pods; set when the agent runs outside a pod (tests, debugging
on a laptop) so the pod's paths land in a scratch directory."""

CONFIG_VERSION: Literal[1] = 1

DEFAULT_MOUNT_PATH = "/vault/secrets"
"""Where the in-memory volume is mounted in every container of the pod (Vault Agent
Injector's path, so applications moving over keep their paths)."""

DEFAULT_TOKEN_PATH = "/var/run/secrets/vaultbridge.dev/token"  # noqa: S105 (a path)
"""Where the projected ServiceAccount token (audience from the VaultAuth) is mounted in the
agent containers only; the application containers do not see it."""

SecretKind = Literal["VaultStaticSecret", "VaultDynamicSecret", "VaultPKISecret"]

_Path = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^/")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentVault(_Model):
    """How to reach Vault: the VaultConnection, resolved."""

    address: str
    """Vault's address, e.g. `https://vault.vault.svc:8200`; already checked against the
    operator's `--allowed-vault-addresses` by the webhook."""
    namespace: str | None = None
    """Vault Enterprise namespace (the object's, else the VaultAuth's)."""
    ca_cert_pem: str | None = None
    """CA certificate(s) in PEM, copied by the webhook from the VaultConnection's CA Secret
    (`ca.crt`). Public data; unset means the system trust store."""
    tls_server_name: str | None = None
    skip_tls_verify: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers from the VaultConnection."""
    timeout_seconds: float = 30.0


class AgentLogin(_Model):
    """How the agent logs in: as the pod's own ServiceAccount, never the operator's."""

    method: Literal["kubernetes", "jwt"]
    mount: str
    """Auth mount, e.g. `kubernetes`."""
    role: str
    """Vault role: the pod's `vaultbridge.dev/inject-role` annotation, else the VaultAuth's."""
    token_path: _Path = DEFAULT_TOKEN_PATH
    """Projected ServiceAccount token file (refreshed by the kubelet; re-read at each login)."""


class AgentFile(_Model):
    """Where and how one object's data is written."""

    directory: _Path
    """Directory of this object's files (`<mount path>/<object name>` by default)."""
    template: str | None = None
    """Pod annotation `vaultbridge.dev/inject-template.<object>`: rendered with the object's
    built data (same sandboxed template engine as `destination.transformation.templates`) into
    the single file `directory/filename`. Unset: one file per key of the built data."""
    filename: str | None = None
    """File name for `template` (annotation `vaultbridge.dev/inject-file.<object>`, default the
    object's name). A plain name, never a path."""


class AgentObject(_Model):
    """One custom resource named by the pod, resolved."""

    name: str
    """The object's name (namespace is the pod's)."""
    kind: SecretKind
    spec: dict[str, Any]
    """The object's `spec` as stored (camelCase), with `destination.transformation`
    `transformationRefs` inlined into `templates`/`includes`/`excludes` by the webhook, so the
    agent parses it with the same `vaultbridge.api` models the operator uses and runs the same
    `secrets/` pipeline."""
    vault: AgentVault
    login: AgentLogin
    file: AgentFile


class AgentOnChange(_Model):
    """What the sidecar does after it rewrote files (never after the first write)."""

    signal: str | None = None
    """Signal name (e.g. `SIGHUP`) sent to processes of the pod whose command line matches
    `signal_process`; needs `shareProcessNamespace: true` on the pod (the webhook refuses the
    annotation otherwise)."""
    signal_process: str | None = None
    touch: _Path | None = None
    """A file whose modification time is bumped (created if missing)."""


class AgentConfig(_Model):
    """The whole of `VAULTBRIDGE_AGENT_CONFIG`."""

    version: Literal[1] = CONFIG_VERSION
    namespace: str
    """The pod's namespace."""
    pod_name: str | None = None
    """The pod's name if known at admission (often not: generated names are set later); for
    logs only."""
    objects: Annotated[list[AgentObject], Field(min_length=1, max_length=32)]
    on_change: AgentOnChange = Field(default_factory=AgentOnChange)
    file_mode: int = 0o400
    run_as_user: int | None = None
    """Owner of the written files (the pod's `runAsUser`), when the agent may chown."""

    def to_env(self) -> str:
        """The JSON placed in `VAULTBRIDGE_AGENT_CONFIG` (compact, stable key order)."""
        return self.model_dump_json(exclude_defaults=False)

    @classmethod
    def from_env(cls, value: str) -> AgentConfig:
        """Parse the environment variable; raises pydantic.ValidationError on a bad config."""
        return cls.model_validate_json(value)
