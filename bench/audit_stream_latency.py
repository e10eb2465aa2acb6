"""Does the UDP socket audit device cost Vault anything when the operator is absent or frozen?

    VAULTBRIDGE_DEV_HOME=... python -m bench.audit_stream_latency [--rounds 5] [--writes 200]

Against the dev environment's OpenBao (file + UDP socket audit devices, devenv/audit_stream.py),
KV writes are timed in three states of the device's receiver, interleaved round by round so
machine noise hits all three alike:

* ``absent``: nothing listens on the port (the kernel answers ICMP port unreachable);
* ``live``: a process reads every datagram;
* ``frozen``: that process is SIGSTOP'ed (its socket buffer fills, the kernel drops the rest).

Prints p50 / p99 / mean latency and the number of failed requests per state.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

from vaultbridge.devenv.environment import load_state

_READER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    s.recvfrom(65536)
"""


def _write(addr: str, token: str, i: int) -> tuple[float, bool]:
    req = urllib.request.Request(
        f"{addr}/v1/secret/data/bench-audit-latency/k{i % 10}",
        data=json.dumps({"data": {"i": i}}).encode(),
        method="POST",
    )
    req.add_header("X-Vault-Token", token)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            ok = resp.status == 200
    except (urllib.error.URLError, OSError):
        ok = False
    return time.perf_counter() - started, ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    state = load_state()
    if state is None or "audit-stream" not in state.ports:
        print("no dev environment with an audit stream: run `vaultbridge dev up`", file=sys.stderr)
        return 2
    port = state.ports["audit-stream"]
    samples: dict[str, list[float]] = {"absent": [], "live": [], "frozen": []}
    failures = dict.fromkeys(samples, 0)
    for _ in range(args.rounds):
        for mode, values in samples.items():
            reader = None
            if mode != "absent":
                reader = subprocess.Popen(
                    [sys.executable, "-c", _READER, str(port)], stdout=subprocess.PIPE
                )
                assert reader.stdout is not None
                reader.stdout.readline()
                if mode == "frozen":
                    os.kill(reader.pid, signal.SIGSTOP)
            try:
                for i in range(args.writes):
                    seconds, ok = _write(state.vault_addr, state.vault_root_token, i)
                    values.append(seconds)
                    failures[mode] += not ok
            finally:
                if reader is not None:
                    os.kill(reader.pid, signal.SIGKILL)
                    reader.wait()
    print(f"{'receiver':<8} {'writes':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for mode, values in samples.items():
        values.sort()
        p99 = values[max(0, int(len(values) * 0.99) - 1)]
        print(
            f"{mode:<8} {len(values):>6} {failures[mode]:>6} "
            f"{statistics.median(values) * 1000:>8.2f} {p99 * 1000:>8.2f} "
            f"{statistics.mean(values) * 1000:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
