"""engine/echoes.py: our own write's event is recognised by content; anything else is not."""

from __future__ import annotations

import base64
from typing import Any

from vaultbridge.controllers.secret_data import data_mac, encode_data
from vaultbridge.engine.echoes import OwnWrites
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.secrets.hmac import compute_mac

KEY = ObjectKey("team-a", "db")
MAC_KEY = b"k" * 32


def fingerprint(data: dict[str, bytes]) -> str:
    return compute_mac(MAC_KEY, data)


def data_fingerprint(secret: dict[str, Any]) -> str:
    return data_mac(MAC_KEY, secret)


def secret(data: dict[str, bytes], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": KEY.namespace, "name": KEY.name, **meta},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def writes() -> OwnWrites:
    return OwnWrites(data_fingerprint)


def test_fingerprints_of_sent_and_received_data_agree() -> None:
    data = {"b": b"2", "a": b"\x00\xff"}
    assert fingerprint(data) == data_fingerprint({"data": encode_data(data)})
    assert fingerprint(data) != fingerprint({"a": b"\x00\xff", "b": b"3"})
    assert fingerprint({}) == data_fingerprint({})


def test_own_write_is_an_echo_whichever_arrives_first() -> None:
    own = writes()
    data = {"password": b"v2"}
    old = secret({"password": b"v1"}, labels={"x": "1"})
    own.expect(KEY, fingerprint(data))
    new = secret(data, labels={"x": "1"})
    assert own.is_echo("MODIFIED", old, new)
    assert own.is_echo("ADDED", None, new)
    # A relist delivering the same content again is still ours.
    assert own.is_echo("MODIFIED", new, new)


def test_other_writers_content_is_not_an_echo() -> None:
    own = writes()
    own.expect(KEY, fingerprint({"password": b"v2"}))
    drifted = secret({"password": b"hand-edited"})
    assert not own.is_echo("MODIFIED", secret({"password": b"v2"}), drifted)


def test_metadata_change_is_not_an_echo_even_with_our_data() -> None:
    own = writes()
    data = {"password": b"v2"}
    own.expect(KEY, fingerprint(data))
    before = secret(data, annotations={"a": "1"})
    after = secret(data, annotations={"a": "2"})
    assert not own.is_echo("MODIFIED", before, after)


def test_unannounced_objects_and_deletions_are_never_echoes() -> None:
    own = writes()
    data = {"password": b"v2"}
    assert not own.is_echo("MODIFIED", None, secret(data))
    own.expect(KEY, fingerprint(data))
    assert len(own) == 1
    assert not own.is_echo("DELETED", secret(data), secret(data))
    assert len(own) == 0  # memory bounded: the deletion drops the expectation
    # After the deletion, the same content written by someone else is not ours.
    assert not own.is_echo("ADDED", None, secret(data))


def test_forget_drops_the_expectation() -> None:
    own = writes()
    own.expect(KEY, fingerprint({"k": b"v"}))
    own.forget(KEY)
    assert not own.is_echo("MODIFIED", None, secret({"k": b"v"}))
