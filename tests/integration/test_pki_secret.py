"""VaultPKISecret end to end: the real operator, API server and OpenBao's PKI engine.

Certificates are parsed with `cryptography` and checked against what was asked for; rotation,
revocation and rollout restarts are checked in OpenBao and on the Deployment.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .helpers import App, deployment, restarted_at, wait_for
from .operator_harness import crd_path, dump
from .pki_support import NOT_BEFORE, PKI, PLURAL, same_key

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(app: App) -> Iterator[PKI]:
    p = PKI(app)
    yield p
    # Objects with the cleanup finalizer must go while their VaultAuth still exists.
    _, listed = app.admin.request("GET", crd_path(PLURAL, app.ns))
    for item in listed.get("items", []):
        app.admin.request("DELETE", crd_path(PLURAL, app.ns, item["metadata"]["name"]))
    wait_for(
        lambda: not app.admin.request("GET", crd_path(PLURAL, app.ns))[1].get("items"),
        30,
        "VaultPKISecrets deleted",
    )
    p.close()


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _serial_hex(cert: x509.Certificate) -> str:
    raw = f"{cert.serial_number:x}"
    raw = raw if len(raw) % 2 == 0 else "0" + raw
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def _verify_signature(cert: x509.Certificate, ca: x509.Certificate) -> None:
    """Raises unless `ca`'s public key made the signature on `cert` (EC roots here)."""
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    public.verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )


