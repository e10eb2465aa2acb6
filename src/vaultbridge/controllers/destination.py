"""Reading, planning and writing the destination Secret (server-side apply).

What it owns, for every kind that writes a Secret, once ownership.py let the object through:

- **Reading**: `read_live` prefers the owned-Secret cache (digests, not values) and falls
  back to a GET; `presumed_absent` lets a first sync skip that GET, never at the price of an
  overwrite (below).
- **Planning** (`plan`, pure): a write happens only when the live Secret differs from what it
  should be, in data or, for an owned Secret, in labels, annotations, owner reference or type;
  the plan names the cause (create, vault-change, spec-change, drift) for metrics and the
  drift guard.
- **Writing** (`write`): one server-side apply of the keys we own. `create: true` Secrets
  carry our labels and a controller ownerReference (the garbage collector deletes them with
  their object) and hold exactly the synced keys; `create: false` Secrets keep every key
  another field manager wrote. A write believed to create is create-only: it raises
  `DestinationExists` instead of touching a Secret that is there after all.
- **Deleting** (`delete_if_owned`): only a Secret this object owns, uid-preconditioned.

Failures become `ReconcileProblem`s with the Destination* reasons; nothing here empties or
deletes a Secret on failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaultbridge.api.destination import Destination
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, Conflict, Invalid, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.secrets.hmac import compute_mac

from .context import OperatorContext
from .errors import ReconcileProblem
from .ownership import desired_labels, is_owned_by
from .reasons import Reason
from .secret_data import DATA_MAC, data_keys, data_mac, decode_data, encode_data


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
) -> None:
    """Server-side apply the destination. `create_only`: the Secret is believed absent;
    raise `DestinationExists` instead of writing if it is there (the caller re-reads it and
    runs the ownership checks before anything is written).

    The API server's answer (the whole Secret) is decoded only when `extra_keys` must be
    checked against it; otherwise nothing reads it (the owned-Secret informer brings the
    Secret back as a watch event), so it is left undecoded."""
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
        applied = await ctx.kube.apply(
            SECRETS, body, namespace=ns, name=dest.name, decode=bool(extra_keys)
        )
        if extra_keys:
            # Keys added by hand under another field manager survive an apply; an owned
            # Secret holds exactly the synced keys, so remove them explicitly.
            present = [k for k in extra_keys if k in (applied.get("data") or {})]
            if present:
                ops = [{"op": "remove", "path": f"/data/{_pointer(k)}"} for k in present]
                await ctx.kube.patch(SECRETS, dest.name, ops, ns, patch_type="json", decode=False)
    except Conflict as exc:
        if create_only:
            raise DestinationExists(f"Secret {ns}/{dest.name} exists") from exc
        raise ReconcileProblem(
            Reason.DESTINATION_WRITE_FAILED, f"writing Secret {ns}/{dest.name} failed: {exc}"
        ) from exc
    except Invalid as exc:
        raise ReconcileProblem(
            Reason.DESTINATION_INVALID,
            f"the API server refused Secret {ns}/{dest.name}: {exc}",
            retry=False,
        ) from exc
    except ApiError as exc:
        raise ReconcileProblem(
            Reason.DESTINATION_WRITE_FAILED, f"writing Secret {ns}/{dest.name} failed: {exc}"
        ) from exc


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
