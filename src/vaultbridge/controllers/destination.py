"""Writing the destination Secret: ownership rules, server-side apply, drift detection.

Rules (the same for every kind that writes a Secret):
- `create: true`: the Secret is ours. It carries the owner labels and a controller
  ownerReference, so the garbage collector deletes it with its custom resource. An existing
  Secret that is not ours is left alone unless `overwrite: true`.
- `create: false`: the Secret must already exist; only the keys we write in `data` are ours
  (server-side apply field ownership), everything else on it belongs to whoever made it.
- A write happens only when the live Secret differs from what it should be.
- A Secret that HashiCorp's VSO created for the VSO object this one was converted from (the
  `vaultbridge.dev/adopt-from` annotation `vaultbridge migrate` sets, or `overwrite: true`)
  is adopted in place (`claim`): VSO's labels and owner reference swapped for ours by one
  resourceVersion-guarded metadata patch, data untouched, so a matching Secret is never
  rewritten and nothing restarts. VaultStaticSecret only: the leased kinds need VSO's lease or
  certificate state carried over first (`vaultbridge migrate --adopt-secrets`), or they would
  issue new credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaultbridge.api.destination import Destination
from vaultbridge.api.labels import owner_labels
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, Conflict, Invalid, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.migrate.adopt import Refusal, decide_adoption, is_vso_secret
from vaultbridge.migrate.convert import ADOPT_ANNOTATION
from vaultbridge.secrets.hmac import compute_mac

from .context import OperatorContext
from .errors import ReconcileProblem
from .secret_data import DATA_MAC, data_keys, data_mac, decode_data, encode_data


def is_owned_by(secret: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    owner_uid = objects.uid(dict(owner))
    return any(ref.get("uid") == owner_uid for ref in objects.owner_references(dict(secret)))


@dataclass(frozen=True)
class Plan:
    """What the reconcile must do to the destination."""

    write: bool
    cause: str  # create | vault-change | drift | spec-change | none
    extra_keys: tuple[str, ...] = ()


async def read_live(
    ctx: OperatorContext, namespace: str, name: str, *, values: bool = False
) -> dict[str, Any] | None:
    """The live Secret: from the owned-Secret cache when it is ours, else from the API.
    `values`: the caller needs the values themselves (`create: false` compares key by key),
    not the digest the cache keeps."""
    informer = ctx.informers.get(SECRETS)
    if informer is not None:
        cached = informer.store.get(ObjectKey(namespace, name))
        if cached is not None and not (values and DATA_MAC in cached):
            return cached
    try:
        return await ctx.kube.get(SECRETS, name, namespace)
    except NotFound:
        return None


def presumed_absent(ctx: OperatorContext, namespace: str, dest: Destination) -> bool:
    """Whether a `create: true` destination may be taken as absent without a GET: the
    owned-Secret cache has listed and does not hold it. Not proof — a Secret created by
    someone else (no owner labels) is never in that cache — so the write that follows is
    create-only (`write(create_only=True)`) and falls back to the careful path when the
    Secret turns out to exist (`DestinationExists`)."""
    if not dest.create:
        return False
    informer = ctx.informers.get(SECRETS)
    return (
        informer is not None
        and informer.has_synced
        and ObjectKey(namespace, dest.name) not in informer.store
    )


class DestinationExists(Exception):
    """A create-only write found the Secret already there."""


#: A resourceVersion no stored object has (etcd's first write is revision 2). Sent in a
#: server-side apply it makes the apply create-only: an absent Secret is created (a create
#: ignores the precondition), an existing one is refused with 409 Conflict, untouched.
CREATE_ONLY_RESOURCE_VERSION = "1"


def desired_labels(owner: Mapping[str, Any], dest: Destination) -> dict[str, str]:
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
            "DestinationConflict",
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
            "DestinationConflict", f"{what} was created by VSO: {decision.reason}", retry=False
        )
    try:
        patched = await ctx.kube.patch(SECRETS, dest.name, decision.patch, ns, patch_type="merge")
    except Conflict as exc:
        raise ReconcileProblem(
            "DestinationConflict", f"{what} changed while being adopted from VSO; retrying"
        ) from exc
    except ApiError as exc:
        raise ReconcileProblem(
            "DestinationWriteFailed", f"adopting {what} from VSO failed: {exc}"
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
                "DestinationNotFound",
                f"Secret {ns}/{dest.name} does not exist and destination.create is false "
                "(create it, or set destination.create: true)",
            )
        return
    if dest.create and not is_owned_by(live, owner) and not dest.overwrite:
        raise ReconcileProblem(
            "DestinationConflict",
            f"Secret {ns}/{dest.name} exists and was not created by this {owner['kind']}; "
            "refusing to overwrite it (set destination.overwrite: true to take it over)",
            retry=False,
        )
    controller = _other_controller(live, owner)
    if not dest.create and controller is not None and not dest.overwrite:
        # Its controller rewrites the Secret to its own desired state: writing keys into it
        # would start an endless tug of war (one write per reconcile, on both sides).
        raise ReconcileProblem(
            "DestinationConflict",
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


def plan(
    owner: Mapping[str, Any],
    dest: Destination,
    live: Mapping[str, Any] | None,
    data: Mapping[str, bytes],
    *,
    vault_changed: bool,
    spec_changed: bool,
    mac_key: bytes = b"",
) -> Plan:
    """`mac_key`: the operator's HMAC key, to compare with a digested (cached) Secret."""
    if live is None:
        return Plan(True, "create")
    if dest.create:
        keys = data_keys(live)
        extra = tuple(k for k in keys if k not in data)
        if DATA_MAC in live:
            same = (
                len(keys) == len(data)
                and not extra
                and data_mac(mac_key, live) == compute_mac(mac_key, data)
            )
        else:
            same = decode_data(live) == dict(data)
        meta_ok = metadata_matches(owner, dest, live)
    else:
        # create: false Secrets are not ours, so never in the owned-Secret (digested) cache.
        live_data = decode_data(live)
        extra = ()
        same = all(live_data.get(k) == v for k, v in data.items())
        meta_ok = True
    if same and meta_ok:
        return Plan(False, "none")
    if vault_changed:
        cause = "vault-change"
    elif spec_changed:
        cause = "spec-change"
    else:
        cause = "drift"
    return Plan(True, cause, extra)


