"""The engine's retry delays live in `vaultbridge/backoff.py`, outside the engine, so that
`vaultbridge agent` (which imports nothing of the engine) shares them; re-exported here under
the engine's name."""

from vaultbridge.backoff import Backoff, jittered

__all__ = ["Backoff", "jittered"]
