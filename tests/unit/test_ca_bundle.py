"""controllers/ca_bundle.py: one GET per CA Secret per 30 s, and a clear refusal per fault."""

from __future__ import annotations

import base64
from typing import cast

import pytest

from vaultbridge.controllers.ca_bundle import CaBundles
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.kube.api import KubeApi
from vaultbridge.kube.resources import SECRETS

from ..fakes import FakeKube

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _secret(name: str, data: dict[str, bytes]) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "vault"},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_one_read_per_secret_per_ttl_and_a_rotation_is_seen_after_it() -> None:
    kube, clock = FakeKube(), Clock()
    kube.put(SECRETS, _secret("vault-ca", {"ca.crt": PEM}))
    bundles = CaBundles(cast(KubeApi, kube), clock=clock)
    for _ in range(50):
        assert await bundles.pem("vault", "vault-ca") == PEM
    assert kube.calls == [("get", "secrets", "vault-ca")]

    rotated = PEM.replace(b"MIIB", b"MIIC")
    kube.put(SECRETS, _secret("vault-ca", {"ca.crt": rotated}))
    clock.now += 29.9
    assert await bundles.pem("vault", "vault-ca") == PEM  # still within the 30 s
    clock.now += 0.1
    assert await bundles.pem("vault", "vault-ca") == rotated
    assert len(kube.calls) == 2


@pytest.mark.parametrize(
    ("stored", "reason", "retry"),
    [
        (None, "CACertSecretNotFound", True),
        (_secret("vault-ca", {"tls.crt": PEM}), "CACertSecretInvalid", False),
    ],
)
async def test_a_missing_secret_or_key_is_a_reason_and_is_not_cached(
    stored: dict[str, object] | None, reason: str, retry: bool
) -> None:
    kube = FakeKube()
    if stored is not None:
        kube.put(SECRETS, stored)
    bundles = CaBundles(cast(KubeApi, kube), clock=Clock())
    for _ in range(2):
        with pytest.raises(ReconcileProblem) as info:
            await bundles.pem("vault", "vault-ca")
        assert info.value.reason == reason
        assert info.value.retry is retry
        assert "vault/vault-ca" in str(info.value)
    assert len(kube.calls) == 2  # a refusal is read again: the fix is seen at once
