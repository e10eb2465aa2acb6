"""Which Vault servers the operator may send credentials to (--allowed-vault-addresses).

Pure: the admission webhook and the reconciles ask the same `AddressAllowList`, so a
VaultConnection refused at admission is refused the same way by every reconcile (an object
stored before the list was tightened included).

An entry is `scheme://host[:port][/path]`:
- scheme and host compare case-insensitively, a missing port is the scheme's default (so
  `https://vault.example` and `https://vault.example:443` are the same entry);
- `*.` as the first label of the host matches exactly one more label in its place
  (`https://*.vault.svc:8200` matches `https://a.vault.svc:8200`, not `https://vault.svc:8200`
  nor `https://a.b.vault.svc:8200`);
- a path restricts the address to that path or below it, segment-wise.
No entries means no restriction (the documented default; `vaultbridge audit` reports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int
    path: str


def _parse(address: str) -> _Origin:
    """Split an address; ValueError for anything that is not an http(s) URL with a host."""
    parts = urlsplit(address.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{address!r}: scheme must be http or https")
    if parts.username or parts.password:
        raise ValueError(f"{address!r}: user information is not allowed")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise ValueError(f"{address!r}: no host")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"{address!r}: {exc}") from None
    path = "/" + "/".join(seg for seg in parts.path.split("/") if seg)
    return _Origin(scheme, host, port, path)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def _path_matches(prefix: str, path: str) -> bool:
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class AddressAllowList:
    entries: tuple[str, ...] = ()
    _parsed: tuple[_Origin, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AddressAllowList:
        """From the flag's comma-separated text; ValueError names a malformed entry."""
        entries = tuple(e.strip() for e in text.split(",") if e.strip())
        return cls(entries, tuple(_parse(e) for e in entries))

    @property
    def restricted(self) -> bool:
        return bool(self.entries)

    def allows(self, address: str) -> bool:
        if not self.entries:
            return True
        try:
            target = _parse(address)
        except ValueError:
            return False
        return any(
            e.scheme == target.scheme
            and e.port == target.port
            and _host_matches(e.host, target.host)
            and _path_matches(e.path, target.path)
            for e in self._parsed
        )

    def refusal(self, address: str) -> str | None:
        """Why `address` is refused, or None when it is allowed."""
        if self.allows(address):
            return None
        return (
            f"address {address} is not on the operator's list of allowed Vault addresses "
            f"({', '.join(self.entries)}); the operator sends no credential there "
            "(a platform admin sets --allowed-vault-addresses)"
        )
