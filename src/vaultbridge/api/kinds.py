"""The registry of our kinds: names, models and how `kubectl get` shows them.

Controllers, the CRD generator, docs and tests all read this one table, so a kind's plural or
short name cannot drift between the CRD and the code that watches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vaultbridge.api.auth import VaultAuthResourceSpec, VaultAuthStatus
from vaultbridge.api.auth_global import VaultAuthGlobalSpec, VaultAuthGlobalStatus
from vaultbridge.api.common import API_VERSION, GROUP, VERSION, ApiModel
from vaultbridge.api.conditions import HEALTHY, SECRET_SYNCED
from vaultbridge.api.connection import VaultConnectionSpec, VaultConnectionStatus
from vaultbridge.api.dynamic_secret import VaultDynamicSecretSpec, VaultDynamicSecretStatus
from vaultbridge.api.path_policy import VaultPathPolicySpec, VaultPathPolicyStatus
from vaultbridge.api.pki_secret import VaultPKISecretSpec, VaultPKISecretStatus
from vaultbridge.api.static_secret import VaultStaticSecretSpec, VaultStaticSecretStatus
from vaultbridge.api.transformation import SecretTransformationSpec, SecretTransformationStatus
from vaultbridge.kube.resources import Resource

SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=ApiModel)

CATEGORY = "vaultbridge"


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get` output."""

    name: str
    type: str
    json_path: str
    description: str

    def to_crd(self) -> dict[str, str]:
        return {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }


def _condition_column(name: str, condition: str, description: str) -> PrinterColumn:
    return PrinterColumn(
        name=name,
        type="string",
        json_path=f'.status.conditions[?(@.type=="{condition}")].status',
        description=description,
    )


_SYNCED = _condition_column(
    "Synced", SECRET_SYNCED, "Whether the Secret holds the data last read from Vault."
)
_HEALTHY = _condition_column("Healthy", HEALTHY, "Whether the last reconcile succeeded.")
_VALID = PrinterColumn(
    name="Valid",
    type="boolean",
    json_path=".status.valid",
    description="Whether the operator accepted the configuration.",
)
_AGE = PrinterColumn(
    name="Age",
    type="date",
    json_path=".metadata.creationTimestamp",
    description="Time since the object was created.",
)


