"""Certificates as Vault's PKI engine returns them, turned into the keys of a Secret.

Pure functions (no I/O): PEM/DER handling and the `kubernetes.io/tls` keys, used by the
VaultPKISecret reconciler. Values are never part of an error message: they may be keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

TLS_TYPE = "kubernetes.io/tls"


def der_to_pem(value: str, label: str) -> str:
    """PEM text of what Vault returns for `format: der`: base64 of the DER, one item.

    Raises ValueError when `value` is not base64 (the message never includes the value: it
    may be a private key).
    """
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"Vault returned a {label} that is not base64 DER") from None
    if not raw:
        raise ValueError(f"Vault returned an empty {label}")
    body = base64.b64encode(raw).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def private_key_label(key_type: str, private_key_format: str) -> str:
    """The PEM label of a DER private key as Vault encodes it.

    Vault writes PKCS#8 when asked (`pkcs8`) and for ed25519 keys, otherwise the key type's
    own structure (PKCS#1 for RSA, SEC 1 for EC), matching the labels of its own PEM output.
    """
    if private_key_format == "pkcs8" or key_type not in ("rsa", "ec"):
        return "PRIVATE KEY"
    return f"{key_type.upper()} PRIVATE KEY"


def _pem_certificates(text: str) -> list[str]:
    """The CERTIFICATE blocks of PEM text (a pem_bundle also holds the private key)."""
    return [
        f"-----BEGIN CERTIFICATE-----{block}-----END CERTIFICATE-----"
        for block in re.findall(
            r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.DOTALL
        )
    ]


def _as_pem(value: str, label: str) -> str:
    """PEM as is; anything else is Vault's base64 DER (`format: der`) and is wrapped."""
    if not value.strip() or "-----BEGIN " in value:
        return value
    return der_to_pem(value, label)


def certificate_fields(
    data: dict[str, Any], secret_type: str, *, key_format: str = ""
) -> dict[str, Any]:
    """The Secret keys of an issue response; for kubernetes.io/tls also `tls.crt`, `tls.key`
    and `ca.crt`, always PEM (what the Secret type requires) even when Vault returned DER
    (`format: der`). The Vault fields themselves are kept as Vault returned them.
    """
    chain_raw = data.get("ca_chain")
    chain = [str(c) for c in chain_raw] if isinstance(chain_raw, list) else []
    certificate = str(data.get("certificate") or "")
    fields: dict[str, Any] = {
        "certificate": certificate,
        "private_key": str(data.get("private_key") or ""),
        "private_key_type": str(data.get("private_key_type") or ""),
        "issuing_ca": str(data.get("issuing_ca") or ""),
        "ca_chain": "\n".join(chain),
        "serial_number": str(data.get("serial_number") or ""),
        "expiration": data.get("expiration"),
    }
    if secret_type == TLS_TYPE:
        # Servers present the leaf followed by its chain; a root listed in the chain is
        # harmless for clients and needed by some that do not have it. Only certificate
        # blocks: a pem_bundle's `certificate` also carries the private key.
        bundle = _pem_certificates(_as_pem(certificate, "CERTIFICATE"))
        for text in chain:
            for pem in _pem_certificates(_as_pem(text, "CERTIFICATE")):
                if pem.strip() not in (b.strip() for b in bundle):
                    bundle.append(pem)
        fields["tls.crt"] = "\n".join(b.strip() for b in bundle) + "\n" if bundle else ""
        label = private_key_label(fields["private_key_type"], key_format)
        fields["tls.key"] = _as_pem(fields["private_key"], label)
        ca_blocks = _pem_certificates(_as_pem(fields["issuing_ca"], "CERTIFICATE"))
        fields["ca.crt"] = "\n".join(b.strip() for b in ca_blocks) + "\n" if ca_blocks else ""
    return fields
