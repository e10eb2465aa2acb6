"""`python -m bench.agent`: one measured run of `vaultbridge agent` (docs/performance.md,
"Inject agent").

Against the dev environment (started if needed): a namespace, a ServiceAccount token from a
TokenRequest (audience `vault`), a Vault kubernetes-auth role and one kv-v2 secret. Measures:

- start → files written: `vaultbridge agent --once` from spawn to exit (files are written
  before it exits), best and median wall time of `--runs`, and its CPU time (user + system,
  which a loaded machine does not inflate as much);
- the sidecar's VmRSS after `--settle` seconds, and its CPU time over `--idle` seconds
  (refreshAfter 10 s, so the idle window includes refreshes);
- Vault requests per refresh, from the agent's own log lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vaultbridge.devenv import environment
from vaultbridge.devenv.certs import ensure_pki
from vaultbridge.devenv.kubeapi import KubeAdmin
from vaultbridge.devenv.openbao import BaoAdmin
from vaultbridge.inject.config import AGENT_CONFIG_ENV, AGENT_ROOT_ENV, DEFAULT_TOKEN_PATH

AGENT = [str(Path(sys.executable).parent / "vaultbridge"), "agent"]


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent", description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--settle", type=float, default=30.0)
    p.add_argument("--idle", type=float, default=60.0)
    args = p.parse_args(argv)

    state = environment.up(log=lambda m: print(m, file=sys.stderr))
    admin = KubeAdmin(state.api_url, ensure_pki(state.pki_dir))
    bao = BaoAdmin(state.vault_addr, state.vault_root_token)
    ns = f"agent-bench-{secrets.token_hex(3)}"
    admin.ensure("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": ns}})  # fmt: skip
    for _ in range(100):
        if admin.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200:
            break
        time.sleep(0.1)
    role = f"role-{ns}"
    bao.must("PUT", f"sys/policies/acl/{role}",
             {"policy": f'path "secret/data/{ns}/*" {{ capabilities = ["read"] }}'})  # fmt: skip
    bao.must("POST", f"auth/kubernetes/role/{role}", {
        "bound_service_account_names": ["default"], "bound_service_account_namespaces": [ns],
        "audience": "vault", "token_policies": [role], "token_ttl": "1h"})  # fmt: skip
    bao.must("POST", f"secret/data/{ns}/app", {"data": {"username": "u", "password": "p"}})
    _, token = admin.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"audiences": ["vault"], "expirationSeconds": 3600}},
    )  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="vb-agent-bench-"))
    token_file = root / DEFAULT_TOKEN_PATH.lstrip("/")
    token_file.parent.mkdir(parents=True)
    token_file.write_text(token["status"]["token"])
    obj = {
        "name": "app",
        "kind": "VaultStaticSecret",
        "spec": {"mount": "secret", "type": "kv-v2", "path": f"{ns}/app", "refreshAfter": "10s",
                 "destination": {"name": "app"}},
        "vault": {"address": state.vault_addr},
        "login": {"method": "kubernetes", "mount": "kubernetes", "role": role},
        "file": {"directory": "/vault/secrets/app"},
    }  # fmt: skip
    env = dict(
        os.environ,
        **{
            AGENT_CONFIG_ENV: json.dumps({"version": 1, "namespace": ns, "objects": [obj]}),
            AGENT_ROOT_ENV: str(root),
        },
    )

    starts = []
    cpus = []
    for _ in range(args.runs):
        for f in (root / "vault/secrets/app").glob("*"):
            f.unlink()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        subprocess.run([*AGENT, "--once"], env=env, check=True, capture_output=True)
        starts.append(time.monotonic() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        assert (root / "vault/secrets/app/password").read_text() == "p"

    log = root / "sidecar.log"
    with log.open("wb") as out:
        sidecar = subprocess.Popen(AGENT, env=env, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(args.settle)
    rss_kib = _proc_status(sidecar.pid, "VmRSS")
    anon_kib = _proc_status(sidecar.pid, "RssAnon")
    hwm_kib = _proc_status(sidecar.pid, "VmHWM")
    cpu0, t0 = _cpu_seconds(sidecar.pid), time.monotonic()
    time.sleep(args.idle)
    cpu = _cpu_seconds(sidecar.pid) - cpu0
    window = time.monotonic() - t0
    sidecar.send_signal(signal.SIGTERM)
    rc = sidecar.wait(30)
    text = log.read_text()
    per_refresh = [int(n) for n in re.findall(r"(\d+) Vault requests", text)]
    result = {
        "once_seconds_best": round(min(starts), 3),
        "once_seconds_median": round(statistics.median(starts), 3),
        "once_cpu_seconds_median": round(statistics.median(cpus), 3),
        "load_average_1m": os.getloadavg()[0],
        "sidecar_vmrss_mib": round(rss_kib / 1024, 1),
        "sidecar_rssanon_mib": round(anon_kib / 1024, 1),
        "sidecar_vmhwm_mib": round(hwm_kib / 1024, 1),
        "idle_cpu_seconds": round(cpu, 3),
        "idle_window_seconds": round(window, 1),
        "idle_cpu_percent": round(100 * cpu / window, 3),
        "refreshes": len(per_refresh),
        "vault_requests_per_refresh": sorted(set(per_refresh)),
        "sidecar_exit": rc,
    }
    print(json.dumps(result, indent=1))
    admin.request("DELETE", f"/api/v1/namespaces/{ns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
