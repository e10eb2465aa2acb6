"""Command line: `vaultbridge run | dev up|down|status|env | audit | migrate | agent | version`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def _dev(args: argparse.Namespace) -> int:
    from .devenv import environment
    from .devenv.errors import DevEnvError

    try:
        if args.dev_command == "up":
            state = environment.up(
                audit=args.audit,
                vault_server=args.vault_server,
                log=lambda m: print(m, file=sys.stderr),
            )
            print(f"KUBECONFIG={state.kubeconfig}", file=sys.stderr)
            print(
                'Use it: eval "$(.venv/bin/vaultbridge dev env)"; kubectl get ns', file=sys.stderr
            )
            return 0
        if args.dev_command == "down":
            stopped = environment.down()
            print("stopped: " + (", ".join(stopped) or "nothing was running"))
            return 0
        loaded = environment.load_state()
        if args.dev_command == "status":
            rows = environment.status(loaded)
            for row in rows:
                print(
                    f"{row['component']:<24} {row['state']:<12} "
                    f"port={row.get('port') or '-':<6} version={row.get('version') or '-'}"
                )
            return 0 if all(r["state"] == "running" for r in rows) else 1
        if args.dev_command == "env":
            if loaded is None or not environment.is_running(loaded):
                print(
                    "# the dev environment is not running: run `vaultbridge dev up`",
                    file=sys.stderr,
                )
                return 1
            print("\n".join(environment.env_lines(loaded)))
            return 0
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


def _run(args: argparse.Namespace) -> int:
    from .operator import run_operator
    from .settings import Settings

    return run_operator(Settings.from_args(args))


def _audit(args: argparse.Namespace) -> int:
    from .guard.audit.cli import run_audit

    return run_audit(args)


def _migrate(args: argparse.Namespace) -> int:
    from .migrate.cli import run_migrate

    return run_migrate(args)


def _agent(args: argparse.Namespace) -> int:
    from .agent.main import run_agent

    return run_agent(args)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """`command`: the subcommand about to run, when known. The other subcommands then get no
    arguments, and their modules are not imported: `vaultbridge run` loads neither `migrate`
    nor the audit (nor PyYAML's and their models' memory), `--help` of each still works."""
    parser = argparse.ArgumentParser(
        prog="vaultbridge",
        description="Deliver secrets from HashiCorp Vault / OpenBao into Kubernetes Secrets.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    try:
        from .settings import add_run_arguments
    except ImportError:  # pragma: no cover - settings arrives with the operator
        pass
    else:
        add_run_arguments(run)
    run.set_defaults(func=_run)

    dev = sub.add_parser(
        "dev", help="local control plane + OpenBao or HashiCorp Vault for development and tests"
    )
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    up = dev_sub.add_parser(
        "up",
        help="build (once) and start etcd, kube-apiserver, "
        "kube-controller-manager and a Vault server; reuse them if running",
    )
    up.add_argument(
        "--audit",
        action="store_true",
        help="enable the API server audit log (OpenBao always has file and socket audit devices; "
        "HashiCorp Vault gets a file audit device)",
    )
    up.add_argument(
        "--vault-server",
        choices=("openbao", "hashicorp"),
        default=None,
        help="the Vault server to run: openbao (default, from PyPI) or hashicorp (HashiCorp "
        "Vault Community Edition, built once from its Go module: ~20 min on 2 cores); default: "
        "$VAULTBRIDGE_VAULT_SERVER, else the running environment's, else openbao",
    )
    dev_sub.add_parser("down", help="stop every process `up` started")
    dev_sub.add_parser("status", help="print each component's state, port and version")
    dev_sub.add_parser(
        "env",
        help="print export lines for eval: KUBECONFIG, VAULT_ADDR, "
        "VAULT_TOKEN and PATH with the built kubectl",
    )
    dev.set_defaults(func=_dev)

    audit = sub.add_parser(
        "audit",
        help="report who can read which Vault paths (blast radius) and risky settings",
        description="Read the cluster and Vault with read-only credentials and report, per "
        "namespace and service account, which Vault paths it can read through which role and "
        "policy, with findings (severity and fix).",
    )
    if command in (None, "audit"):
        from .guard.audit.cli import add_audit_arguments

        add_audit_arguments(audit)
    audit.set_defaults(func=_audit)

    migrate = sub.add_parser(
        "migrate",
        help="convert VSO (secrets.hashicorp.com) manifests into vaultbridge manifests",
        description="Convert HashiCorp Vault Secrets Operator objects (files, directories, - for "
        "stdin, or --from-cluster) into vaultbridge objects on stdout or --out DIR; a report of "
        "every object goes to stderr. Exit 1 when anything could not be converted.",
    )
    if command in (None, "migrate"):
        from .migrate.cli import add_migrate_arguments

        add_migrate_arguments(migrate)
    migrate.set_defaults(func=_migrate)

    agent = sub.add_parser(
        "agent",
        help="inject mode's in-pod agent: write secrets from Vault into files",
        description="Log in as the pod's ServiceAccount and write the objects named in "
        "$VAULTBRIDGE_AGENT_CONFIG into files; --once for the init container, otherwise keep "
        "them fresh until SIGTERM (the native sidecar).",
    )
    if command in (None, "agent"):
        from .agent.main import add_arguments as add_agent_arguments

        add_agent_arguments(agent)
    agent.set_defaults(func=_agent)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _a: print(__version__) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["agent"]:
        # The agent runs in every injected pod: skip the operator's parser and its imports.
        from .agent.main import main as agent_main

        return agent_main(words[1:])
    command = words[0] if words and not words[0].startswith("-") else None
    parser = build_parser(command)
    args = parser.parse_args(words)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
