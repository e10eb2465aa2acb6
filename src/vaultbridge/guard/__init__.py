"""Guard: which namespace may name which Vault paths, enforced and audited.

- `matching`: the VaultPathPolicy semantics (pure): pattern matching, namespace selection and
  the verdict for a resource's effective paths.
- `paths`: a secret resource's effective Vault paths, as the policies see them.
- `source`: the live policies and namespace labels, from informer caches.
- `webhook`, `certs`, `webhook_config`: the validating admission webhook the operator serves,
  its self-managed serving certificate and the `caBundle` it keeps current.
- `audit`: `vaultbridge audit`, the blast-radius report of a cluster and its Vault.
"""

from vaultbridge.guard.matching import (
    DEFAULT_ALLOW_ALL,
    DEFAULT_DENY,
    PathPolicy,
    Verdict,
    evaluate,
    pattern_matches,
    policy_from_object,
)
from vaultbridge.guard.paths import effective_paths

__all__ = [
    "DEFAULT_ALLOW_ALL",
    "DEFAULT_DENY",
    "PathPolicy",
    "Verdict",
    "effective_paths",
    "evaluate",
    "pattern_matches",
    "policy_from_object",
]
