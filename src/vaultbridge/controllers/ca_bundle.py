"""The CA bundle a VaultConnection names (`caCertSecretRef`): read from its Secret, kept 30 s.

Every login to a TLS Vault needs the bundle, and thousands of objects share one connection:
one GET per Secret per 30 s instead of one per login. 30 s is how long a rotated CA takes
to reach new logins; the SSL context built from it is cached by content in the transport
(vault/connection.py), so an unchanged bundle costs nothing more. Entries are keyed by Secret,
not by connection: one small entry per CA Secret ever named (a handful), never served older
than 30 s; a deleted VaultConnection's entry is simply never asked for again.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from vaultbridge.kube.api import KubeApi
from vaultbridge.kube.errors import KubeError, NotFound
from vaultbridge.kube.resources import SECRETS

from .errors import ReconcileProblem
from .reasons import Reason

CA_CACHE_SECONDS = 30.0


class CaBundles:
    """`pem(namespace, secret)`: the `ca.crt` of that Secret, at most `ttl` seconds old."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        ttl: float = CA_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, bytes]] = {}

    async def pem(self, namespace: str, secret_name: str) -> bytes:
        cached = self._cache.get((namespace, secret_name))
        now = self._clock()
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        try:
            secret = await self._kube.get(SECRETS, secret_name, namespace)
        except NotFound as exc:
            raise ReconcileProblem(
                Reason.CA_CERT_SECRET_NOT_FOUND,
                f"Secret {namespace}/{secret_name} named by caCertSecretRef does not exist",
            ) from exc
        except KubeError as exc:
            raise ReconcileProblem(
                Reason.KUBERNETES_ERROR, f"reading the CA Secret: {exc}"
            ) from exc
        raw = (secret.get("data") or {}).get("ca.crt")
        if not raw:
            raise ReconcileProblem(
                Reason.CA_CERT_SECRET_INVALID,
                f"Secret {namespace}/{secret_name} has no key `ca.crt`",
                retry=False,
            )
        pem = base64.b64decode(raw)
        self._cache[(namespace, secret_name)] = (now, pem)
        return pem
