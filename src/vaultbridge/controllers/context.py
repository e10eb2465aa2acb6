"""What every controller shares: clients, informer stores, the event recorder and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vaultbridge.engine.informer import Informer
from vaultbridge.guard.source import PolicySource
from vaultbridge.kube.api import KubeApi
from vaultbridge.kube.events import EventRecorder
from vaultbridge.kube.resources import Resource
from vaultbridge.settings import Settings
from vaultbridge.vault.cache import ClientCache
from vaultbridge.vault.connection import Transport

if TYPE_CHECKING:
    from vaultbridge.persistence.token_store import KubeTokenStore

    from .instant import InstantUpdates


@dataclass
class OperatorContext:
    settings: Settings
    kube: KubeApi
    events: EventRecorder
    vault_transport: Transport
    clients: ClientCache
    hmac_key: bytes
    informers: dict[Resource, Informer] = field(default_factory=dict)
    # Persisted Vault tokens (--persist-tokens); None when off.
    token_store: KubeTokenStore | None = None
    # The path policies as the informers have them (controllers/path_policy.py builds it on
    # first use, once the policy informers are registered).
    policy_source: PolicySource | None = None
    # The audit stream (--audit-stream-listen; controllers/instant.py); None when off.
    instant_updates: InstantUpdates | None = None

    def informer(self, resource: Resource) -> Informer:
        return self.informers[resource]
