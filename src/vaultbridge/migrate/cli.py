"""`vaultbridge migrate`: VSO manifests (or a live cluster's VSO objects) in, vaultbridge out.

stdout (or `--out DIR`) receives the manifests, stderr the report. With `--adopt-secrets` it
converts nothing and instead hands VSO's Secrets to the applied vaultbridge objects (see
`takeover`). Exit codes: 0 = every object
converted or passed through; 1 = at least one could not be converted (the report says why);
2 = cannot run (no Kubernetes configuration, API server unreachable, output not writable).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from vaultbridge.api.auth_global import GlobalKey

from . import vso
from .convert import Options, Outcome, convert_document, failed
from .inputs import Document, read_inputs
from .report import EXIT_CANNOT_RUN, exit_code, render_json, render_table


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        help="VSO manifests: files, directories (their .yaml/.yml/.json files) or - for stdin",
    )
    parser.add_argument(
        "--from-cluster",
        action="store_true",
        help="read the secrets.hashicorp.com objects of the cluster in the kubeconfig",
    )
    parser.add_argument(
        "--adopt-secrets",
        action="store_true",
        help="after applying the converted objects (VSO scaled to zero): move the ownership of "
        "the Secrets VSO created to them, data untouched",
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="with --from-cluster or --adopt-secrets: only these namespaces (repeatable; "
        "default: all)",
    )
    parser.add_argument(
        "--out",
        help="write one manifest file per object into this directory instead of stdout",
    )
    parser.add_argument(
        "--report-format",
        choices=("table", "json"),
        default="table",
        help="format of the report written to stderr",
    )
    parser.add_argument(
        "--vso-namespace",
        default="vault-secrets-operator-system",
        help="namespace VSO ran in: its VaultConnections and VaultAuths move to "
        "--operator-namespace; `default` VaultAuthGlobals are also looked up there",
    )
    parser.add_argument(
        "--operator-namespace",
        default=os.environ.get("VAULTBRIDGE_NAMESPACE", "vaultbridge-system"),
        help="namespace of the vaultbridge operator: VaultConnections and VaultAuths of VSO's "
        "namespace move there [env VAULTBRIDGE_NAMESPACE]",
    )
    parser.add_argument(
        "--hmac-key-secret",
        default=os.environ.get("VAULTBRIDGE_HMAC_KEY_SECRET", "vaultbridge-hmac-key"),
        help="with --adopt-secrets: the operator's HMAC key Secret (in --operator-namespace), "
        "used to carry VSO's leases and certificates over [env VAULTBRIDGE_HMAC_KEY_SECRET]",
    )
    parser.add_argument(
        "--no-adopt",
        action="store_true",
        help="do not annotate converted secret objects with vaultbridge.dev/adopt-from "
        "(their VSO-created Secrets are then not taken over)",
    )


def _global_entry(body: object) -> tuple[GlobalKey, Mapping[str, Any]] | None:
    if (
        isinstance(body, dict)
        and body.get("kind") == "VaultAuthGlobal"
        and body.get("apiVersion") == vso.API_VERSION
        and isinstance(body.get("metadata"), dict)
        and isinstance(body.get("spec") or {}, dict)
    ):
        meta = body["metadata"]
        key = GlobalKey(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        return key, body.get("spec") or {}
    return None


def _identity(body: object) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of a VSO object, to spot the same object given twice."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return None
    if not str(body.get("apiVersion", "")).startswith(vso.GROUP + "/"):
        return None
    meta = body["metadata"]
    if not meta.get("name"):
        return None
    return (str(body.get("kind")), str(meta.get("namespace") or ""), str(meta["name"]))


def convert_all(
    documents: Iterable[Document],
    options: Options,
    extra_globals: Iterable[Document] = (),
) -> list[Outcome]:
    """Convert every document. VaultAuthGlobals among them are converted, and the VaultAuths
    that reference them keep the reference; those only in `extra_globals` (looked up, not
    converted, not reported) are inlined into the VaultAuths that reference them. A VSO
    object given twice (same kind, namespace and name) is converted once; the repeat is
    reported as not convertible, since applying both would let the last one win silently."""
    docs = list(documents)
    globals_by_key: dict[GlobalKey, Mapping[str, Any]] = {}
    converted: set[GlobalKey] = set()
    for doc in [*extra_globals, *docs]:
        entry = _global_entry(doc.body)
        if entry is not None:
            globals_by_key[entry[0]] = entry[1]
    for doc in docs:
        entry = _global_entry(doc.body)
        if entry is not None:
            converted.add(entry[0])
    opts = Options(
        operator_namespace=options.operator_namespace,
        target_namespace=options.target_namespace,
        lookup_global=globals_by_key.get,
        converts_global=converted.__contains__,
        adopt=options.adopt,
    )
    outcomes = []
    seen: dict[tuple[str, str, str], str] = {}
    for doc in docs:
        if doc.error is not None:
            outcomes.append(failed(doc.source, "", "", "", doc.error))
            continue
        identity = _identity(doc.body)
        if identity is not None:
            if identity in seen:
                kind, ns, name = identity
                outcomes.append(
                    failed(doc.source, kind, ns, name, f"the same object as {seen[identity]}")
                )
                continue
            seen[identity] = doc.source
        try:
            outcomes.append(convert_document(doc.body, doc.source, opts))
        except Exception as exc:  # one report line per document, never a traceback
            outcomes.append(
                failed(
                    doc.source,
                    "",
                    "",
                    "",
                    f"internal error ({type(exc).__name__}): please "
                    "report it with this object's shape (not its values)",
                )
            )
    return outcomes


async def read_cluster(
    kubeconfig: str | None, context: str | None, namespaces: list[str]
) -> tuple[list[Document], list[Document]]:
    """Every VSO object of the cluster (or of `namespaces`), as documents sourced `cluster`;
    and, when limited to `namespaces`, the VaultAuthGlobals of the other namespaces (a
    VaultAuth may use one in VSO's namespace)."""
    from vaultbridge.kube.client import KubeClient
    from vaultbridge.kube.config import load_config
    from vaultbridge.kube.errors import NotFound
    from vaultbridge.kube.resources import Resource

    config = load_config(kubeconfig, context)
    docs: list[Document] = []
    async with await KubeClient.connect(config, pool_size=4) as kube:
        for kind, plural in vso.PLURALS.items():
            res = Resource(vso.GROUP, vso.VERSION, plural, kind)
            scopes: list[str | None] = list(namespaces) or [None]
            for ns in scopes:
                try:
                    listed = await kube.list(res, ns)
                except NotFound:
                    break  # the CRD is not installed: nothing of this kind
                docs.extend(_documents(plural, listed.items))
        extra: list[Document] = []
        if namespaces:
            res = Resource(
                vso.GROUP, vso.VERSION, vso.PLURALS["VaultAuthGlobal"], "VaultAuthGlobal"
            )
            try:
                listed = await kube.list(res)
            except NotFound:
                pass
            else:
                extra = _documents(res.plural, listed.items)
    return docs, extra


def _documents(plural: str, items: list[dict[str, Any]]) -> list[Document]:
    out = []
    for item in sorted(items, key=_sort_key):
        meta = item.get("metadata") or {}
        out.append(
            Document(f"cluster:{plural}/{meta.get('namespace')}/{meta.get('name')}", body=item)
        )
    return out


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(outcome: Outcome, index: int) -> str:
    parts = [outcome.namespace or "_", outcome.kind or "object", outcome.name or str(index)]
    return "_".join(_UNSAFE.sub("-", p).lower() for p in parts) + ".yaml"


def write_outputs(outcomes: list[Outcome], out_dir: str | None) -> None:
    objects = [(i, o) for i, o in enumerate(outcomes, start=1) if o.output is not None]
    if out_dir is None:
        text = "---\n".join(yaml.safe_dump(o.output, sort_keys=False) for _, o in objects)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for i, o in objects:
        name = _file_name(o, i)
        if name in used:
            name = name.removesuffix(".yaml") + f"-{i}.yaml"
        used.add(name)
        (target / name).write_text(yaml.safe_dump(o.output, sort_keys=False), encoding="utf-8")


async def _adopt(args: argparse.Namespace) -> Any:
    from vaultbridge.kube.client import KubeClient
    from vaultbridge.kube.config import load_config

    from .takeover import adopt_secrets

    config = load_config(args.kubeconfig, args.context)
    async with await KubeClient.connect(config, pool_size=4) as kube:
        return await adopt_secrets(
            kube,
            args.namespace,
            operator_namespace=args.operator_namespace,
            hmac_key_secret=args.hmac_key_secret,
        )


def _run_adopt(args: argparse.Namespace) -> int:
    from vaultbridge.kube.errors import ApiError, KubeConfigError, KubeUnreachable

    if args.inputs or args.from_cluster:
        print("error: --adopt-secrets takes no inputs and no --from-cluster", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        outcomes: list[Outcome] = asyncio.run(_adopt(args))
    except KubeConfigError as exc:
        print(f"error: no usable Kubernetes configuration: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except (KubeUnreachable, ApiError) as exc:
        print(f"error: reading the cluster failed: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    _render(outcomes, args.report_format)
    return exit_code(outcomes)


def _render(outcomes: list[Outcome], report_format: str) -> None:
    if report_format == "json":
        render_json(outcomes, sys.stderr)
    else:
        render_table(outcomes, sys.stderr)


def run_migrate(args: argparse.Namespace) -> int:
    if args.adopt_secrets:
        return _run_adopt(args)
    if not args.inputs and not args.from_cluster:
        print("error: give input files (or - for stdin), or --from-cluster", file=sys.stderr)
        return EXIT_CANNOT_RUN
    documents: list[Document] = list(read_inputs(args.inputs))
    extra_globals: list[Document] = []
    if args.from_cluster:
        from vaultbridge.kube.errors import ApiError, KubeConfigError, KubeUnreachable

        try:
            found, extra_globals = asyncio.run(
                read_cluster(args.kubeconfig, args.context, args.namespace)
            )
            documents += found
        except KubeConfigError as exc:
            print(f"error: no usable Kubernetes configuration: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        except (KubeUnreachable, ApiError) as exc:
            print(f"error: reading the cluster failed: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
    options = Options(
        operator_namespace=args.vso_namespace,
        target_namespace=args.operator_namespace,
        adopt=not args.no_adopt,
    )
    outcomes = convert_all(documents, options, extra_globals)
    try:
        write_outputs(outcomes, args.out)
    except OSError as exc:
        print(f"error: writing the output failed: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    _render(outcomes, args.report_format)
    return exit_code(outcomes)
