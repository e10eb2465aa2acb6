"""`vaultbridge audit`: arguments, collection, rendering and the exit code.

Exit codes: 0 = done (and nothing at or above `--fail-on`), 1 = findings at or above
`--fail-on`, 2 = cannot run (no Vault address or token, no Kubernetes configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from vaultbridge.guard.addresses import AddressAllowList

from .analyse import DEFAULT_ENVIRONMENTS, DEFAULT_MAX_READERS, analyse
from .model import SEVERITIES, Inventory, Report


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--vault-addr",
        default=os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR"),
        help="Vault / OpenBao address [env VAULT_ADDR or BAO_ADDR]",
    )
    parser.add_argument(
        "--vault-token-file",
        help="file holding a read-only Vault token (default: env VAULT_TOKEN or BAO_TOKEN)",
    )
    parser.add_argument("--vault-namespace", help="Vault Enterprise / OpenBao namespace")
    parser.add_argument("--vault-cacert", help="PEM CA bundle for Vault's certificate")
    parser.add_argument(
        "--kubernetes-mount",
        action="append",
        default=[],
        help="Kubernetes auth mount to read roles from (repeatable; default: every mount of "
        "type kubernetes, else `kubernetes`)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="audit only these namespaces (repeatable; default: all)",
    )
    parser.add_argument(
        "--operator-namespace",
        default=os.environ.get("VAULTBRIDGE_NAMESPACE", "vaultbridge-system"),
        help="namespace of the operator (where an empty vaultAuthRef points)",
    )
    parser.add_argument(
        "--environments",
        default=",".join(DEFAULT_ENVIRONMENTS),
        help="comma-separated environment words recognised in namespace names and Vault paths",
    )
    parser.add_argument(
        "--max-readers",
        type=int,
        default=DEFAULT_MAX_READERS,
        help="report a synced Secret readable (RBAC) by more non-system subjects than this",
    )
    parser.add_argument(
        "--allowed-vault-addresses",
        default=os.environ.get("VAULTBRIDGE_ALLOWED_VAULT_ADDRESSES", ""),
        help="the operator's --allowed-vault-addresses: report VaultConnections outside it "
        "[env VAULTBRIDGE_ALLOWED_VAULT_ADDRESSES]",
    )
    parser.add_argument("-o", "--output", choices=("table", "json", "html"), default="table")
    parser.add_argument("--out", help="write the report to this file instead of stdout")
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        help="exit 1 when a finding has this severity or a higher one",
    )


def _token(args: argparse.Namespace) -> str | None:
    if args.vault_token_file:
        return Path(args.vault_token_file).read_text(encoding="utf-8").strip() or None
    return os.environ.get("VAULT_TOKEN") or os.environ.get("BAO_TOKEN") or None


async def collect(args: argparse.Namespace, token: str, ca: bytes | None) -> Inventory:
    # Imported here: `vaultbridge --help` should not pay for aiohttp and the clients.
    from vaultbridge.kube.client import KubeClient
    from vaultbridge.kube.config import load_config
    from vaultbridge.vault.client import VaultClient
    from vaultbridge.vault.connection import ConnectionSettings, Transport

    from .collect import collect_cluster, collect_vault

    inv = Inventory()
    config = load_config(args.kubeconfig, args.context)
    settings = ConnectionSettings(address=args.vault_addr, ca_pem=ca)
    async with await KubeClient.create(config) as kube, Transport() as transport:
        vault = VaultClient(transport, settings, token=token, namespace=args.vault_namespace)
        await asyncio.gather(
            collect_cluster(kube, inv, args.operator_namespace),
            collect_vault(vault, inv, args.kubernetes_mount or None),
        )
    return inv


def build_report(args: argparse.Namespace, inv: Inventory) -> Report:
    envs = tuple(e.strip() for e in args.environments.split(",") if e.strip())
    return analyse(
        inv,
        args.namespace or None,
        environments=envs,
        max_readers=args.max_readers,
        allowed_addresses=AddressAllowList.parse(args.allowed_vault_addresses or ""),
    )


def run_audit(args: argparse.Namespace) -> int:
    if not args.vault_addr:
        print("error: no Vault address: --vault-addr or VAULT_ADDR", file=sys.stderr)
        return 2
    token = _token(args)
    if not token:
        print("error: no Vault token: VAULT_TOKEN or --vault-token-file", file=sys.stderr)
        return 2
    from vaultbridge.kube.errors import KubeError

    from .html import render_html
    from .render import render_json, render_table

    try:
        ca = Path(args.vault_cacert).read_bytes() if args.vault_cacert else None
        inv = asyncio.run(collect(args, token, ca))
    except (KubeError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = build_report(args, inv)
    if args.output == "json":
        text = render_json(report)
    elif args.output == "html":
        text = render_html(report)
    else:
        text = ""
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            if args.output == "table":
                render_table(report, fh, width=160)
            else:
                fh.write(text)
    elif args.output == "table":
        render_table(report, sys.stdout)
    else:
        sys.stdout.write(text)
    return 1 if report.fails(args.fail_on) else 0
