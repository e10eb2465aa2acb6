"""What the reconcilers watch: the informers they may map events from, and the mappers.

Each reconciler declares its own watches in `setup_with_manager(ctl, sources)`, next to the
code that depends on them (as controller-runtime's `SetupWithManager` does); `operator.py`
only builds the informers and calls it. Mappers resolve references with the same functions
the reconcilers use (`resolve_ref`, `VaultAccess.auth_key_for`), never a copy of the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from vaultbridge.api.auth_global import GlobalKey, GlobalRefError, candidate_keys
from vaultbridge.api.common import resolve_ref
from vaultbridge.api.destination import TransformationRef
from vaultbridge.api.kinds import VAULT_AUTH_GLOBAL
from vaultbridge.engine.controller import Controller, Result
from vaultbridge.engine.informer import Informer
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.engine.queue import Priority
from vaultbridge.kube import objects

from . import inject
from .context import OperatorContext
from .errors import ReconcileProblem
from .path_policy import keys_whose_verdict_changed
from .vault_access import VaultAccess

Obj = dict[str, Any]


@dataclass(frozen=True)
class Sources:
    """The shared informers a reconciler may watch besides its own kind's."""

    ctx: OperatorContext
    access: VaultAccess
    connections: Informer
    auths: Informer
    transformations: Informer
    owned_secrets: Informer
    """Only the Secrets we created (label selector)."""
    path_policies: Informer
    namespaces: Informer
    own: dict[str, Informer]
    """Each kind's own informer, by kind."""
    injected_pods: Informer | None = None
    """Only the pods the inject webhook mutated (label selector; metadata kept only)."""

    def of(self, kind: str) -> Informer:
        return self.own[kind]

    def auth_globals(self) -> Informer:
        return self.own[VAULT_AUTH_GLOBAL.kind]


class SetupReconciler(Protocol):
    """A reconciler that declares its own watches."""

    @property
    def kind(self) -> str: ...

    async def reconcile(self, key: ObjectKey) -> Result: ...

    def setup_with_manager(self, ctl: Controller, sources: Sources) -> None: ...


def refs_to(store_objs: Iterable[Obj], match: Callable[[Obj], bool]) -> list[ObjectKey]:
    return [ObjectKey.of(o) for o in store_objs if match(o)]


def auth_uses_connection(auth: Obj, conn: Obj, access: VaultAccess) -> bool:
    """Whether `auth` logs in through `conn`: its own vaultConnectionRef, else (with a
    vaultAuthGlobalRef) the one the merged spec has."""
    spec = auth.get("spec") or {}
    ref = str(spec.get("vaultConnectionRef") or "")
    if not ref and spec.get("vaultAuthGlobalRef"):
        try:
            merged, _global = access.effective_auth(ObjectKey.of(auth), auth)
        except ReconcileProblem:
            merged = None  # unusable until it changes; its own events bring it back
        if merged is not None:
            ref = merged.vault_connection_ref
    target = resolve_ref(
        ref, own_namespace=objects.namespace(auth), operator_namespace=access.ctx.settings.namespace
    )
    return target == ObjectKey.of(conn)


def auth_uses_global(auth: Obj, global_obj: Obj, operator_namespace: str) -> bool:
    """Whether `auth` references `global_obj` (by name, or as a `default` candidate, so a global
    created later, or deleted, brings back the VaultAuths that could resolve to it)."""
    ref = (auth.get("spec") or {}).get("vaultAuthGlobalRef")
    if not isinstance(ref, dict):
        return False
    try:
        keys = candidate_keys(
            ref, auth_namespace=objects.namespace(auth), operator_namespace=operator_namespace
        )
    except GlobalRefError:
        return False
    target = GlobalKey(objects.namespace(global_obj), objects.name(global_obj))
    return target in keys


def uses_auth(secret_obj: Obj, auth: Obj, access: VaultAccess) -> bool:
    ref = str((secret_obj.get("spec") or {}).get("vaultAuthRef") or "")
    return access.auth_key_for(objects.namespace(secret_obj), ref) == ObjectKey.of(auth)


def objects_using_global(objs: Iterable[Obj], glob: Obj, sources: Sources) -> list[ObjectKey]:
    """The secret objects whose VaultAuth references the VaultAuthGlobal `glob`."""
    operator_ns = sources.ctx.settings.namespace
    auths = [a for a in sources.auths.store.list() if auth_uses_global(a, glob, operator_ns)]
    if not auths:
        return []
    return refs_to(objs, lambda s: any(uses_auth(s, a, sources.access) for a in auths))


def uses_transformation(secret_obj: Obj, tr: Obj) -> bool:
    """Whether `secret_obj` names `tr` in `destination.transformation.transformationRefs`
    (a ref without a namespace means the object's own, as `resolve_transformation` reads it)."""
    spec = secret_obj.get("spec") or {}
    refs = ((spec.get("destination") or {}).get("transformation") or {}).get(
        "transformationRefs"
    ) or []
    ns, target = objects.namespace(secret_obj), ObjectKey.of(tr)
    for raw in refs:
        try:
            if TransformationRef.model_validate(raw).key(ns) == target:
                return True
        except ValidationError:
            continue
    return False


# -- priority rules ----------------------------------------------------------------------------


def label_changes_only(event: str, old: Obj | None, new: Obj) -> Priority | None:
    if event == "MODIFIED" and old is not None and objects.labels(old) == objects.labels(new):
        return None
    return Priority.NORMAL


def changes_and_deletes(event: str, _old: Obj | None, _new: Obj) -> Priority | None:
    return None if event == "ADDED" else Priority.NORMAL


def spec_changes_only(event: str, old: Obj | None, new: Obj) -> Priority | None:
    if (
        event == "MODIFIED"
        and old is not None
        and objects.generation(old) == objects.generation(new)
    ):
        return None
    return Priority.NORMAL


def watch_references(ctl: Controller, sources: Sources, kind: str) -> None:
    """Every object a secret kind's reconcile reads besides its own and its Secrets: a change
    of any of them brings back the objects it concerns, so no reconcile polls for them."""
    own = sources.of(kind)
    ctl.watch(
        sources.auths,
        mapper=lambda auth: refs_to(own.store.list(), lambda s: uses_auth(s, auth, sources.access)),
        priority_fn=spec_changes_only,
    )
    # A VaultAuthGlobal change reaches the objects of the VaultAuths merging it (#16).
    ctl.watch(
        sources.auth_globals(),
        mapper=lambda glob: objects_using_global(own.store.list(), glob, sources),
        priority_fn=spec_changes_only,
    )
    ctl.watch(
        sources.transformations,
        mapper=lambda tr: refs_to(own.store.list(), lambda s: uses_transformation(s, tr)),
        priority_fn=spec_changes_only,
    )
    # A policy change, or a namespace's label change (namespaceSelector), reconciles the
    # objects whose verdict it flips: a few regex matches each, no Vault read for the rest.
    ctl.watch(
        sources.path_policies,
        mapper=lambda _p: keys_whose_verdict_changed(sources.ctx, kind, own.store.list()),
        priority_fn=spec_changes_only,
    )
    ctl.watch(
        sources.namespaces,
        mapper=lambda ns: keys_whose_verdict_changed(
            sources.ctx, kind, own.store.list(objects.name(ns))
        ),
        priority_fn=label_changes_only,
    )
    if sources.injected_pods is not None:
        # Inject: a mutated pod came or went, recount (status.injectedPods).
        ctl.watch(
            sources.injected_pods,
            mapper=lambda pod: inject.pod_keys(kind, pod),
            priority_fn=inject.pods_come_and_go,
        )
