"""The pure parts of VaultPKISecret: the issue request and the Secret keys of a certificate."""

from __future__ import annotations

from typing import Any

from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.controllers.pki_secret import certificate_fields, issue_request


def spec(**fields: Any) -> VaultPKISecretSpec:
    return VaultPKISecretSpec.model_validate(
        {"mount": "pki", "role": "web", "destination": {"name": "tls"}, **fields}
    )


def test_issue_request_sends_only_what_the_spec_sets() -> None:
    assert issue_request(spec()) == {"format": "pem"}
    body = issue_request(
        spec(
            commonName="a.example.com",
            altNames=["b.example.com", "c.example.com"],
            ipSans=["10.0.0.1", "::1"],
            uriSans=["spiffe://x/y"],
            otherSans=["1.2.3.4;UTF8:z"],
            ttl="30s",
            privateKeyFormat="pkcs8",
            notAfter="2030-01-01T00:00:00Z",
            excludeCNFromSans=True,
            format="pem_bundle",
        )
    )
    assert body == {
        "format": "pem_bundle",
        "common_name": "a.example.com",
        "alt_names": "b.example.com,c.example.com",
        "ip_sans": "10.0.0.1,::1",
        "uri_sans": "spiffe://x/y",
        "other_sans": "1.2.3.4;UTF8:z",
        "ttl": "30s",
        "private_key_format": "pkcs8",
        "not_after": "2030-01-01T00:00:00Z",
        "exclude_cn_from_sans": True,
    }


RESPONSE = {
    "certificate": "LEAF",
    "private_key": "KEY",
    "private_key_type": "ec",
    "issuing_ca": "INTERMEDIATE",
    "ca_chain": ["INTERMEDIATE", "ROOT"],
    "serial_number": "01:02",
    "expiration": 1_900_000_000,
}


def test_certificate_fields_for_opaque_secrets() -> None:
    fields = certificate_fields(RESPONSE, "Opaque")
    assert fields == {
        "certificate": "LEAF",
        "private_key": "KEY",
        "private_key_type": "ec",
        "issuing_ca": "INTERMEDIATE",
        "ca_chain": "INTERMEDIATE\nROOT",
        "serial_number": "01:02",
        "expiration": 1_900_000_000,
    }


def test_tls_secrets_get_leaf_then_chain_and_the_key() -> None:
    fields = certificate_fields(RESPONSE, "kubernetes.io/tls")
    assert fields["tls.crt"] == "LEAF\nINTERMEDIATE\nROOT\n"
    assert fields["tls.key"] == "KEY"
    # A chain that repeats the leaf does not list it twice.
    fields = certificate_fields({**RESPONSE, "ca_chain": ["LEAF", "ROOT"]}, "kubernetes.io/tls")
    assert fields["tls.crt"] == "LEAF\nROOT\n"
    # No chain at all (some Vault versions omit it).
    fields = certificate_fields({**RESPONSE, "ca_chain": None}, "kubernetes.io/tls")
    assert fields["tls.crt"] == "LEAF\n" and fields["ca_chain"] == ""
