"""`vaultbridge audit`: the blast radius of a cluster's Vault access, with findings.

`collect` reads (read-only) the cluster and Vault into an `Inventory`; `analyse` (pure) turns
it into a `Report`: who can read which Vault path through which role and policy, and findings
with severity and fix; `render_table`, `render_json` and `render_html` print it.
"""

from vaultbridge.guard.audit.analyse import analyse
from vaultbridge.guard.audit.model import (
    SEVERITIES,
    AccessRow,
    Finding,
    Inventory,
    Report,
)

__all__ = ["SEVERITIES", "AccessRow", "Finding", "Inventory", "Report", "analyse"]
