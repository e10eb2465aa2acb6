"""The error a reconcile step reports to its user: a condition reason and a safe message."""

from __future__ import annotations


class ReconcileProblem(Exception):
    """A failure the user can act on, turned into a condition + event by the controller.

    `retry` says whether waiting can fix it (Vault down: yes, with backoff) or only a change
    of some object can (bad spec: no; the watch on that object brings the next reconcile).
    """

    def __init__(self, reason: str, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry = retry
