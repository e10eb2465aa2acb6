"""The error a reconcile step reports to its user: a condition reason and a safe message."""

from __future__ import annotations


class ReconcileProblem(Exception):
    """A failure the user can act on, turned into a condition + event by the controller.

    `retry` says whether waiting can fix it (Vault down: yes, with backoff) or only a change
    of some object can (bad spec: no; the watch on that object brings the next reconcile).

    `retry_after` overrides the backoff delay; `repeat_event=False` emits the Warning event
    only when the condition changes (a state that persists, not a new failure per retry).
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retry: bool = True,
        retry_after: float | None = None,
        repeat_event: bool = True,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry = retry
        self.retry_after = retry_after
        self.repeat_event = repeat_event
