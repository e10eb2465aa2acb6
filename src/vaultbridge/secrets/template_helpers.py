"""The helper functions templates can use, besides Jinja2's own safe built-ins.

| helper | kind | result |
|---|---|---|
| `b64enc` | filter | base64 (standard alphabet, padded) of text (as UTF-8) or bytes |
| `b64dec` | filter | text (UTF-8) decoded from base64; whitespace, missing padding ok |
| `tojson(indent=None, sort_keys=False)` | filter | JSON text, compact, non-ASCII kept |
| `fromjson` | filter | the value parsed from JSON text |
| `toyaml` | filter | YAML text, block style, keys in their order |
| `dockerconfigjson(registry, username, password, email=None)` | global, filter | see below |
| `pem_blocks(type=None)` | filter | list of the PEM blocks of a bundle (of one type if given) |
| `pem_certificates` | filter | list of the `CERTIFICATE` blocks, in bundle order |
| `pem_private_key` | filter | the first `... PRIVATE KEY` block (PKCS#8, RSA, EC, encrypted) |
| `sha256` | filter | hex SHA-256 of text (as UTF-8) or bytes, e.g. for checksums |

`dockerconfigjson` returns the `.dockerconfigjson` value of a `kubernetes.io/dockerconfigjson`
Secret for one registry: `{"auths": {registry: {"username", "password", "auth", ["email"]}}}`
with `auth` = base64 of `username:password`.

Each PEM block is returned normalised: header, base64 body and footer lines separated by
`\\n` and ending with one `\\n`, so `pem_certificates | join` rebuilds a clean bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from jinja2.runtime import Undefined

_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,64})-----")


def _as_bytes(value: Any, helper: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{helper} expects text, got {type(value).__name__}")


def _as_text(value: Any, helper: str) -> str:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{helper}: the input is not UTF-8 text") from None
    raise TypeError(f"{helper} expects text, got {type(value).__name__}")


def plain(value: Any, depth: int = 0) -> Any:
    """Template values as plain JSON/YAML-able Python values (str subclasses, tuples, ...)."""
    if depth > 100:
        raise ValueError("the value is nested too deeply")
    if isinstance(value, Undefined):
        # Rendering it raises the usual "is undefined" error under StrictUndefined.
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes):
        return _as_text(value, "serialising")
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, depth + 1) for v in value]
    raise TypeError(f"a {type(value).__name__} cannot be serialised")


def b64enc(value: Any) -> str:
    return base64.b64encode(_as_bytes(value, "b64enc")).decode("ascii")


def b64dec(value: Any) -> str:
    compact = b"".join(_as_bytes(value, "b64dec").split())
    compact += b"=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("b64dec: the input is not valid base64") from None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("b64dec: the decoded bytes are not UTF-8 text") from None


def tojson(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    if indent is not None and not 0 <= indent <= 16:
        raise ValueError("tojson: indent must be between 0 and 16")
    return json.dumps(
        plain(value), indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False
    )


def fromjson(value: Any) -> Any:
    try:
        return json.loads(_as_text(value, "fromjson"))
    except json.JSONDecodeError as exc:
        # The position is useful; the message never quotes the document.
        raise ValueError(
            f"fromjson: invalid JSON at line {exc.lineno} column {exc.colno}"
        ) from None


def toyaml(value: Any) -> str:
    return yaml.safe_dump(
        plain(value), default_flow_style=False, sort_keys=False, allow_unicode=True
    )


def dockerconfigjson(registry: Any, username: Any, password: Any, email: Any | None = None) -> str:
    registry_text = _as_text(registry, "dockerconfigjson")
    user = _as_text(username, "dockerconfigjson")
    secret = _as_text(password, "dockerconfigjson")
    if not registry_text:
        raise ValueError("dockerconfigjson: the registry must not be empty")
    entry: dict[str, str] = {
        "username": user,
        "password": secret,
        "auth": base64.b64encode(f"{user}:{secret}".encode()).decode("ascii"),
    }
    if email is not None:
        entry["email"] = _as_text(email, "dockerconfigjson")
    return json.dumps({"auths": {registry_text: entry}}, separators=(",", ":"))


def pem_blocks(
    value: Any, type: str | None = None
) -> list[str]:  # `type`: the template-facing name
    # A line scanner rather than a regex: linear in the input whatever it holds.
    text = _as_text(value, "pem_blocks")
    blocks: list[str] = []
    kind: str | None = None
    body: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        begin = _PEM_BEGIN.fullmatch(line)
        if begin:
            kind, body = begin.group(1), []
        elif kind is not None and line == f"-----END {kind}-----":
            while body and not body[-1]:
                body.pop()
            while body and not body[0]:
                body.pop(0)
            if type is None or kind == type:
                blocks.append(
                    f"-----BEGIN {kind}-----\n"
                    + "".join(f"{part}\n" for part in body)
                    + f"-----END {kind}-----\n"
                )
            kind = None
        elif kind is not None:
            # Blank lines inside are kept: legacy encrypted keys separate headers with one.
            body.append(line)
    return blocks


def pem_certificates(value: Any) -> list[str]:
    return pem_blocks(value, "CERTIFICATE")


def pem_private_key(value: Any) -> str:
    for block in pem_blocks(value):
        if block.split("\n", 1)[0].endswith("PRIVATE KEY-----"):
            return block
    raise ValueError("pem_private_key: no private key block found")


def sha256(value: Any) -> str:
    return hashlib.sha256(_as_bytes(value, "sha256")).hexdigest()


#: Registered as filters (first argument is the piped value).
FILTERS: dict[str, Callable[..., Any]] = {
    "b64enc": b64enc,
    "b64dec": b64dec,
    "tojson": tojson,
    "fromjson": fromjson,
    "toyaml": toyaml,
    "dockerconfigjson": dockerconfigjson,
    "pem_blocks": pem_blocks,
    "pem_certificates": pem_certificates,
    "pem_private_key": pem_private_key,
    "sha256": sha256,
}

#: Registered as global functions.
GLOBALS: dict[str, Callable[..., Any]] = {"dockerconfigjson": dockerconfigjson}
