"""Start the admission webhook with its certificate manager: what `vaultbridge run` calls when
`--webhook-bind-address` is set (and what tests call in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vaultbridge.kube.client import KubeClient

from .addresses import AddressAllowList
from .matching import DEFAULT_ALLOW_ALL
from .source import PolicySource
from .webhook import Mutator, WebhookServer
from .webhook_config import register

if TYPE_CHECKING:
    # Imported when the webhook starts: `cryptography` (~17 MiB RSS) stays out of an
    # operator that runs without the webhook (the default).
    from .certs import CertManager

log = logging.getLogger(__name__)


def default_hosts(namespace: str) -> list[str]:
    """The Service DNS names of a standard install, and loopback for out-of-cluster runs."""
    return [
        f"vaultbridge-webhook.{namespace}.svc",
        f"vaultbridge-webhook.{namespace}.svc.cluster.local",
        "127.0.0.1",
    ]


def parse_hosts(text: str, namespace: str) -> list[str]:
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    return hosts or default_hosts(namespace)


@dataclass
class RunningWebhook:
    server: WebhookServer
    certs: CertManager
    task: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ready(self) -> bool:
        return self.server.ready

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.server.stop()


async def start_webhook(
    kube: KubeClient,
    source: PolicySource | None,
    *,
    bind_address: str,
    namespace: str,
    ca_secret: str,
    hosts: Sequence[str],
    cert_dir: str = "",
    webhook_config: str = "",
    default: str = DEFAULT_ALLOW_ALL,
    check_interval: float = 3600.0,
    addresses: AddressAllowList | None = None,
    mutating_config: str = "",
    mutate_pods: Mutator | None = None,
    register_url: str = "",
) -> RunningWebhook:
    """Make the certificate current (CA Secret, leaf, caBundle), then serve; with
    `register_url`, create or update both webhook configurations pointing at it."""
    from .certs import CertManager

    certs = CertManager(
        kube,
        namespace=namespace,
        ca_secret=ca_secret,
        hosts=hosts,
        cert_dir=cert_dir,
        webhook_config=webhook_config,
        check_interval=check_interval,
        mutating_config=mutating_config if mutate_pods is not None else "",
    )
    await certs.ensure()
    server = WebhookServer(
        bind_address,
        certs.ssl_context,
        source,
        default=default,
        cert_ready=lambda: certs.ready,
        addresses=addresses,
        mutate_pods=mutate_pods,
    )
    await server.start()
    if register_url:
        assert certs.ca is not None
        await register(
            kube,
            register_url,
            validating=webhook_config,
            mutating=mutating_config if mutate_pods is not None else "",
            bundle_pem=certs.ca.bundle_pem,
            operator_namespace=namespace,
        )
        log.info("webhook configurations registered for %s", register_url)
    task = asyncio.create_task(certs.run(), name="webhook-certificates")
    return RunningWebhook(server, certs, task)
