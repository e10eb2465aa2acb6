"""What a rollout restart writes, per target kind (controllers/rollout.py, pure part)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vaultbridge.api.destination import RolloutRestartTarget
from vaultbridge.controllers.rollout import ARGO_ROLLOUTS, RESTARTED_AT, restart_patch

STAMP = "2026-11-30T15:00:00Z"


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_workloads_get_a_pod_template_annotation(kind: str) -> None:
    assert restart_patch(kind, STAMP) == {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: STAMP}}}}
    }


def test_argo_rollout_gets_spec_restart_at() -> None:
    assert restart_patch("argo.Rollout", STAMP) == {"spec": {"restartAt": STAMP}}
    assert (ARGO_ROLLOUTS.group, ARGO_ROLLOUTS.version, ARGO_ROLLOUTS.plural) == (
        "argoproj.io",
        "v1alpha1",
        "rollouts",
    )


def test_target_kinds() -> None:
    assert RolloutRestartTarget.model_validate({"kind": "argo.Rollout", "name": "r"}).kind == (
        "argo.Rollout"
    )
    with pytest.raises(ValidationError):
        RolloutRestartTarget.model_validate({"kind": "Rollout", "name": "r"})
