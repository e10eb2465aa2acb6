"""Whose Secret the destination is: the ownership rules every Secret write passes first.

What it owns, for every kind that writes a Secret (destination.py plans and writes only after
`claim` or `check_ownership` let the object through):

- `create: true`: the Secret is ours when it carries this object's uid in its owner
  references (`is_owned_by`) and our owner labels (`desired_labels`). An existing Secret that
  is not ours is refused (`DestinationConflict`, no retry: only an edit helps) unless
  `overwrite: true`.
- `create: false`: the Secret must exist (`DestinationNotFound`); it is refused when another
  controller owns it, since that controller would rewrite it to its own state and start an
  endless tug of war, unless `overwrite: true`.
- A Secret that HashiCorp's VSO created for the VSO object this one was converted from (the
  `vaultbridge.dev/adopt-from` annotation `vaultbridge migrate` sets, or `overwrite: true`)
  is adopted in place (`claim`): VSO's labels and owner reference swapped for ours by one
  resourceVersion-guarded metadata patch, data untouched, so a matching Secret is never
  rewritten and nothing restarts. VaultStaticSecret only: the leased kinds need VSO's lease or
  certificate state carried over first (`vaultbridge migrate --adopt-secrets`), or they would
  issue new credentials.

Guarantees: nothing here writes data; the only write is the adoption's metadata patch, which
fails rather than overwrite a concurrent change (resourceVersion precondition).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaultbridge.api.destination import Destination
from vaultbridge.api.labels import owner_labels
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, Conflict
from vaultbridge.kube.resources import SECRETS
from vaultbridge.migrate.adopt import Refusal, decide_adoption, is_vso_secret
from vaultbridge.migrate.convert import ADOPT_ANNOTATION

from .context import OperatorContext
from .errors import ReconcileProblem
from .reasons import Reason


def is_owned_by(secret: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether `owner` is among the Secret's owner references (by uid: a re-created object
    of the same name does not own its predecessor's Secret)."""
    owner_uid = objects.uid(dict(owner))
    return any(ref.get("uid") == owner_uid for ref in objects.owner_references(dict(secret)))


def desired_labels(owner: Mapping[str, Any], dest: Destination) -> dict[str, str]:
    """The labels of an owned (`create: true`) destination: the spec's, then ours on top."""
    labels = dict(dest.labels)
    labels.update(owner_labels(str(owner["kind"]), objects.name(dict(owner))))
    return labels


ADOPTABLE_KINDS = ("VaultStaticSecret",)
"""Kinds that adopt a VSO-created Secret inside the reconcile (see the module docstring)."""


async def claim(
    ctx: OperatorContext,
    owner: Mapping[str, Any],
    dest: Destination,
    live: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """`check_ownership`, after adopting a VSO-created destination when this object may:
    returns the live Secret to plan against (the patched one after an adoption)."""
    if live is not None and dest.create and not is_owned_by(live, owner) and is_vso_secret(live):
        live = await _adopt_from_vso(ctx, owner, dest, live)
    check_ownership(owner, dest, live)
    return live


async def _adopt_from_vso(
    ctx: OperatorContext, owner: Mapping[str, Any], dest: Destination, live: dict[str, Any]
) -> dict[str, Any]:
    ns, kind = objects.namespace(dict(owner)), str(owner.get("kind"))
    what = f"Secret {ns}/{dest.name}"
    annotated = ADOPT_ANNOTATION in objects.annotations(dict(owner))
    if kind not in ADOPTABLE_KINDS:
        if not annotated:
            return live  # the usual rules (overwrite: true replaces it, as before)
        raise ReconcileProblem(
            Reason.DESTINATION_CONFLICT,
            f"{what} was created by VSO; run `vaultbridge migrate --adopt-secrets` to take it "
            f"over with VSO's lease or certificate (a {kind} adopting it by itself would issue "
            "new credentials)",
            retry=False,
        )
    intent = dict(owner)
    if dest.overwrite and not annotated:
        # overwrite: true is the user's "take it over"; adopt it cleanly rather than leave
        # VSO's owner reference on it (deleting the VSO object would then delete the Secret).
        meta = dict(objects.meta(dict(owner)))
        meta["annotations"] = {**objects.annotations(dict(owner)), ADOPT_ANNOTATION: "vso"}
        intent["metadata"] = meta
    decision = decide_adoption(
        live,
        intent,
        owner_reference=objects.owner_reference(dict(owner)),
        desired_labels=desired_labels(owner, dest),
        desired_data=None,  # the plan compares the data after the patch
    )
    if decision is None:
        return live
    if isinstance(decision, Refusal):
        raise ReconcileProblem(
            Reason.DESTINATION_CONFLICT,
            f"{what} was created by VSO: {decision.reason}",
            retry=False,
        )
    try:
        patched = await ctx.kube.patch(SECRETS, dest.name, decision.patch, ns, patch_type="merge")
    except Conflict as exc:
        raise ReconcileProblem(
            Reason.DESTINATION_CONFLICT, f"{what} changed while being adopted from VSO; retrying"
        ) from exc
    except ApiError as exc:
        raise ReconcileProblem(
            Reason.DESTINATION_WRITE_FAILED, f"adopting {what} from VSO failed: {exc}"
        ) from exc
    ctx.events.emit(
        dict(owner),
        "Normal",
        "SecretAdopted",
        f"took over {what} from VSO (labels and owner reference; data untouched)",
    )
    return patched


def check_ownership(
    owner: Mapping[str, Any], dest: Destination, live: Mapping[str, Any] | None
) -> None:
    ns = objects.namespace(dict(owner))
    if live is None:
        if not dest.create:
            raise ReconcileProblem(
                Reason.DESTINATION_NOT_FOUND,
                f"Secret {ns}/{dest.name} does not exist and destination.create is false "
                "(create it, or set destination.create: true)",
            )
        return
    if dest.create and not is_owned_by(live, owner) and not dest.overwrite:
        raise ReconcileProblem(
            Reason.DESTINATION_CONFLICT,
            f"Secret {ns}/{dest.name} exists and was not created by this {owner['kind']}; "
            "refusing to overwrite it (set destination.overwrite: true to take it over)",
            retry=False,
        )
    controller = _other_controller(live, owner)
    if not dest.create and controller is not None and not dest.overwrite:
        # Its controller rewrites the Secret to its own desired state: writing keys into it
        # would start an endless tug of war (one write per reconcile, on both sides).
        raise ReconcileProblem(
            Reason.DESTINATION_CONFLICT,
            f"Secret {ns}/{dest.name} is controlled by {controller}; refusing to write into "
            "it (set destination.overwrite: true to write anyway)",
            retry=False,
        )


def _other_controller(secret: Mapping[str, Any], owner: Mapping[str, Any]) -> str | None:
    """`Kind name` of the controller owning `secret`, if that is not `owner`."""
    owner_uid = objects.uid(dict(owner))
    for ref in objects.owner_references(dict(secret)):
        if ref.get("controller") and ref.get("uid") != owner_uid:
            return f"{ref.get('kind')} {ref.get('name')}"
    return None
