"""The HMAC key behind status.secretMAC, kept in a Secret in the operator's namespace.

Every replica must use the same key, or a leader change would look like a change of every
Secret's data: the first replica creates the Secret, the others (and later restarts) read it.
"""

from __future__ import annotations

import base64

from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import Conflict, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.secrets.hmac import generate_key

_KEY = "key"


async def load_or_create_hmac_key(kube: KubeClient, namespace: str, name: str) -> bytes:
    try:
        secret = await kube.get(SECRETS, name, namespace)
    except NotFound:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "vaultbridge"},
            },
            "type": "Opaque",
            "data": {_KEY: base64.b64encode(generate_key()).decode()},
        }
        try:
            secret = await kube.create_object(SECRETS, body, namespace)
        except Conflict:
            # Another replica created it first: use theirs.
            secret = await kube.get(SECRETS, name, namespace)
    raw = (secret.get("data") or {}).get(_KEY)
    if not raw:
        raise RuntimeError(f"Secret {namespace}/{name} has no key {_KEY!r}")
    return base64.b64decode(raw)