@pytest.mark.both_servers
def test_certificate_has_requested_names_and_tls_keys(pki: PKI) -> None:
    pki.vps(
        "web-tls",
        commonName="api.example.com",
        altNames=["www.example.com", "admin.example.com"],
        ipSans=["127.0.0.1"],
        uriSans=["spiffe://example.com/api"],
        ttl="1h",
        destination={"name": "web-tls", "create": True, "type": "kubernetes.io/tls"},
    )
    data = pki.wait_synced("web-tls")
    secret = pki.app.secret("web-tls")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert {"certificate", "private_key", "issuing_ca", "ca_chain", "serial_number"} <= set(data)
    assert {"expiration", "tls.crt", "tls.key", "ca.crt"} <= set(data)

    cert = _cert(data["certificate"])
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "api.example.com"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "api.example.com",
        "www.example.com",
        "admin.example.com",
    }
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.com/api"]
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=58) < lifetime <= dt.timedelta(hours=1)
    # The requested TTL, from the (backdated) notBefore: 1 h + the role's backdating.
    validity = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    assert abs(validity - (3600 + NOT_BEFORE)) <= 2, validity
    # Signed by this test's root CA, which is also the issuing CA in the Secret.
    assert cert.issuer == pki.ca.subject
    assert _cert(data["issuing_ca"]) == pki.ca
    cert.verify_directly_issued_by(pki.ca)
    # ca.crt is the issuing CA, and its key signed the leaf.
    ca_crt = _cert(data["ca.crt"])
    assert ca_crt == pki.ca
    _verify_signature(cert, ca_crt)

    # tls.crt is the leaf first, then the chain; tls.key is the leaf's private key.
    tls_certs = x509.load_pem_x509_certificates(data["tls.crt"].encode())
    assert tls_certs[0] == cert
    assert pki.ca in tls_certs[1:]
    key = serialization.load_pem_private_key(data["tls.key"].encode(), password=None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    status = pki.status("web-tls")
    assert status["serialNumber"] == data["serial_number"] == _serial_hex(cert)
    assert status["expiration"] == int(cert.not_valid_after_utc.timestamp())
    assert status["secretMAC"].startswith("hmac-sha256:")
    pki.app.wait_event("web-tls", "SecretSynced")
    # The private key never reaches the status.
    assert base64.b64encode(data["private_key"].encode()).decode() not in str(status)


def test_rotation_before_expiry_restarts_rollout_and_revokes_old(pki: PKI) -> None:
    deployment(pki.app, "web")
    pki.vps(
        "short",
        commonName="short.example.com",
        ttl="30s",
        expiryOffset="20s",
        revoke=True,
        rolloutRestartTargets=[{"kind": "Deployment", "name": "web"}],
    )
    first = pki.wait_synced("short")
    assert "tls.crt" not in first
    first_serial = first["serial_number"]
    first_status = pki.status("short")
    first_exp = first_status["expiration"]
    # lastRotation: when the certificate was issued (the leaf's notBefore is backdated).
    first_rotation = first_status["lastRotation"]
    first_cert = _cert(first["certificate"])
    first_issued = int(first_cert.not_valid_before_utc.timestamp()) + NOT_BEFORE
    assert abs(first_rotation - first_issued) <= 5, (first_rotation, first_issued)
    assert restarted_at(pki.app, "web") is None

    def rotated() -> dict[str, str] | None:
        data = pki.app.secret_data("short") or {}
        return data if data.get("serial_number") not in (None, first_serial) else None

    second = wait_for(rotated, 60, "a new certificate before expiry")
    new_cert = _cert(second["certificate"])
    assert int(new_cert.not_valid_after_utc.timestamp()) > first_exp
    new_issued = int(new_cert.not_valid_before_utc.timestamp()) + NOT_BEFORE

    def rotation_recorded() -> int | None:
        value = pki.status("short").get("lastRotation")
        return value if isinstance(value, int) and value > first_rotation else None

    last_rotation = wait_for(rotation_recorded, 10, "lastRotation of the new certificate")
    assert abs(last_rotation - new_issued) <= 5, (last_rotation, new_issued)
    # Due at expiration - 20 s = ~10 s after issue, jittered early: judged on the times the
    # operator recorded, not on when this test happened to look. Never before the early window
    # (2 s, a fifth of the 10 s period; whole seconds), and long before the old one expired.
    assert last_rotation >= first_exp - 20 - 2 - 1, (last_rotation, first_exp)
    assert last_rotation < first_exp, (last_rotation, first_exp)
    assert pki.status("short")["serialNumber"] == second["serial_number"]
    wait_for(lambda: restarted_at(pki.app, "web"), 10, "rollout restart")
    pki.app.wait_event("short", "SecretRotated")
    # revoke: true revokes the certificate that was replaced.
    wait_for(lambda: pki.revocation_time(first_serial) > 0, 10, "old certificate revoked")
    assert pki.revocation_time(second["serial_number"]) == 0
    # The revoked serial is in the CA's CRL; the current one is not.
    crl = pki.crl()
    assert crl.is_signature_valid(pki.ca.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(first_cert.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(new_cert.serial_number) is None


def test_spec_change_reissues_and_delete_revokes(pki: PKI) -> None:
    pki.vps("cleanup", commonName="one.example.com", ttl="1h", revoke=True)
    first = pki.wait_synced("cleanup")
    obj = pki.app.get(PLURAL, "cleanup") or {}
    assert "vaultbridge.dev/pki-cleanup" in obj["metadata"].get("finalizers", [])
    status, resp = pki.app.admin.request_patch(  # type: ignore[attr-defined]
        crd_path(PLURAL, pki.app.ns, "cleanup"), {"spec": {"commonName": "two.example.com"}}
    )
    assert status == 200, dump(resp)

    def reissued() -> dict[str, str] | None:
        data = pki.app.secret_data("cleanup") or {}
        return data if data.get("serial_number") not in (None, first["serial_number"]) else None

    second = wait_for(reissued, 20, "a certificate for the new common name")
    cn = _cert(second["certificate"]).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
    assert cn.value == "two.example.com"

    pki.app.admin.request("DELETE", crd_path(PLURAL, pki.app.ns, "cleanup"))
    wait_for(lambda: pki.app.get(PLURAL, "cleanup") is None, 20, "object deleted")
    assert pki.revocation_time(second["serial_number"]) > 0
    crl = pki.crl()
    second_cert = _cert(second["certificate"])
    assert crl.get_revoked_certificate_by_serial_number(second_cert.serial_number) is not None
    wait_for(lambda: pki.app.secret("cleanup") is None, 60, "Secret garbage-collected")


def test_clear_empties_an_existing_secret_on_delete(pki: PKI) -> None:
    status, resp = pki.app.admin.request(
        "POST",
        f"/api/v1/namespaces/{pki.app.ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "theirs"},
            "stringData": {"note": "made by hand"},
        },
    )
    assert status == 201, dump(resp)
    pki.vps(
        "cleared",
        commonName="clear.example.com",
        ttl="1h",
        clear=True,
        destination={"name": "theirs", "create": False},
    )
    pki.app.wait_data("theirs", {"note": "made by hand"})
    pki.app.wait_condition("cleared", "SecretSynced", "True", plural=PLURAL)
    data = pki.app.secret_data("theirs") or {}
    assert data.get("certificate") and data.get("private_key")
    pki.app.admin.request("DELETE", crd_path(PLURAL, pki.app.ns, "cleared"))
    wait_for(lambda: pki.app.get(PLURAL, "cleared") is None, 20, "object deleted")
    secret = pki.app.secret("theirs")
    assert secret is not None, "a Secret the operator did not create is never deleted"
    assert not secret.get("data"), "clear: true empties the data on delete"


def test_der_format_keeps_vault_fields_and_gives_pem_tls_keys(pki: PKI) -> None:
    pki.vps(
        "der-tls",
        commonName="der.example.com",
        ttl="1h",
        format="der",
        destination={"name": "der-tls", "create": True, "type": "kubernetes.io/tls"},
    )
    pki.app.wait_condition("der-tls", "SecretSynced", "True", plural=PLURAL, timeout=30)
    data = pki.app.secret_data("der-tls") or {}
    # certificate / private_key as Vault returned them: base64 DER.
    leaf = x509.load_der_x509_certificate(base64.b64decode(data["certificate"]))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "der.example.com"
    serialization.load_der_private_key(base64.b64decode(data["private_key"]), password=None)
    # tls.crt / tls.key / ca.crt: PEM, the same certificate, its key and the issuing CA.
    tls_certs = x509.load_pem_x509_certificates(data["tls.crt"].encode())
    assert tls_certs[0] == leaf
    assert same_key(data["tls.key"], leaf)
    ca = _cert(data["ca.crt"])
    assert ca == pki.ca
    _verify_signature(leaf, ca)


def test_issuer_ref_issues_from_the_named_issuer_of_a_multi_issuer_mount(pki: PKI) -> None:
    """Two issuers on one mount (OpenBao's multi-issuer PKI): without issuerRef the role's
    (here the mount default, the first root) signs; with issuerRef the named one does, through
    `issuer/<ref>/issue/<role>`, which the Vault policy has to allow."""
    second = pki.bao.must(
        "POST",
        f"{pki.mount}/root/generate/internal",
        {
            "common_name": f"Second root {pki.app.ns}",
            "issuer_name": "second",
            "key_type": "ec",
            "key_bits": 256,
            "ttl": "24h",
        },
    )
    second_ca = x509.load_pem_x509_certificate(second["data"]["certificate"].encode())
    assert second_ca.subject != pki.ca.subject

    # Not yet allowed by the policy: Vault refuses, the object says so.
    pki.vps("by-second", commonName="two.example.com", issuerRef="second")
    cond = pki.app.wait_condition(
        "by-second", "SecretSynced", "False", "VaultPermissionDenied", plural=PLURAL, timeout=60
    )
    assert f"{pki.mount}/issuer/second/issue/web" in cond["message"], cond

    policy = f"""
path "{pki.mount}/issue/web" {{ capabilities = ["update"] }}
path "{pki.mount}/issuer/second/issue/web" {{ capabilities = ["update"] }}
path "{pki.mount}/revoke" {{ capabilities = ["update"] }}
"""
    pki.bao.must("PUT", f"sys/policies/acl/{pki.app.vault.role}", {"policy": policy})
    pki.vps("by-default", commonName="one.example.com")
    default_cert = _cert(pki.wait_synced("by-default", timeout=60)["certificate"])
    assert default_cert.issuer == pki.ca.subject

    # The refusal is retried on its backoff; the policy now allows the issuer's path.
    data = pki.wait_synced("by-second", timeout=120)
    cert = _cert(data["certificate"])
    assert cert.issuer == second_ca.subject
    assert _cert(data["issuing_ca"]).subject == second_ca.subject
    cert.verify_directly_issued_by(second_ca)

    # An issuerRef that would change the request path is refused at admission.
    body = {
        "apiVersion": "vaultbridge.dev/v1beta1",
        "kind": "VaultPKISecret",
        "metadata": {"name": "bad-issuer", "namespace": pki.app.ns},
        "spec": {
            "mount": pki.mount,
            "role": "web",
            "issuerRef": "../issue",
            "destination": {"name": "bad-issuer", "create": True},
        },
    }
    status, resp = pki.app.admin.request("POST", crd_path(PLURAL, pki.app.ns), body)
    assert status == 422, dump(resp)
    assert "spec.issuerRef" in resp["message"]
