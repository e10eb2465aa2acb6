"""Change sources other than the timer: today the Vault/OpenBao audit stream (instant updates).

A change source only names object keys to reconcile; it never carries data. Layers:
``receiver`` (sockets, no back-pressure) → ``source`` (prefix, ``entries`` parser, heartbeat
``liveness``, ``index`` lookup, per-path ``limiter``) → an injected ``enqueue(keys)``.
Nothing here imports the engine, the controllers or our kinds.
"""

from .entries import AuditEntry, MalformedEntry, parse_entry
from .index import KVRef, Operation, PathIndex, normalise
from .limiter import Grant, PathLimiter
from .liveness import DEFAULT_HEARTBEAT_PATH, StreamLiveness
from .receiver import AuditStreamReceiver, ListenAddress
from .source import AuditChangeSource, Enqueue

__all__ = [
    "DEFAULT_HEARTBEAT_PATH",
    "AuditChangeSource",
    "AuditEntry",
    "AuditStreamReceiver",
    "Enqueue",
    "Grant",
    "KVRef",
    "ListenAddress",
    "MalformedEntry",
    "Operation",
    "PathIndex",
    "PathLimiter",
    "StreamLiveness",
    "normalise",
    "parse_entry",
]
