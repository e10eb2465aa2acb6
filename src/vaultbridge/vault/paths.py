"""Local validation of mounts and paths before a request is sent.

The path guard approves a mount and path by prefix; a path such as ``team-a/../team-b`` must not
reach Vault (or a proxy that normalises it) as something the guard never saw. Vault would reject
most of these itself — this is defence in depth, and it fails fast with a clear error.
"""

from __future__ import annotations

from vaultbridge.vault.errors import InvalidPath

_FORBIDDEN_CHARS = frozenset("?#\\") | frozenset(chr(c) for c in range(32)) | {"\x7f"}
_MAX_SHOWN = 120


def validate_path(value: str, *, what: str = "path") -> str:
    """Return ``value`` unchanged if it is a clean relative Vault path, else raise InvalidPath.

    Rejected: empty, a leading ``/``, empty segments (``a//b``, trailing ``/``), ``.`` or
    ``..`` segments, and characters that would change the URL (``?``, ``#``, ``\\``, control).
    """
    if not isinstance(value, str) or not value:
        raise InvalidPath(f"{what} is empty")
    shown = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "…"
    if value.startswith("/"):
        raise InvalidPath(f"{what} must not start with '/'", path=shown)
    if any(ch in _FORBIDDEN_CHARS for ch in value):
        raise InvalidPath(f"{what} contains a forbidden character", path=shown)
    for segment in value.split("/"):
        if segment == "":
            raise InvalidPath(f"{what} has an empty segment", path=shown)
        if segment in (".", ".."):
            raise InvalidPath(f"{what} has a '{segment}' segment", path=shown)
    return value


def join_path(*parts: str) -> str:
    """Validate each part (mount, sub-path, ...) and join them with ``/``."""
    return "/".join(validate_path(p) for p in parts)


def request_path(*parts: str) -> str:
    """The one spelling of a Vault request path built from a spec's parts (mount, sub-path,
    role...): the parts joined with `/`, as written.

    The path-policy check (guard/paths.py) and the requests (`VaultClient.kv_read`, the
    dynamic and PKI reconcilers) all build paths with this function, so the path a policy
    judges is byte for byte the path that is requested. Nothing is normalised here on purpose:
    a spec whose parts carry stray slashes (`secret/` + `/app`) is judged as `secret//app`,
    and the client refuses to send such a path at all (`validate_path`: no empty segment,
    no `..`) — a policy can never approve one spelling while another is requested.
    """
    return "/".join(parts)


def kv_request_path(mount: str, path: str, kv_version: int, kind: str = "data") -> str:
    """The API path of a KV secret: kv-v2 `mount/<kind>/path` (`data`, `metadata`...),
    kv-v1 `mount/path`."""
    if kv_version == 2:
        return request_path(mount, kind, path)
    return request_path(mount, path)
