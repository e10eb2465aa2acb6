"""The webhook configurations: the manifests we recommend and the caBundle we keep current.

- ValidatingWebhookConfiguration (`--webhook-config-name`): path policies and Vault addresses.
- MutatingWebhookConfiguration (`--mutating-webhook-config-name`): inject mode, pods only.

In a cluster the configurations are installed by the deployment (Helm / kustomize), because a
cluster admin must consent to a webhook; the operator only patches `caBundle`, on every
webhook entry of each configuration. Out of cluster (development, tests),
`--webhook-register-url` makes the operator create or update both itself (`register`).
"""

from __future__ import annotations

import base64
from typing import Any

from vaultbridge.api.common import GROUP, VERSION
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import Conflict
from vaultbridge.kube.resources import Resource

VALIDATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)
MUTATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)
WEBHOOK_NAME = "vaultpaths.vaultbridge.dev"
FAILURE_POLICY = "Fail"
"""Fail closed: a webhook that cannot answer must not let an unchecked path through. The
reconcile check would still stop the sync, but the object would be stored."""
WEBHOOK_RESOURCES = ["vaultstaticsecrets", "vaultdynamicsecrets", "vaultpkisecrets"]
CONNECTION_WEBHOOK_NAME = "vaultconnections.vaultbridge.dev"
CONNECTION_FAILURE_POLICY = "Ignore"
"""The address of a VaultConnection is checked against --allowed-vault-addresses at admission
for early feedback; the boundary is the reconcile, which never contacts an address outside the
list. Failing open here lets a deployment create its own default VaultConnection before the
operator's webhook answers (Helm applies the webhook configuration first)."""
TIMEOUT_SECONDS = 5
"""The API server waits this long; answers take milliseconds, so only an outage hits it."""


def client_config(
    url: str | None, service: tuple[str, str, int] | None, ca_bundle: bytes | None, path: str
) -> dict[str, Any]:
    """A webhook's clientConfig: `url` for an out-of-cluster operator, else `service`
    (namespace, name, port) with `path`; the CA bundle when known."""
    client: dict[str, Any] = {}
    if url:
        client["url"] = url
    elif service:
        client["service"] = {
            "namespace": service[0],
            "name": service[1],
            "port": service[2],
            "path": path,
        }
    else:
        raise ValueError("url or service is required")
    if ca_bundle:
        client["caBundle"] = base64.b64encode(ca_bundle).decode()
    return client


def webhook_manifest(
    name: str,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    ca_bundle: bytes | None = None,
    namespace_selector: dict[str, Any] | None = None,
    failure_policy: str = FAILURE_POLICY,
    timeout_seconds: int = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration for the secret kinds and, in a second entry,
    VaultConnections (CREATE and UPDATE).

    `service` is (namespace, name, port) in a cluster; `url` for an out-of-cluster operator.
    """
    client = client_config(url, service, ca_bundle, "/validate")
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": WEBHOOK_RESOURCES,
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
        "admissionReviewVersions": ["v1"],
    }
    if namespace_selector is not None:
        webhook["namespaceSelector"] = namespace_selector
    connections = dict(
        webhook,
        name=CONNECTION_WEBHOOK_NAME,
        rules=[dict(webhook["rules"][0], resources=["vaultconnections"])],
        failurePolicy=CONNECTION_FAILURE_POLICY,
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "vaultbridge"}},
        "webhooks": [webhook, connections],
    }


INJECT_WEBHOOK_NAME = "pods.inject.vaultbridge.dev"
MUTATE_PATH = "/mutate-pods"
INJECT_FAILURE_POLICY = "Fail"
"""Fail closed: a pod that asked for secrets must not start without them. Only pods labelled
`vaultbridge.dev/inject: "true"` are ever sent (objectSelector), so an operator outage blocks
those pods (their controllers retry) and never any other pod of the cluster."""
INJECT_OBJECT_SELECTOR: dict[str, Any] = {"matchLabels": {"vaultbridge.dev/inject": "true"}}


def inject_namespace_selector(operator_namespace: str) -> dict[str, Any]:
    """Never the control plane's namespace nor the operator's own (its pods must start
    while it is down)."""
    return {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": sorted({"kube-system", operator_namespace}),
            }
        ]
    }


def mutating_manifest(
    name: str,
    *,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    ca_bundle: bytes | None = None,
    operator_namespace: str = "vaultbridge-system",
    timeout_seconds: int = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration of inject mode: Pod CREATE, opted-in pods only."""
    client = client_config(url, service, ca_bundle, MUTATE_PATH)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "vaultbridge"}},
        "webhooks": [
            {
                "name": INJECT_WEBHOOK_NAME,
                "clientConfig": client,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": INJECT_FAILURE_POLICY,
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "reinvocationPolicy": "Never",
                "timeoutSeconds": timeout_seconds,
                "admissionReviewVersions": ["v1"],
                "objectSelector": INJECT_OBJECT_SELECTOR,
                "namespaceSelector": inject_namespace_selector(operator_namespace),
            }
        ],
    }


async def register(
    kube: KubeClient,
    base_url: str,
    *,
    validating: str,
    mutating: str,
    bundle_pem: bytes,
    operator_namespace: str,
) -> None:
    """Create or update both configurations, pointing at `base_url` (`--webhook-register-url`,
    an operator running outside the cluster). Server-side apply: repeated starts converge."""
    base = base_url.rstrip("/")
    if validating:
        manifest = webhook_manifest(validating, url=f"{base}/validate", ca_bundle=bundle_pem)
        await kube.apply(VALIDATING_WEBHOOK_CONFIGURATIONS, manifest)
    if mutating:
        manifest = mutating_manifest(
            mutating,
            url=f"{base}{MUTATE_PATH}",
            ca_bundle=bundle_pem,
            operator_namespace=operator_namespace,
        )
        await kube.apply(MUTATING_WEBHOOK_CONFIGURATIONS, manifest)


async def sync_ca_bundle(
    kube: KubeClient,
    name: str,
    bundle_pem: bytes,
    resource: Resource = VALIDATING_WEBHOOK_CONFIGURATIONS,
) -> bool:
    """Set `caBundle` on every webhook of the configuration; True if anything changed.

    Read-modify-write with the resourceVersion as precondition, retried on conflict, so a
    concurrent edit by an admin is never overwritten with a stale copy.
    """
    wanted = base64.b64encode(bundle_pem).decode()
    for _attempt in range(5):
        config = await kube.get(resource, name)
        webhooks = config.get("webhooks") or []
        stale = [w for w in webhooks if (w.get("clientConfig") or {}).get("caBundle") != wanted]
        if not stale:
            return False
        for w in stale:
            w.setdefault("clientConfig", {})["caBundle"] = wanted
        # A merge patch replaces the whole webhooks list; the resourceVersion in it makes the
        # write a compare-and-swap (RBAC: get and patch, no update).
        patch = {
            "metadata": {"resourceVersion": (config.get("metadata") or {}).get("resourceVersion")},
            "webhooks": webhooks,
        }
        try:
            await kube.patch(resource, name, patch)
        except Conflict:
            continue
        return True
    return False
