"""In-reconcile adoption of a VSO-created destination Secret (controllers/ownership.claim),
against the fake API server of tests/fakes.py: which Secrets are taken over, how, and which
are refused."""

from __future__ import annotations

from typing import Any

import pytest

from vaultbridge.api.destination import Destination
from vaultbridge.controllers import destination, ownership
from vaultbridge.controllers.errors import ReconcileProblem
from vaultbridge.kube.resources import SECRETS
from vaultbridge.migrate import vso
from vaultbridge.migrate.convert import ADOPT_ANNOTATION

from ..fakes import make_ctx

NS = "team-a"
VSO_UID = "vso-uid-1"


def _owner(kind: str = "VaultStaticSecret", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": kind,
        "metadata": {"name": "app", "namespace": NS, "uid": "vb-uid", "annotations": annotations},
    }


def _vso_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "app-secret",
            "namespace": NS,
            "labels": {**vso.OWNER_LABELS, vso.LABEL_OWNER_UID: VSO_UID, "team": "a"},
            "ownerReferences": [
                {"apiVersion": vso.API_VERSION, "kind": "VaultStaticSecret", "name": "app",
                 "uid": VSO_UID}
            ],
        },
        "data": {"k": "dg=="},
    }  # fmt: skip


def _dest(**kw: Any) -> Destination:
    return Destination.model_validate({"name": "app-secret", "create": True, **kw})


async def test_annotated_static_secret_adopts_with_one_metadata_patch() -> None:
    h = make_ctx()
    live = h.kube.put(SECRETS, _vso_secret())
    owner = _owner(**{ADOPT_ANNOTATION: f"vso/{VSO_UID}"})
    claimed = await ownership.claim(h.ctx, owner, _dest(), live)
    assert claimed is not None
    assert [c[0] for c in h.kube.writes()] == ["patch"]
    assert claimed["data"] == {"k": "dg=="}
    assert [r["uid"] for r in claimed["metadata"]["ownerReferences"]] == ["vb-uid"]
    labels = claimed["metadata"]["labels"]
    assert vso.LABEL_OWNER_UID not in labels and labels["team"] == "a"
    assert ownership.is_owned_by(claimed, owner)
    assert h.events.reasons() == ["SecretAdopted"]
    # The plan now sees its own Secret with the same data: nothing to write, nothing restarts.
    plan = destination.plan(
        owner, _dest(), claimed, {"k": b"v"}, vault_changed=False, spec_changed=False
    )
    assert not plan.write


async def test_not_annotated_is_refused_with_a_hint_and_nothing_written() -> None:
    h = make_ctx()
    live = h.kube.put(SECRETS, _vso_secret())
    with pytest.raises(ReconcileProblem) as info:
        await ownership.claim(h.ctx, _owner(), _dest(), live)
    assert info.value.reason == "DestinationConflict"
    assert ADOPT_ANNOTATION in info.value.message
    assert h.kube.writes() == []


async def test_overwrite_adopts_without_the_annotation() -> None:
    h = make_ctx()
    live = h.kube.put(SECRETS, _vso_secret())
    claimed = await ownership.claim(h.ctx, _owner(), _dest(overwrite=True), live)
    assert claimed is not None
    assert [r["uid"] for r in claimed["metadata"]["ownerReferences"]] == ["vb-uid"]


async def test_another_vso_object_s_secret_is_refused() -> None:
    h = make_ctx()
    secret = _vso_secret()
    secret["metadata"]["ownerReferences"][0]["name"] = "other"
    live = h.kube.put(SECRETS, secret)
    owner = _owner(**{ADOPT_ANNOTATION: "vso"})
    with pytest.raises(ReconcileProblem, match="other"):
        await ownership.claim(h.ctx, owner, _dest(), live)
    assert h.kube.writes() == []


@pytest.mark.parametrize("kind", ["VaultDynamicSecret", "VaultPKISecret"])
async def test_leased_kinds_point_to_adopt_secrets(kind: str) -> None:
    h = make_ctx()
    live = h.kube.put(SECRETS, _vso_secret())
    with pytest.raises(ReconcileProblem, match="--adopt-secrets"):
        await ownership.claim(h.ctx, _owner(kind, **{ADOPT_ANNOTATION: "vso"}), _dest(), live)
    # Not annotated: the usual rules (overwrite: true replaces it, as before).
    claimed = await ownership.claim(h.ctx, _owner(kind), _dest(overwrite=True), live)
    assert claimed is live
    assert h.kube.writes() == []
