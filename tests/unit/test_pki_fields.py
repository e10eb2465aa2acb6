"""The pure parts of VaultPKISecret: the issue request and the Secret keys of a certificate."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vaultbridge.api.pki_secret import VaultPKISecretSpec
from vaultbridge.fetch import issue_request
from vaultbridge.secrets.certificates import certificate_fields, der_to_pem, private_key_label


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


def _ca_and_leaf() -> tuple[str, str, str, str]:
    """A real CA, a leaf it signed and the leaf's key: (ca_pem, leaf_pem, key_pem, key_der_b64)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: str, public: Any, signer: Any) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(hours=1))
            .sign(signer, hashes.SHA256())
        )

    ca = build("Root", "Root", ca_key.public_key(), ca_key)
    leaf = build("leaf.example.com", "Root", leaf_key.public_key(), ca_key)
    pem = serialization.Encoding.PEM
    key_pem = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    key_der = leaf_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return (
        ca.public_bytes(pem).decode(),
        leaf.public_bytes(pem).decode(),
        key_pem,
        base64.b64encode(key_der).decode(),
    )


CA, LEAF, KEY, KEY_DER = _ca_and_leaf()


def _der(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


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


PEM_RESPONSE = {
    "certificate": LEAF,
    "private_key": KEY,
    "private_key_type": "ec",
    "issuing_ca": CA,
    "ca_chain": [CA],
    "serial_number": "01:02",
    "expiration": 1_900_000_000,
}


def test_tls_secrets_get_leaf_then_chain_the_key_and_the_issuing_ca() -> None:
    fields = certificate_fields(PEM_RESPONSE, "kubernetes.io/tls")
    assert fields["tls.crt"] == LEAF.strip() + "\n" + CA.strip() + "\n"
    assert fields["tls.key"] == KEY
    assert fields["ca.crt"] == CA.strip() + "\n"
    # Vault's own fields are kept as they came.
    assert fields["certificate"] == LEAF and fields["issuing_ca"] == CA
    # A chain that repeats the leaf does not list it twice.
    fields = certificate_fields({**PEM_RESPONSE, "ca_chain": [LEAF, CA]}, "kubernetes.io/tls")
    assert fields["tls.crt"] == LEAF.strip() + "\n" + CA.strip() + "\n"
    # No chain at all (some Vault versions omit it).
    fields = certificate_fields({**PEM_RESPONSE, "ca_chain": None}, "kubernetes.io/tls")
    assert fields["tls.crt"] == LEAF.strip() + "\n" and fields["ca_chain"] == ""
    # Opaque Secrets get no tls.* or ca.crt keys.
    assert not {"tls.crt", "tls.key", "ca.crt"} & set(certificate_fields(PEM_RESPONSE, "Opaque"))


def test_pem_bundle_private_key_stays_out_of_tls_crt() -> None:
    bundle = {**PEM_RESPONSE, "certificate": LEAF + KEY + CA}
    fields = certificate_fields(bundle, "kubernetes.io/tls")
    assert "PRIVATE KEY" not in fields["tls.crt"]
    assert fields["tls.crt"] == LEAF.strip() + "\n" + CA.strip() + "\n"


def test_der_response_gives_pem_tls_keys_and_keeps_vault_fields() -> None:
    der = {
        **PEM_RESPONSE,
        "certificate": _der(LEAF),
        "private_key": KEY_DER,
        "issuing_ca": _der(CA),
        "ca_chain": [_der(CA)],
    }
    fields = certificate_fields(der, "kubernetes.io/tls")
    assert fields["certificate"] == _der(LEAF) and fields["private_key"] == KEY_DER
    certs = x509.load_pem_x509_certificates(fields["tls.crt"].encode())
    assert certs == [
        x509.load_pem_x509_certificate(LEAF.encode()),
        x509.load_pem_x509_certificate(CA.encode()),
    ]
    ca = x509.load_pem_x509_certificate(fields["ca.crt"].encode())
    certs[0].verify_directly_issued_by(ca)
    assert fields["tls.key"].startswith("-----BEGIN EC PRIVATE KEY-----\n")
    assert fields["tls.key"] == KEY  # the same PEM cryptography writes for the key
    assert all(len(line) <= 64 for line in fields["tls.crt"].splitlines())


def test_der_to_pem_and_key_labels() -> None:
    assert der_to_pem(base64.b64encode(b"\x30\x00").decode(), "CERTIFICATE") == (
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
    )
    # Line breaks in the base64 are tolerated; garbage is refused without echoing it.
    assert der_to_pem("MA\nA=", "X") == der_to_pem("MAA=", "X")
    with pytest.raises(ValueError) as info:
        der_to_pem("not*base64!", "RSA PRIVATE KEY")
    assert "not*base64" not in str(info.value)
    with pytest.raises(ValueError):
        der_to_pem("", "CERTIFICATE")
    assert private_key_label("rsa", "") == "RSA PRIVATE KEY"
    assert private_key_label("ec", "der") == "EC PRIVATE KEY"
    assert private_key_label("ec", "pkcs8") == "PRIVATE KEY"
    assert private_key_label("ed25519", "") == "PRIVATE KEY"
