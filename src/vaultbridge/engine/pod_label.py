"""This replica's own Pod carries a label while it leads, so a Service can select the leader.

Why: a Service in front of several replicas spreads what it receives over all of them, but
some traffic is useful only to the leader (Vault's audit stream: only the leader reconciles,
an entry that reaches a standby is not acted on). A Service whose selector includes this label
reaches the leader only.

Guarantees:
- The label is set when leadership starts and removed when it ends, and removed at process
  start (a container restarted in the Pod of a former leader must not keep it). A leader
  killed without removing it keeps it until its container restarts; meanwhile two Pods may
  match, which costs what having no label costs (traffic reaching the old Pod is not acted
  on) and nothing more: consumers of such traffic detect gaps themselves (the audit stream
  does, with heartbeats).
- Never fatal: a refused or failed patch is logged (with what RBAC rule is missing) and the
  replica goes on; only the Service's routing is affected.

Generic: the label key and value are the caller's.
"""

from __future__ import annotations

import logging

from vaultbridge.kube.api import KubeApi
from vaultbridge.kube.errors import KubeError
from vaultbridge.kube.resources import PODS

log = logging.getLogger(__name__)


class OwnPodLabel:
    def __init__(
        self, kube: KubeApi, namespace: str, pod_name: str, key: str, value: str = "true"
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.pod_name = pod_name
        self.key = key
        self.value = value

    async def set(self, on: bool) -> bool:
        """Put the label on (or take it off) this Pod; False when the API refused."""
        patch = {"metadata": {"labels": {self.key: self.value if on else None}}}
        try:
            await self.kube.patch(PODS, self.pod_name, patch, self.namespace)
        except KubeError as exc:
            log.warning(
                "cannot %s label %s on own Pod %s/%s: %s (the chart grants pods get/patch in the "
                "release namespace when a Service selects the leader)",
                "set" if on else "remove",
                self.key,
                self.namespace,
                self.pod_name,
                exc,
            )
            return False
        log.info(
            "%s label %s on own Pod %s/%s",
            "set" if on else "removed",
            self.key,
            self.namespace,
            self.pod_name,
        )
        return True
