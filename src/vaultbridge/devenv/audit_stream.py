"""The dev OpenBao's audit devices: a file log, and a UDP socket device for instant updates.

Both are declared in OpenBao's configuration (OpenBao 2.x refuses API-created devices);
HashiCorp Vault gets the same two through `sys/audit` (`vaultserver.VaultAdmin.configure`). The
socket device sends every entry, behind a random per-environment ``prefix`` (OpenBao allows
prefixes only with ``allow_audit_log_prefixing``), to a UDP port chosen when the environment
starts; `vaultbridge dev env` exports the matching ``VAULTBRIDGE_AUDIT_STREAM_*`` variables, so
``vaultbridge run`` in that shell receives the stream with no flags.

Why UDP, and why the file device beside it: OpenBao (like Vault) answers a request only after
at least one audit device took its entry. A UDP send never waits for the receiver and succeeds
whether or not anyone listens, and the file device always succeeds, so a stopped, slow or
absent operator costs OpenBao nothing (measured: docs/operations.md).
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_udp_port() -> int:
    """A free UDP port *below* the ephemeral range.

    OpenBao connects its UDP socket to the port before anyone listens; the kernel gives that
    socket an ephemeral local port, and if it picks the destination port itself the socket is
    connected to itself and holds the port (seen: the operator then fails to bind). A port
    outside the ephemeral range is never handed out that way.
    """
    low = _ephemeral_low()
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randint(max(1024, low - 12000), low - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free UDP port below the ephemeral range")


def new_prefix() -> str:
    """A shared secret the receiver requires before every entry (``--audit-stream-prefix``)."""
    return "vb-" + secrets.token_hex(8) + ":"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def audit_devices_config(path: Path, audit_log: Path, udp_port: int, prefix: str) -> Path:
    """Write an OpenBao config file declaring the file and the UDP socket audit devices."""
    path.write_text(
        "allow_audit_log_prefixing = true\n"
        'audit "file" "file" {\n'
        f"  options {{\n    file_path = {_quote(str(audit_log))}\n  }}\n"
        "}\n"
        'audit "socket" "vaultbridge" {\n'
        '  description = "instant updates for vaultbridge (UDP: never blocks OpenBao)"\n'
        "  options {\n"
        f"    address = {_quote(f'127.0.0.1:{udp_port}')}\n"
        '    socket_type = "udp"\n'
        f"    prefix = {_quote(prefix)}\n"
        "  }\n"
        "}\n"
    )
    path.chmod(0o600)
    return path


def listen_address(udp_port: int) -> str:
    return f"udp://127.0.0.1:{udp_port}"
