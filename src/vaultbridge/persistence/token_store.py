"""Vault tokens kept in Secrets in the operator namespace, so leases survive restarts.

One Secret per client-cache key (VaultAuth, VaultConnection, consumer service account),
named from a hash of the key's identity. What protects an entry:

- an HMAC-SHA256 (the operator's HMAC key, domain-separated from status.secretMAC) over the
  Secret's name and the whole record, so a changed byte, a record copied from another entry
  or one written without the key is rejected — the Secret is deleted and the operator logs in
  as if nothing had been stored;
- with ``storageEncryption`` on the VaultAuth, the token is encrypted with that Transit key
  (the MAC then covers the ciphertext) and never stored in plaintext: if encryption fails,
  nothing is stored.

Transit needs a token to decrypt, and after a restart the only token at hand is the encrypted
one. So reading an encrypted entry costs one login with the same VaultAuth (whose policy must
allow ``<mount>/decrypt/<key>`` and ``<mount>/encrypt/<key>``); that short-lived token
decrypts the entry and is revoked, and the stored token — the one that holds the leases — is
adopted. Without encryption a restart needs no login at all.

Record (JSON, ``record`` key of the Secret; ``mac`` is ``hmac-sha256:<hex>``)::

    {"v": 1, "identity": {...}, "accessor": "...", "ttl": 3600, "obtainedAt": 1.7e9,
     "renewable": true, "policies": [...], "tokenType": "service", "entityId": "...",
     "token": "<plaintext>"}                      # or, encrypted:
     "ciphertext": "vault:v1:...", "transit": {"mount": "transit", "keyName": "k"}}

Labels (not secret; used to find entries, never trusted for anything but deletion):
managed-by, ``vaultbridge.dev/component=client-cache``, ``vaultbridge.dev/vault-auth`` (hash
of namespace/name), the VaultAuth's and VaultConnection's uid and generation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vaultbridge.api.kinds import VAULT_AUTHS
from vaultbridge.api.labels import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import Conflict, Forbidden, KubeError, NotFound
from vaultbridge.kube.resources import SECRETS
from vaultbridge.vault.client import VaultClient
from vaultbridge.vault.errors import BadResponse, PermissionDenied, VaultError
from vaultbridge.vault.models import AuthToken
from vaultbridge.vault.persist import LoginFn, Restored, TokenStoreUnavailable

log = logging.getLogger(__name__)

COMPONENT_LABEL = "vaultbridge.dev/component"
COMPONENT_VALUE = "client-cache"
AUTH_LABEL = "vaultbridge.dev/vault-auth"
AUTH_UID_LABEL = "vaultbridge.dev/vault-auth-uid"
AUTH_GENERATION_LABEL = "vaultbridge.dev/vault-auth-generation"
CONNECTION_UID_LABEL = "vaultbridge.dev/vault-connection-uid"
CONNECTION_GENERATION_LABEL = "vaultbridge.dev/vault-connection-generation"
AUTH_ANNOTATION = "vaultbridge.dev/vault-auth"
EXPIRES_ANNOTATION = "vaultbridge.dev/token-expires-at"
NAME_PREFIX = "vaultbridge-token-"

_DOMAIN = b"vaultbridge/client-cache/v1\x00"
_SCHEME = "hmac-sha256"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class ClientKey:
    """The client-cache key of one Vault identity (see ``VaultAccess.cache_key``).

    Any change of either object's spec bumps its generation and so gives a new key (a new
    login, a new persisted entry). ``encryption`` and ``persist`` follow from the VaultAuth's
    spec, hence from its generation: they ride along for the store and change nothing about
    identity.
    """

    auth_namespace: str
    auth_name: str
    auth_uid: str
    auth_generation: int
    connection_uid: str
    connection_generation: int
    consumer_namespace: str | None = None
    subject: str | None = None
    encryption: tuple[str, str] | None = None
    persist: bool = True
    auth_global: str = ""
    """The VaultAuthGlobal merged into the VaultAuth (`ns/name@uid:generation`), empty if none:
    a change of the global is a change of the login."""

    def identity(self) -> dict[str, str]:
        """What the persisted record is bound to (the MAC covers it)."""
        out = {
            "vaultAuth": f"{self.auth_namespace}/{self.auth_name}",
            "vaultAuthUID": self.auth_uid,
            "vaultAuthGeneration": str(self.auth_generation),
            "vaultConnectionUID": self.connection_uid,
            "vaultConnectionGeneration": str(self.connection_generation),
            "consumerNamespace": self.consumer_namespace or "",
            "subject": self.subject or "",
        }
        if self.auth_global:
            # Only when set, so the records of VaultAuths without a global keep their names.
            out["vaultAuthGlobal"] = self.auth_global
        return out

    def secret_name(self) -> str:
        digest = hashlib.sha256(_canonical(self.identity())).hexdigest()
        return NAME_PREFIX + digest[:16]


def auth_label_value(namespace: str, name: str) -> str:
    """A label value naming a VaultAuth (namespace/name can exceed the 63-character limit)."""
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:16]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_mac(key: bytes, name: str, record: bytes) -> str:
    mac = hmac.new(key, _DOMAIN, hashlib.sha256)
    encoded_name = name.encode()
    mac.update(len(encoded_name).to_bytes(8, "big") + encoded_name)
    mac.update(len(record).to_bytes(8, "big") + record)
    return f"{_SCHEME}:{mac.hexdigest()}"


class RejectedEntry(Exception):
    """A persisted entry failed verification; the message says why, never what it held."""


def open_entry(hmac_key: bytes, key: ClientKey, secret: dict[str, Any]) -> dict[str, Any]:
    """The verified record of a stored Secret for ``key``, or ``RejectedEntry``."""
    data = secret.get("data") or {}
    try:
        record = base64.b64decode(data.get("record") or "", validate=True)
        mac = base64.b64decode(data.get("mac") or "", validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise RejectedEntry("record or MAC is not valid base64") from None
    if not record or not mac:
        raise RejectedEntry("record or MAC missing")
    expected = compute_mac(hmac_key, key.secret_name(), record)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise RejectedEntry("MAC mismatch (modified, or written with another HMAC key)")
    try:
        parsed = json.loads(record)
    except ValueError:
        raise RejectedEntry("record is not JSON") from None
    if not isinstance(parsed, dict) or parsed.get("v") != _VERSION:
        raise RejectedEntry("unknown record version")
    if parsed.get("identity") != key.identity():
        raise RejectedEntry("record belongs to another identity")
    has_plain = isinstance(parsed.get("token"), str) and bool(parsed["token"])
    has_cipher = isinstance(parsed.get("ciphertext"), str) and bool(parsed["ciphertext"])
    if has_plain == has_cipher:
        raise RejectedEntry("record holds no token")
    return parsed


def seal_entry(hmac_key: bytes, key: ClientKey, record: dict[str, Any]) -> dict[str, str]:
    """Secret ``data`` for ``record``: the canonical JSON and its MAC, base64-encoded."""
    body = _canonical(record)
    mac = compute_mac(hmac_key, key.secret_name(), body)
    return {
        "record": base64.b64encode(body).decode(),
        "mac": base64.b64encode(mac.encode()).decode(),
    }


def token_record(key: ClientKey, token: AuthToken) -> dict[str, Any]:
    """Everything but the token itself (added, plain or encrypted, by the caller)."""
    return {
        "v": _VERSION,
        "identity": key.identity(),
        "accessor": token.accessor,
        "ttl": token.lease_duration,
        "obtainedAt": token.obtained_at.timestamp(),
        "renewable": token.renewable,
        "policies": list(token.policies),
        "tokenType": token.token_type or "",
        "entityId": token.entity_id or "",
    }


def _transit_paths(transit: tuple[str, str]) -> tuple[str, str]:
    mount, key_name = transit
    return f"{mount}/encrypt/{key_name}", f"{mount}/decrypt/{key_name}"


async def transit_encrypt(client: VaultClient, transit: tuple[str, str], plaintext: str) -> str:
    path, _ = _transit_paths(transit)
    resp = await client.write(
        path,
        {"plaintext": base64.b64encode(plaintext.encode()).decode()},
        operation="transit_encrypt",
    )
    ciphertext = (resp.data or {}).get("ciphertext") if resp is not None else None
    if not isinstance(ciphertext, str) or not ciphertext:
        raise BadResponse("transit encrypt answered without ciphertext", path=path)
    return ciphertext


async def transit_decrypt(client: VaultClient, transit: tuple[str, str], ciphertext: str) -> str:
    _, path = _transit_paths(transit)
    resp = await client.write(path, {"ciphertext": ciphertext}, operation="transit_decrypt")
    plaintext = (resp.data or {}).get("plaintext") if resp is not None else None
    if not isinstance(plaintext, str):
        raise BadResponse("transit decrypt answered without plaintext", path=path)
    try:
        return base64.b64decode(plaintext, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadResponse("transit decrypt answered with invalid plaintext", path=path) from None


class KubeTokenStore:
    """``vault.persist.TokenStore`` on Secrets in the operator namespace.

    Keys that are not ``ClientKey`` or have ``persist`` off are neither loaded nor saved.
    """

    def __init__(self, kube: KubeClient, namespace: str, hmac_key: bytes) -> None:
        self.kube = kube
        self.namespace = namespace
        self._hmac_key = hmac_key
        self._forbidden_logged = False

    def __repr__(self) -> str:
        return f"KubeTokenStore(namespace={self.namespace!r})"

    # -- TokenStore --------------------------------------------------------------------------

    async def load(self, key: Hashable, client: VaultClient, login: LoginFn) -> Restored | None:
        if not isinstance(key, ClientKey) or not key.persist:
            return None
        name = key.secret_name()
        secret = await self._get(name)
        if secret is None:
            return None
        who = f"VaultAuth {key.auth_namespace}/{key.auth_name} (namespace {key.consumer_namespace})"
        try:
            record = open_entry(self._hmac_key, key, secret)
        except RejectedEntry as exc:
            log.warning(
                "persisted Vault token %s/%s for %s rejected: %s; deleting it and logging in",
                self.namespace,
                name,
                who,
                exc,
            )
            await self._delete(secret)
            return None

        fresh: AuthToken | None = None
        token = record.get("token")
        if not isinstance(token, str) or not token:
            transit = record.get("transit") or {}
            pair = (str(transit.get("mount") or ""), str(transit.get("keyName") or ""))
            # Transit needs a token: one login with the same VaultAuth decrypts the entry.
            fresh = await login()
            decrypter = VaultClient(
                client.transport,
                client.settings,
                token=fresh.client_token,
                namespace=client.namespace,
            )
            try:
                token = await transit_decrypt(decrypter, pair, str(record["ciphertext"]))
            except VaultError as exc:
                log.warning(
                    "cannot decrypt the persisted Vault token for %s with transit key %s/%s: "
                    "%s; using the new login",
                    who,
                    pair[0],
                    pair[1],
                    exc,
                )
                return Restored(fresh, fresh=True)

        checker = VaultClient(client.transport, client.settings, namespace=client.namespace)
        try:
            info = await checker.use_token(token)
        except PermissionDenied:
            log.info("persisted Vault token for %s is no longer valid; logging in", who)
            await self._delete(secret)
            return Restored(fresh, fresh=True) if fresh is not None else None
        except VaultError:
            if fresh is not None:
                return Restored(fresh, fresh=True)
            raise
        if fresh is not None:
            await _revoke_quietly(client, fresh)
        stored_ttl = _int(record.get("ttl"))
        # Keep the stored TTL period; place its start so that Vault's remaining TTL holds.
        ttl = max(stored_ttl, info.lease_duration)
        started = datetime.now(UTC) - timedelta(seconds=max(0, ttl - info.lease_duration))
        adopted = AuthToken(
            client_token=token,
            accessor=info.accessor or str(record.get("accessor") or ""),
            policies=info.policies,
            lease_duration=ttl if info.lease_duration > 0 else 0,
            renewable=info.renewable,
            obtained_at=started,
            entity_id=info.entity_id,
            token_type=info.token_type,
        )
        log.info("adopted the persisted Vault token for %s (no login)", who)
        return Restored(adopted)

    async def save(self, key: Hashable, token: AuthToken, client: VaultClient) -> bool:
        if not isinstance(key, ClientKey) or not key.persist:
            return False
        record = token_record(key, token)
        if key.encryption is not None:
            try:
                record["ciphertext"] = await transit_encrypt(
                    client, key.encryption, token.client_token
                )
            except VaultError as exc:
                # Never fall back to plaintext when encryption was asked for.
                log.warning(
                    "not persisting the Vault token for VaultAuth %s/%s: transit encryption "
                    "with %s/%s failed (does its policy allow update on %s/encrypt/%s?): %s",
                    key.auth_namespace,
                    key.auth_name,
                    key.encryption[0],
                    key.encryption[1],
                    key.encryption[0],
                    key.encryption[1],
                    exc,
                )
                return False
            record["transit"] = {"mount": key.encryption[0], "keyName": key.encryption[1]}
        else:
            record["token"] = token.client_token
        expires = token.expires_at
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": key.secret_name(),
                "namespace": self.namespace,
                "labels": {
                    MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                    COMPONENT_LABEL: COMPONENT_VALUE,
                    AUTH_LABEL: auth_label_value(key.auth_namespace, key.auth_name),
                    AUTH_UID_LABEL: key.auth_uid,
                    AUTH_GENERATION_LABEL: str(key.auth_generation),
                    CONNECTION_UID_LABEL: key.connection_uid,
                    CONNECTION_GENERATION_LABEL: str(key.connection_generation),
                },
                "annotations": {
                    AUTH_ANNOTATION: f"{key.auth_namespace}/{key.auth_name}",
                    EXPIRES_ANNOTATION: str(int(expires.timestamp())) if expires else "",
                },
            },
            "type": "Opaque",
            "data": seal_entry(self._hmac_key, key, record),
        }
        await self.kube.apply(SECRETS, body, namespace=self.namespace)
        return True

    # -- cleanup -----------------------------------------------------------------------------

    async def purge_auth(
        self,
        auth_namespace: str,
        auth_name: str,
        current: tuple[str, int, str, int] | None,
    ) -> int:
        """Delete the entries of a VaultAuth except those of ``current`` = (auth uid,
        generation, connection uid, generation); None (the VaultAuth is gone) deletes all."""
        selector = (
            f"{COMPONENT_LABEL}={COMPONENT_VALUE},"
            f"{AUTH_LABEL}={auth_label_value(auth_namespace, auth_name)}"
        )
        listed = await self.kube.list(SECRETS, self.namespace, label_selector=selector)
        removed = 0
        for secret in listed.items:
            labels = objects.labels(secret)
            found = (
                labels.get(AUTH_UID_LABEL, ""),
                _int(labels.get(AUTH_GENERATION_LABEL)),
                labels.get(CONNECTION_UID_LABEL, ""),
                _int(labels.get(CONNECTION_GENERATION_LABEL)),
            )
            if current is None or found != current:
                await self._delete(secret)
                removed += 1
        if removed:
            log.info(
                "deleted %d stale persisted Vault token(s) of VaultAuth %s/%s",
                removed,
                auth_namespace,
                auth_name,
            )
        return removed

    async def sweep(self) -> int:
        """Delete entries whose token has expired or whose VaultAuth is gone (e.g. deleted
        while no operator ran). Safe with sharded operators: it asks the API server, not the
        (possibly label-filtered) informer cache."""
        listed = await self.kube.list(
            SECRETS, self.namespace, label_selector=f"{COMPONENT_LABEL}={COMPONENT_VALUE}"
        )
        now = time.time()
        removed = 0
        for secret in listed.items:
            notes = objects.annotations(secret)
            expires = _int(notes.get(EXPIRES_ANNOTATION))
            stale = bool(expires) and expires < now
            if not stale:
                ns, _, auth = str(notes.get(AUTH_ANNOTATION) or "").partition("/")
                if ns and auth:
                    try:
                        obj = await self.kube.get(VAULT_AUTHS, auth, ns)
                    except NotFound:
                        stale = True
                    else:
                        stale = objects.uid(obj) != objects.labels(secret).get(AUTH_UID_LABEL)
            if stale:
                await self._delete(secret)
                removed += 1
        if removed:
            log.info("deleted %d expired or orphaned persisted Vault token(s)", removed)
        return removed

    # -- Kubernetes I/O ----------------------------------------------------------------------

    async def _get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(SECRETS, name, self.namespace)
        except NotFound:
            return None
        except Forbidden as exc:
            # Without RBAC for it persistence simply does not work; logins still do.
            if not self._forbidden_logged:
                self._forbidden_logged = True
                log.warning("cannot read persisted Vault tokens in %s: %s", self.namespace, exc)
            return None
        except KubeError as exc:
            raise TokenStoreUnavailable(
                f"reading persisted Vault token {self.namespace}/{name} failed: {exc}"
            ) from exc

    async def _delete(self, secret: dict[str, Any]) -> None:
        """Delete the entry as it was read: if a login or renewal rewrote it since, it stays."""
        name = objects.name(secret)
        try:
            await self.kube.delete(
                SECRETS,
                name,
                self.namespace,
                preconditions_uid=objects.uid(secret) or None,
                preconditions_resource_version=objects.resource_version(secret) or None,
            )
        except (NotFound, Conflict):
            pass
        except KubeError as exc:
            log.warning(
                "deleting persisted Vault token %s/%s failed: %s", self.namespace, name, exc
            )


async def _revoke_quietly(client: VaultClient, token: AuthToken) -> None:
    """Revoke the login made only to decrypt; it holds no leases, and it expires anyway."""
    own = VaultClient(
        client.transport, client.settings, token=token.client_token, namespace=client.namespace
    )
    try:
        await own.revoke_self()
    except VaultError as exc:
        log.info("revoking the decryption-only Vault token failed (it expires on its own): %s", exc)


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0