def metadata_matches(owner: Mapping[str, Any], dest: Destination, live: Mapping[str, Any]) -> bool:
    """Whether an owned (`create: true`) Secret carries what the spec asks besides data."""
    return (
        all(objects.labels(dict(live)).get(k) == v for k, v in desired_labels(owner, dest).items())
        and all(objects.annotations(dict(live)).get(k) == v for k, v in dest.annotations.items())
        and is_owned_by(live, owner)
        and live.get("type", "Opaque") == dest.type
    )


async def write(
    ctx: OperatorContext,
    owner: Mapping[str, Any],
    dest: Destination,
    data: Mapping[str, bytes],
    extra_keys: tuple[str, ...] = (),
    *,
    create_only: bool = False,
) -> dict[str, Any]:
    """Server-side apply the destination. `create_only`: the Secret is believed absent;
    raise `DestinationExists` instead of writing if it is there (the caller re-reads it and
    runs the ownership checks before anything is written)."""
    ns = objects.namespace(dict(owner))
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": dest.name, "namespace": ns},
        "data": encode_data(data),
    }
    if dest.create:
        body["metadata"]["labels"] = desired_labels(owner, dest)
        if dest.annotations:
            body["metadata"]["annotations"] = dict(dest.annotations)
        body["metadata"]["ownerReferences"] = [objects.owner_reference(dict(owner))]
        body["type"] = dest.type
    if create_only:
        body["metadata"]["resourceVersion"] = CREATE_ONLY_RESOURCE_VERSION
    try:
        applied = await ctx.kube.apply(SECRETS, body, namespace=ns, name=dest.name)
        if extra_keys:
            # Keys added by hand under another field manager survive an apply; an owned
            # Secret holds exactly the synced keys, so remove them explicitly.
            present = [k for k in extra_keys if k in (applied.get("data") or {})]
            if present:
                ops = [{"op": "remove", "path": f"/data/{_pointer(k)}"} for k in present]
                applied = await ctx.kube.patch(SECRETS, dest.name, ops, ns, patch_type="json")
    except Conflict as exc:
        if create_only:
            raise DestinationExists(f"Secret {ns}/{dest.name} exists") from exc
        raise ReconcileProblem(
            "DestinationWriteFailed", f"writing Secret {ns}/{dest.name} failed: {exc}"
        ) from exc
    except Invalid as exc:
        raise ReconcileProblem(
            "DestinationInvalid",
            f"the API server refused Secret {ns}/{dest.name}: {exc}",
            retry=False,
        ) from exc
    except ApiError as exc:
        raise ReconcileProblem(
            "DestinationWriteFailed", f"writing Secret {ns}/{dest.name} failed: {exc}"
        ) from exc
    return applied


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


async def delete_if_owned(ctx: OperatorContext, owner: Mapping[str, Any], name: str) -> bool:
    """Delete the Secret `name` if this owner created it (used after a destination rename)."""
    ns = objects.namespace(dict(owner))
    live = await read_live(ctx, ns, name)
    if live is None or not is_owned_by(live, owner):
        return False
    try:
        await ctx.kube.delete(SECRETS, name, ns, preconditions_uid=objects.uid(live))
    except NotFound:
        return False
    return True
