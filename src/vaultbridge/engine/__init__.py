"""Level-triggered controller engine: informers, work queue, backoff, controllers, manager.

Knows nothing about Vault; depends only on ``vaultbridge.kube``.
"""

from vaultbridge.engine.backoff import Backoff, jittered
from vaultbridge.engine.controller import (
    Controller,
    Reconciler,
    Result,
    default_priority,
    ignore_status_only,
    owner_keys,
)
from vaultbridge.engine.informer import Informer, Store
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.leader import LeaderElector, LeadershipLost
from vaultbridge.engine.manager import Manager
from vaultbridge.engine.queue import Priority, QueueShutDown, WorkQueue

__all__ = [
    "Backoff",
    "Controller",
    "Informer",
    "LeaderElector",
    "LeadershipLost",
    "Manager",
    "ObjectKey",
    "Priority",
    "QueueShutDown",
    "Reconciler",
    "Result",
    "Store",
    "WorkQueue",
    "default_priority",
    "ignore_status_only",
    "jittered",
    "owner_keys",
]
