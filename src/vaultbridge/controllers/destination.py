"""Writing the destination Secret: ownership rules, server-side apply, drift detection.

Rules (the same for every kind that writes a Secret):
- `create: true`: the Secret is ours. It carries the owner labels and a controller
  ownerReference, so the garbage collector deletes it with its custom resource. An existing
  Secret that is not ours is left alone unless `overwrite: true`.
- `create: false`: the Secret must already exist; only the keys we write in `data` are ours
  (server-side apply field ownership), everything else on it belongs to whoever made it.
- A write happens only when the live Secret differs from what it should be.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vaultbridge.api.destination import Destination
from vaultbridge.api.labels import owner_labels
from vaultbridge.engine.informer import strip_managed_fields
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.errors import ApiError, Conflict, Invalid, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.secrets.hmac import compute_mac

from .context import OperatorContext
from .errors import ReconcileProblem


def encode_data(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode("ascii") for k, v in data.items()}


def decode_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The values of a Secret read from the API server (not of a digested cache entry)."""
    if secret is not None and DATA_MAC in secret:
        raise ValueError("a digested Secret has no values: compare with data_mac()")
    raw = (secret or {}).get("data") or {}
    return {k: base64.b64decode(v) for k, v in raw.items()}


#: In the owned-Secret cache a Secret's `data` is replaced by its key names and the HMAC of
#: its values (`digest_owned_secrets`, installed by operator.py as that informer's
#: transform): the values of every Secret the operator wrote do not stay in its memory, and
#: deciding whether to write needs only the comparison of two MACs.
DATA_KEYS = "vaultbridge:dataKeys"
DATA_MAC = "vaultbridge:dataMAC"


def digest_owned_secrets(mac_key: bytes) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def transform(obj: dict[str, Any]) -> dict[str, Any]:
        strip_managed_fields(obj)
        try:
            values = decode_data(obj)
        except ValueError:
            return obj  # not base64 (the API server never sends that): kept as it is
        obj.pop("data", None)
        obj[DATA_KEYS] = tuple(sorted(values))
        obj[DATA_MAC] = compute_mac(mac_key, values)
        return obj

    return transform


def data_keys(secret: Mapping[str, Any]) -> tuple[str, ...]:
    if DATA_MAC in secret:
        return tuple(secret[DATA_KEYS])
    return tuple(sorted(secret.get("data") or {}))


def data_mac(mac_key: bytes, secret: Mapping[str, Any]) -> str:
    """The HMAC of the Secret's values (as `status.secretMAC`), digested or not."""
    if DATA_MAC in secret:
        return str(secret[DATA_MAC])
    return compute_mac(mac_key, decode_data(secret))


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
