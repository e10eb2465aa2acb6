"""Adoption without rotation: taking over a Secret that VSO created, data untouched.

A pure decision. Given the live destination Secret, the vaultbridge object that names it and
what that object would write, `decide_adoption` answers one of:

- `None`: the Secret was not created by VSO; the usual ownership rules apply.
- `Refusal(reason)`: it was, but taking it over is not safe or not asked for; the reason is
  for the user (a status condition and an event), it names objects, never data.
- `Adoption(patch, ...)`: a JSON merge patch of the Secret's metadata that swaps VSO's labels and
  owner reference for ours, guarded by the live resourceVersion (a concurrent change makes the
  patch fail with 409 instead of overwriting it). `data_matches` says whether the data already
  equals what vaultbridge would write: when it does, the patch is the only write; when not, the
  usual data write follows. `restart` is always False: changing owners changes nothing a pod
  sees, so it must never trigger `rolloutRestartTargets`.

How VSO marks a Secret it created: labels `app.kubernetes.io/managed-by=hashicorp-vso`,
`app.kubernetes.io/component=secret-sync`, `app.kubernetes.io/name=vault-secrets-operator`,
`secrets.hashicorp.com/vso-ownerRefUID=<uid of the VSO object>`, and an ownerReference
(apiVersion `secrets.hashicorp.com/v1beta1`, kind and name of the VSO object; no controller flag).

Adoption is only done when asked: `vaultbridge migrate` annotates each converted object with
`vaultbridge.dev/adopt-from: vso` (or `vso/<uid>` when it knew the VSO object's uid). The
Secret must belong to the VSO object of the same kind and name (and uid, when recorded) as the
vaultbridge object, in the same namespace, and nobody else may control it.

Call sites: the operator, `controllers/ownership.py:claim` (before its ownership check; for
VaultStaticSecret only, which needs no state carried over: its first sync restarts nothing),
and `vaultbridge migrate --adopt-secrets` (`takeover.py`), which also carries VSO's lease or
certificate state (`carried_status`) for VaultDynamicSecret / VaultPKISecret, without which
they would issue new credentials.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vaultbridge.secrets.hmac import compute_mac

from . import vso
from .convert import ADOPT_ANNOTATION

_VSO_LABEL_KEYS = (*vso.OWNER_LABELS, vso.LABEL_OWNER_UID)


@dataclass(frozen=True)
class Refusal:
    reason: str


@dataclass(frozen=True)
class Adoption:
    patch: dict[str, Any]
    data_matches: bool
    differing_keys: tuple[str, ...] = ()
    """Names (never values) of the keys whose data differs; empty when `data_matches`."""
    restart: bool = False


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _str_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _refs(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    refs = _meta(obj).get("ownerReferences")
    return [dict(r) for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []


def _is_vso_ref(ref: Mapping[str, Any]) -> bool:
    return str(ref.get("apiVersion", "")).startswith(vso.GROUP + "/")


def is_vso_secret(secret: Mapping[str, Any]) -> bool:
    """Whether VSO created this Secret (its managed-by label or a VSO owner reference)."""
    labels = _str_map(_meta(secret).get("labels"))
    return labels.get(vso.LABEL_MANAGED_BY) == vso.MANAGED_BY_VSO or any(
        _is_vso_ref(r) for r in _refs(secret)
    )


def decode_data(secret: Mapping[str, Any]) -> dict[str, bytes] | None:
    out: dict[str, bytes] = {}
    for key, value in _str_map(secret.get("data")).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return out


def decide_adoption(
    secret: Mapping[str, Any],
    owner: Mapping[str, Any],
    *,
    owner_reference: Mapping[str, Any],
    desired_labels: Mapping[str, str],
    desired_data: Mapping[str, bytes] | None,
) -> Adoption | Refusal | None:
    """See the module docstring. `owner_reference` is the reference the operator puts on the
    Secrets it owns; `desired_data` is what it would write (None: not known, compare skipped
    and `data_matches` False)."""
    if not is_vso_secret(secret):
        return None
    secret_meta, owner_meta = _meta(secret), _meta(owner)
    kind, name = str(owner.get("kind", "")), str(owner_meta.get("name", ""))
    intent = _str_map(owner_meta.get("annotations")).get(ADOPT_ANNOTATION)
    if intent is None:
        return Refusal(
            f"the Secret was created by VSO; annotate this {kind} with "
            f"{ADOPT_ANNOTATION}: vso to take it over (vaultbridge migrate does)"
        )
    if intent != "vso" and not intent.startswith("vso/"):
        return Refusal(f"annotation {ADOPT_ANNOTATION} must be 'vso' or 'vso/<uid>'")
    recorded_uid = intent.removeprefix("vso").removeprefix("/")
    if secret_meta.get("namespace") != owner_meta.get("namespace"):
        return Refusal("the Secret is in another namespace than this object")

    vso_refs = [r for r in _refs(secret) if _is_vso_ref(r)]
    for ref in vso_refs:
        if ref.get("kind") != kind or ref.get("name") != name:
            return Refusal(
                f"the Secret belongs to VSO's {ref.get('kind')} {ref.get('name')}, not to the "
                f"{kind} {name} this object was converted from"
            )
        if recorded_uid and ref.get("uid") != recorded_uid:
            return Refusal(
                f"the Secret belongs to another VSO {kind} {name} (uid differs from the one "
                "recorded at conversion)"
            )
    label_uid = _str_map(secret_meta.get("labels")).get(vso.LABEL_OWNER_UID)
    if recorded_uid and label_uid and label_uid != recorded_uid:
        return Refusal(
            f"the Secret's {vso.LABEL_OWNER_UID} label names another VSO object than the one "
            "recorded at conversion"
        )
    own_uid = owner_reference.get("uid")
    others = [r for r in _refs(secret) if not _is_vso_ref(r) and r.get("uid") != own_uid]
    for ref in others:
        if ref.get("controller") is True:
            return Refusal(f"the Secret is controlled by {ref.get('kind')} {ref.get('name')}")

    labels: dict[str, str | None] = {k: None for k in _VSO_LABEL_KEYS}
    labels.update(desired_labels)
    current = _str_map(secret_meta.get("labels"))
    labels = {k: v for k, v in labels.items() if current.get(k) != v}
    patch_meta: dict[str, Any] = {
        "resourceVersion": secret_meta.get("resourceVersion"),
        "ownerReferences": [*others, dict(owner_reference)],
    }
    if labels:
        patch_meta["labels"] = labels
    patch = {"metadata": patch_meta}

    if desired_data is None:
        return Adoption(patch, data_matches=False)
    live = decode_data(secret)
    if live is None:
        return Adoption(patch, data_matches=False, differing_keys=("<undecodable data>",))
    differing = tuple(
        sorted(k for k in set(live) | set(desired_data) if live.get(k) != desired_data.get(k))
    )
    return Adoption(patch, data_matches=not differing, differing_keys=differing)


# --- carrying VSO's lease / certificate state over --------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def carried_status(
    kind: str,
    vso_status: Mapping[str, Any] | None,
    live_data: Mapping[str, bytes],
    *,
    hmac_key: bytes,
    generation: int,
) -> dict[str, Any] | None:
    """The status fields that let the operator keep the credentials VSO issued.

    Without them the operator's first sync of a VaultDynamicSecret or VaultPKISecret issues new
    credentials (and, being a first sync, restarts nothing: consumers that read them at start
    keep VSO's, which then expire unrenewed). With them it finds a lease (or certificate) it
    holds, for data it wrote (`secretMAC` over the live data, with the operator's key), and
    renews or rotates on its usual schedule. None when VSO's status lacks what is needed; the
    operator then issues as for a new object.
    """
    status = vso_status or {}
    mac = compute_mac(hmac_key, live_data)
    if kind == "VaultDynamicSecret":
        last = _int(status.get("lastRenewalTime"))
        lease = status.get("secretLease")
        if not last or not isinstance(lease, Mapping):
            return None
        out: dict[str, Any] = {
            "lastGeneration": generation,
            "secretMAC": mac,
            "lastRenewalTime": last,
            "secretLease": {
                "id": str(lease.get("id") or ""),
                "duration": _int(lease.get("duration")) or 0,
                "renewable": bool(lease.get("renewable")),
                "requestID": str(lease.get("requestID") or ""),
            },
        }
        static = status.get("staticCredsMetaData")
        if isinstance(static, Mapping) and _int(static.get("ttl")) is not None:
            out["staticCredsMetaData"] = {
                "lastVaultRotation": _int(static.get("lastVaultRotation")) or 0,
                "rotationPeriod": _int(static.get("rotationPeriod")) or 0,
                "ttl": _int(static.get("ttl")) or 0,
            }
        return out
    if kind == "VaultPKISecret":
        serial = status.get("serialNumber")
        expiration = _int(status.get("expiration"))
        if not isinstance(serial, str) or not serial or not expiration:
            return None
        out = {
            "lastGeneration": generation,
            "secretMAC": mac,
            "serialNumber": serial,
            "expiration": expiration,
        }
        last_rotation = _int(status.get("lastRotation"))
        if last_rotation:
            out["lastRotation"] = last_rotation
        return out
    return None
