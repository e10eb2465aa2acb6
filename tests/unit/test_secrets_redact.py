"""Redaction types and the message scrubber: secret values never show in text."""

from __future__ import annotations

import logging
import pickle

import pytest

from vaultbridge.secrets.redact import REDACTED, SecretData, Sensitive, redact_text

CANARY = "canary-7f3a9c-s3cr3t"


def test_sensitive_hides_value_in_every_text_form() -> None:
    value = Sensitive(CANARY)
    texts = [repr(value), str(value), f"{value}", f"{value!r}", f"{value:>40}", "%s" % (value,)]  # noqa: UP031
    for text in texts:
        assert CANARY not in text
        assert REDACTED in text
    assert value.reveal() == CANARY


def test_sensitive_in_containers_and_exceptions_stays_hidden() -> None:
    value = Sensitive(CANARY.encode())
    assert CANARY not in repr([value, {"k": value}])
    exc = ValueError("failed with", value)
    assert CANARY not in str(exc)
    assert CANARY not in repr(exc)


def test_sensitive_equality_compares_values_without_revealing() -> None:
    assert Sensitive("a-long-secret") == Sensitive("a-long-secret")
    assert Sensitive("a-long-secret") != Sensitive("another")
    assert Sensitive(b"x") == Sensitive(b"x")
    assert Sensitive(b"x") != Sensitive(b"y")
    assert Sensitive(3) == Sensitive(3)
    assert Sensitive("x") != "x"  # no accidental comparison with plain values
    assert hash(Sensitive("k")) == hash(Sensitive("k"))


def test_sensitive_refuses_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Sensitive(CANARY))


def test_secret_data_is_a_read_only_mapping_with_redacted_repr() -> None:
    data = SecretData({"password": CANARY.encode(), "user": b"admin"})
    assert dict(data) == {"password": CANARY.encode(), "user": b"admin"}
    assert data["user"] == b"admin"
    assert len(data) == 2
    assert sorted(data) == ["password", "user"]
    for text in (repr(data), str(data), f"{data}", f"{data!s:>10}"):
        assert CANARY not in text
        assert "admin" not in text
        assert "password" in text  # keys are not secret, and help debugging
    with pytest.raises(TypeError):
        data["x"] = b"y"  # type: ignore[index]


def test_secret_data_copies_its_input() -> None:
    source = {"a": b"1"}
    data = SecretData(source)
    source["a"] = b"2"
    assert data["a"] == b"1"
    revealed = data.reveal()
    revealed["a"] = b"3"
    assert data["a"] == b"1"


def test_secret_data_rejects_non_bytes_values_without_printing_them() -> None:
    with pytest.raises(TypeError) as info:
        SecretData({"k": CANARY})  # type: ignore[dict-item]
    assert CANARY not in str(info.value)


def test_secret_data_size_counts_keys_and_values_in_bytes() -> None:
    assert SecretData({"ké": b"abc", "x": b""}).size == 3 + 3 + 1


def test_secret_data_sensitive_accessor_and_equality() -> None:
    data = SecretData({"k": b"v"})
    assert data.get_sensitive("k").reveal() == b"v"
    assert data == SecretData({"k": b"v"})
    assert data == {"k": b"v"}


def test_logging_a_secret_data_never_writes_values(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    with caplog.at_level(logging.DEBUG, logger="test.redact"):
        logger.debug("built %s and %r", SecretData({"p": CANARY.encode()}), Sensitive(CANARY))
    assert CANARY not in caplog.text
    assert REDACTED in caplog.text


def test_redact_text_replaces_every_occurrence() -> None:
    text = f"failed: '{CANARY}' is not {CANARY}!"
    assert redact_text(text, [CANARY]) == f"failed: '{REDACTED}' is not {REDACTED}!"


def test_redact_text_prefers_longest_values() -> None:
    assert redact_text("value abcdef here", ["abc", "abcdef"]) == f"value {REDACTED} here"


def test_redact_text_walks_nested_values_and_wrappers() -> None:
    values = [{"a": ["nested-secret-1", {"b": Sensitive("nested-secret-2")}]}, b"bytes-secret"]
    text = "nested-secret-1 / nested-secret-2 / bytes-secret / public"
    assert redact_text(text, values) == f"{REDACTED} / {REDACTED} / {REDACTED} / public"


def test_redact_text_catches_escaped_forms() -> None:
    secret = 'it\'s a "quoted"\nsecret'
    # How repr() and JSON would quote it inside an error message.
    assert secret not in redact_text(repr(secret), [secret])
    assert repr(secret)[1:-1] not in redact_text(f"x {secret!r} y", [secret])
    import json

    assert json.dumps(secret)[1:-1] not in redact_text(json.dumps({"v": secret}), [secret])


def test_redact_text_numbers_and_short_values() -> None:
    assert redact_text("pin 482913 rejected", [482913]) == f"pin {REDACTED} rejected"
    # One-character values are left: scrubbing every "a" would destroy the message.
    assert redact_text("a value", ["a"]) == "a value"
    assert redact_text("a value", ["a"], min_length=1) == f"{REDACTED} v{REDACTED}lue"


def test_redact_text_treats_values_literally() -> None:
    assert redact_text("x.*y and x.*y", ["x.*y"]) == f"{REDACTED} and {REDACTED}"
    assert redact_text("nothing here", ["(", "[unclosed"]) == "nothing here"


def test_redact_text_without_values_returns_text() -> None:
    assert redact_text("plain", []) == "plain"
    assert redact_text("", [CANARY]) == ""
