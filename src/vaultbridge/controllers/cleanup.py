"""The Vault side of deleting an object that holds a lease or certificate: what is held, and
why its clean-up did not happen (`LeasedReconciler.finalize` decides from that whether to retry
or to release the finalizer; leased.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.vault.client import RevokeOutcome, revoke_outcome
from vaultbridge.vault.errors import VaultError

from .delivery import SpecT
from .errors import ReconcileProblem
from .reasons import GIVE_UP_ON_DELETE_REASONS


class Held(Protocol):
    """What the operator knows of the item it last delivered."""

    @property
    def uid(self) -> str: ...

    @property
    def generation(self) -> int: ...

    @property
    def mac(self) -> str: ...

    @property
    def destination(self) -> str: ...


HeldT = TypeVar("HeldT", bound=Held)


@dataclass(frozen=True)
class Deleting(Generic[SpecT, HeldT]):
    """An object being deleted while it holds a finalizer of ours."""

    key: ObjectKey
    obj: dict[str, Any]
    spec: SpecT
    held: HeldT | None


#: Vault's side of the deletion cannot be reached (VaultAuth / VaultConnection gone, login
#: refused by the guard): like a missing permission, waiting does not help.
AUTH_UNAVAILABLE = "auth_unavailable"
#: Transient failures outlasted --finalizer-timeout.
TIMED_OUT = "timeout"


@dataclass(frozen=True)
class NotCleaned:
    """Why the Vault work of a deletion did not happen (returned by `clean_up`)."""

    outcome: str
    """A `RevokeOutcome` value (not REVOKED), or AUTH_UNAVAILABLE."""
    what: str
    """What is left, for the event: "lease <id>", "certificate <serial>"."""
    message: str
    """The failure, safe for events (no secret values)."""
    retry_reason: str
    """The Warning event reason while a transient failure is retried (e.g. LeaseRevokeFailed)."""


def not_cleaned(problem: ReconcileProblem, what: str, retry_reason: str) -> NotCleaned:
    """The outcome of a failed revoke (or of the steps before it) as a `NotCleaned`."""
    cause = problem.__cause__
    if problem.reason in GIVE_UP_ON_DELETE_REASONS:
        outcome = AUTH_UNAVAILABLE
    elif isinstance(cause, VaultError):
        outcome = str(revoke_outcome(cause))
    else:
        # Kubernetes API errors and the like: time may fix them.
        outcome = str(RevokeOutcome.TRANSIENT)
    return NotCleaned(outcome, what, problem.message, retry_reason)


def deleting_for(obj: dict[str, Any], now: float) -> float:
    """Seconds since the object's deletionTimestamp (0 if absent or unreadable)."""
    raw = objects.meta(obj).get("deletionTimestamp")
    if not isinstance(raw, str):
        return 0.0
    try:
        since = dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return max(0.0, now - since)