@dataclass(frozen=True)
class KindInfo(Generic[SpecT, StatusT]):
    """Everything needed to generate, watch and parse one of our custom resources."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[SpecT]
    status_model: type[StatusT]
    description: str
    columns: tuple[PrinterColumn, ...]
    group: str = GROUP
    version: str = VERSION
    categories: tuple[str, ...] = field(default=(CATEGORY,))
    namespaced: bool = True
    """False for cluster-scoped kinds (VaultPathPolicy): CRD scope `Cluster`."""

    @property
    def resource(self) -> Resource:
        """The REST resource of this kind: what informers watch and the client writes."""
        return Resource(self.group, self.version, self.plural, self.kind, self.namespaced)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    def parse_spec(self, obj: Mapping[str, Any]) -> SpecT:
        """The spec of an object read from the API server (raises pydantic.ValidationError)."""
        return self.spec_model.model_validate(obj.get("spec") or {})


VAULT_CONNECTION = KindInfo(
    kind="VaultConnection",
    plural="vaultconnections",
    short_names=("vconn",),
    spec_model=VaultConnectionSpec,
    status_model=VaultConnectionStatus,
    description="VaultConnection tells the operator how to reach a Vault or OpenBao server.",
    columns=(_VALID, _HEALTHY, _AGE),
)
VAULT_AUTH = KindInfo(
    kind="VaultAuth",
    plural="vaultauths",
    short_names=("vauth",),
    spec_model=VaultAuthResourceSpec,
    status_model=VaultAuthStatus,
    description=(
        "VaultAuth tells the operator how to log in to Vault and which namespaces may use "
        "that login."
    ),
    columns=(_VALID, _HEALTHY, _AGE),
)
VAULT_AUTH_GLOBAL = KindInfo(
    kind="VaultAuthGlobal",
    plural="vaultauthglobals",
    short_names=("vag",),
    spec_model=VaultAuthGlobalSpec,
    status_model=VaultAuthGlobalStatus,
    description=(
        "VaultAuthGlobal holds login defaults that VaultAuths of the namespaces it allows "
        "reference with vaultAuthGlobalRef."
    ),
    columns=(_VALID, _AGE),
)
VAULT_STATIC_SECRET = KindInfo(
    kind="VaultStaticSecret",
    plural="vaultstaticsecrets",
    short_names=("vss",),
    spec_model=VaultStaticSecretSpec,
    status_model=VaultStaticSecretStatus,
    description="VaultStaticSecret copies KV secrets from Vault into a Kubernetes Secret.",
    columns=(_SYNCED, _HEALTHY, _AGE),
)
VAULT_DYNAMIC_SECRET = KindInfo(
    kind="VaultDynamicSecret",
    plural="vaultdynamicsecrets",
    short_names=("vds",),
    spec_model=VaultDynamicSecretSpec,
    status_model=VaultDynamicSecretStatus,
    description=(
        "VaultDynamicSecret keeps leased credentials issued by Vault in a Kubernetes Secret, "
        "renewing or re-issuing them before they expire."
    ),
    columns=(_SYNCED, _HEALTHY, _AGE),
)
VAULT_PKI_SECRET = KindInfo(
    kind="VaultPKISecret",
    plural="vaultpkisecrets",
    short_names=("vpki",),
    spec_model=VaultPKISecretSpec,
    status_model=VaultPKISecretStatus,
    description=(
        "VaultPKISecret keeps a certificate issued by Vault's PKI engine in a Kubernetes "
        "Secret, replacing it before it expires."
    ),
    columns=(_SYNCED, _HEALTHY, _AGE),
)
SECRET_TRANSFORMATION = KindInfo(
    kind="SecretTransformation",
    plural="secrettransformations",
    short_names=("vst",),
    spec_model=SecretTransformationSpec,
    status_model=SecretTransformationStatus,
    description=(
        "SecretTransformation holds templates and key filters that several secret objects "
        "can share."
    ),
    columns=(_VALID, _HEALTHY, _AGE),
)

KINDS: tuple[KindInfo[Any, Any], ...] = (
    VAULT_CONNECTION,
    VAULT_AUTH_GLOBAL,
    VAULT_AUTH,
    VAULT_STATIC_SECRET,
    VAULT_DYNAMIC_SECRET,
    VAULT_PKI_SECRET,
    SECRET_TRANSFORMATION,
)
"""All our namespaced kinds, in dependency order (a connection before the auth that uses it)."""

VAULT_PATH_POLICY = KindInfo(
    kind="VaultPathPolicy",
    plural="vaultpathpolicies",
    short_names=("vpp",),
    spec_model=VaultPathPolicySpec,
    status_model=VaultPathPolicyStatus,
    description=(
        "VaultPathPolicy (cluster-scoped) bounds the Vault paths that secret resources in the "
        "selected namespaces may name, and names paths that must never be synced."
    ),
    columns=(_VALID, _AGE),
    namespaced=False,
)

CLUSTER_KINDS: tuple[KindInfo[Any, Any], ...] = (VAULT_PATH_POLICY,)
"""Our cluster-scoped kinds, owned by the platform team rather than by namespace tenants."""

ALL_KINDS: tuple[KindInfo[Any, Any], ...] = KINDS + CLUSTER_KINDS
"""Every kind the CRD generator writes: the namespaced ones, then the cluster-scoped ones."""

_BY_KIND = {k.kind: k for k in ALL_KINDS}

# The REST resources of our kinds, derived from the table above (never declared elsewhere).
VAULT_CONNECTIONS = VAULT_CONNECTION.resource
VAULT_AUTHS = VAULT_AUTH.resource
VAULT_AUTH_GLOBALS = VAULT_AUTH_GLOBAL.resource
VAULT_STATIC_SECRETS = VAULT_STATIC_SECRET.resource
VAULT_DYNAMIC_SECRETS = VAULT_DYNAMIC_SECRET.resource
VAULT_PKI_SECRETS = VAULT_PKI_SECRET.resource
SECRET_TRANSFORMATIONS = SECRET_TRANSFORMATION.resource
VAULT_PATH_POLICIES = VAULT_PATH_POLICY.resource

SECRET_KINDS: tuple[KindInfo[Any, Any], ...] = (
    VAULT_STATIC_SECRET,
    VAULT_DYNAMIC_SECRET,
    VAULT_PKI_SECRET,
)
"""The kinds that deliver Vault data into a Kubernetes Secret (one delivery flow)."""


def kind_info(kind: str) -> KindInfo[Any, Any]:
    """Look a kind up by its name (`VaultStaticSecret`); KeyError if it is not ours."""
    return _BY_KIND[kind]


__all__ = [
    "ALL_KINDS",
    "API_VERSION",
    "CATEGORY",
    "CLUSTER_KINDS",
    "KINDS",
    "SECRET_KINDS",
    "SECRET_TRANSFORMATION",
    "SECRET_TRANSFORMATIONS",
    "VAULT_AUTH",
    "VAULT_AUTHS",
    "VAULT_AUTH_GLOBAL",
    "VAULT_AUTH_GLOBALS",
    "VAULT_CONNECTION",
    "VAULT_CONNECTIONS",
    "VAULT_DYNAMIC_SECRET",
    "VAULT_DYNAMIC_SECRETS",
    "VAULT_PATH_POLICIES",
    "VAULT_PATH_POLICY",
    "VAULT_PKI_SECRET",
    "VAULT_PKI_SECRETS",
    "VAULT_STATIC_SECRET",
    "VAULT_STATIC_SECRETS",
    "KindInfo",
    "PrinterColumn",
    "kind_info",
]
