"""Convert one VSO document into a vaultbridge object, with a verdict the report can show.

Guarantees:
- Pure: no I/O, no clock; the same document always gives the same outcome.
- Nothing is dropped silently: every VSO field is mapped, or its removal is listed as a change,
  or the object is refused with the reason. A field VSO's schema does not have is refused too
  (our models ignore unknown fields, so without this check a typo would vanish).
- Every converted object has passed our own pydantic model of its kind.
- Messages name fields, never their values (a header or param may hold a credential).
- Documents of other API groups pass through untouched.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from vaultbridge.api import API_VERSION, describe_validation_error, kind_info
from vaultbridge.api.auth import VaultAuthSpec
from vaultbridge.api.auth_global import (
    GlobalKey,
    GlobalNotFound,
    GlobalRefError,
    merge_auth,
    resolve_global_ref,
)

from . import vso
from .templates import translate

ADOPT_ANNOTATION = "vaultbridge.dev/adopt-from"
"""Set on converted secret objects: the destination Secret was written by VSO and may be
adopted without rotation. Value: `vso`, or `vso/<uid>` when the VSO object's uid is known."""

SECRET_KINDS = ("VaultStaticSecret", "VaultDynamicSecret", "VaultPKISecret")
_DROPPED_METADATA_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


class Verdict(StrEnum):
    AS_IS = "converted"
    CHANGED = "converted with changes"
    FAILED = "not convertible"
    PASSTHROUGH = "passed through"
    ADOPTED = "adopted"
    """(--adopt-secrets) A VSO-created Secret now belongs to its vaultbridge object."""
    SKIPPED = "skipped"
    """(--adopt-secrets) Nothing to adopt: no such Secret, not VSO's, or already ours."""


@dataclass
class Outcome:
    """What happened to one input document."""

    source: str
    kind: str
    namespace: str
    name: str
    verdict: Verdict
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    output: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is not Verdict.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "result": str(self.verdict),
            "changes": list(self.changes),
            "problems": list(self.problems),
        }


GlobalLookup = Callable[[GlobalKey], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Options:
    operator_namespace: str = "vault-secrets-operator-system"
    """Namespace of VSO (where VSO looked up `default` objects)."""
    target_namespace: str = "vaultbridge-system"
    """Namespace of the vaultbridge operator: VaultConnections and VaultAuths found in VSO's
    namespace move here, since an empty reference now means `default` in this namespace (and
    VSO's namespace goes away with VSO)."""
    lookup_global: GlobalLookup | None = None
    """Spec of a VaultAuthGlobal among the inputs (or read for lookup only), to check the
    merge of a VaultAuth that references it, or to inline it (below)."""
    converts_global: Callable[[GlobalKey], bool] | None = None
    """Whether a VaultAuthGlobal is itself converted in this run (its VaultAuths keep their
    `vaultAuthGlobalRef`). One that is only looked up (outside `-n`, so not converted) is
    inlined into its VaultAuths instead: the fallback that keeps them working."""
    adopt: bool = True
    """Mark converted secret objects for adoption of their VSO-created Secret."""


def failed(source: str, kind: str, namespace: str, name: str, problem: str) -> Outcome:
    return Outcome(source, kind, namespace, name, Verdict.FAILED, problems=[problem])


def convert_document(doc: object, source: str, options: Options | None = None) -> Outcome:
    """Convert one parsed YAML document (see the module docstring for the guarantees)."""
    options = options or Options()
    if not isinstance(doc, dict):
        return failed(source, "", "", "", "not a Kubernetes object (expected a mapping)")
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    raw_meta = doc.get("metadata")
    metadata: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(metadata.get("name") or "")
    namespace = str(metadata.get("namespace") or "")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        return failed(source, str(kind or ""), namespace, name, "missing apiVersion or kind")
    group, _, version = api_version.rpartition("/")
    if group != vso.GROUP:
        return Outcome(source, kind, namespace, name, Verdict.PASSTHROUGH, output=doc)
    if version != vso.VERSION:
        return failed(source, kind, namespace, name, f"unknown VSO API version {version!r}")
    if kind in vso.UNSUPPORTED_KINDS:
        return failed(
            source, kind, namespace, name, f"{kind} is not supported: {vso.UNSUPPORTED_KINDS[kind]}"
        )
    if kind not in vso.SPEC_FIELDS:
        return failed(source, kind, namespace, name, f"unknown VSO kind {kind}")
    if not name:
        return failed(source, kind, namespace, name, "metadata.name is missing")
    spec = doc.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return failed(source, kind, namespace, name, "spec is not a mapping")

    conv = _Conversion(kind=kind, namespace=namespace, name=name, options=options)
    for path in vso.unknown_fields(kind, spec):
        conv.problems.append(f"unknown field {path} (not in VSO's {kind} schema)")
    new_spec = conv.convert(copy.deepcopy(spec))
    if conv.problems:
        return Outcome(source, kind, namespace, name, Verdict.FAILED, conv.changes, conv.problems)
    info = kind_info(kind)
    try:
        model = info.spec_model.model_validate(new_spec)
    except ValidationError as exc:
        return Outcome(
            source,
            kind,
            namespace,
            name,
            Verdict.FAILED,
            conv.changes,
            [f"not valid for vaultbridge: {describe_validation_error(exc)}"],
        )
    ignored = _ignored_fields(new_spec, model.model_dump(by_alias=True, exclude_unset=True))
    if ignored:
        return Outcome(
            source,
            kind,
            namespace,
            name,
            Verdict.FAILED,
            conv.changes,
            [f"{p} is not supported by vaultbridge" for p in ignored],
        )
    out_meta = _metadata(metadata)
    if conv.moves and namespace:
        out_meta["namespace"] = options.target_namespace
    if kind in SECRET_KINDS and options.adopt:
        uid = str(metadata.get("uid") or "")
        out_meta.setdefault("annotations", {})[ADOPT_ANNOTATION] = f"vso/{uid}" if uid else "vso"
    output = {"apiVersion": API_VERSION, "kind": kind, "metadata": out_meta, "spec": new_spec}
    verdict = Verdict.CHANGED if conv.changes else Verdict.AS_IS
    return Outcome(source, kind, namespace, name, verdict, conv.changes, [], output)


def _metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": metadata["name"]}
    if metadata.get("namespace"):
        out["namespace"] = metadata["namespace"]
    labels = metadata.get("labels")
    if isinstance(labels, dict) and labels:
        out["labels"] = dict(labels)
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        kept = {k: v for k, v in annotations.items() if k not in _DROPPED_METADATA_ANNOTATIONS}
        if kept:
            out["annotations"] = kept
    return out


def _ignored_fields(given: object, parsed: object, path: str = "spec") -> list[str]:
    """Paths present in `given` that the model did not take (it ignores unknown fields)."""
    if isinstance(given, dict) and isinstance(parsed, dict):
        out: list[str] = []
        for key, value in given.items():
            if key not in parsed:
                out.append(f"{path}.{key}")
            else:
                out.extend(_ignored_fields(value, parsed[key], f"{path}.{key}"))
        return out
    if isinstance(given, list) and isinstance(parsed, list):
        out = []
        for i, (g, p) in enumerate(zip(given, parsed, strict=False)):
            out.extend(_ignored_fields(g, p, f"{path}[{i}]"))
        return out
    return []


_DAYS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)d$")


@dataclass
class _Conversion:
    kind: str
    namespace: str
    name: str
    options: Options
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def moves(self) -> bool:
        """Whether this object leaves VSO's namespace for the vaultbridge operator's."""
        source, target = self.options.operator_namespace, self.options.target_namespace
        return (
            self.kind in ("VaultConnection", "VaultAuthGlobal", "VaultAuth")
            and self.namespace == source
            and source != target
        )

    def convert(self, spec: dict[str, Any]) -> dict[str, Any]:
        _drop_empty(spec)
        handler = {
            "VaultConnection": self._connection,
            "VaultAuth": self._auth,
            "VaultAuthGlobal": self._auth_global,
            "VaultStaticSecret": self._static,
            "VaultDynamicSecret": self._dynamic,
            "VaultPKISecret": self._pki,
            "SecretTransformation": self._transformation_kind,
        }[self.kind]
        handler(spec)
        self._relocate(spec)
        return spec

    def _relocate(self, spec: dict[str, Any]) -> None:
        """Follow the move of VSO's namespace's VaultConnections and VaultAuths."""
        source, target = self.options.operator_namespace, self.options.target_namespace
        if source == target:
            return
        if self.moves:
            self.changes.append(
                f"moved from namespace {source} (VSO's) to {target} (vaultbridge's): empty "
                "references mean `default` in the operator's namespace"
            )
            implicit_all = self.kind == "VaultAuth" and self.name == "default"
            if implicit_all and not spec.get("allowedNamespaces"):
                spec["allowedNamespaces"] = ["*"]
                self.changes.append(
                    'spec.allowedNamespaces set to ["*"]: VSO lets every namespace use the '
                    "`default` VaultAuth of its own namespace"
                )
        for ref_field in ("vaultAuthRef", "vaultConnectionRef"):
            value = spec.get(ref_field)
            if isinstance(value, str) and value.startswith(source + "/"):
                spec[ref_field] = target + value[len(source) :]
                self.changes.append(f"spec.{ref_field} follows the move to namespace {target}")

    # --- kinds ------------------------------------------------------------------------------

    def _connection(self, spec: dict[str, Any]) -> None:
        pass

    def _auth(self, spec: dict[str, Any]) -> None:
        ref = spec.get("vaultAuthGlobalRef")
        if ref is not None:
            self._global_ref(spec, ref)
            if self.problems:
                return
        method = spec.get("method")
        if method in ("aws", "gcp"):
            self.problems.append(
                f"spec.method {method} is not supported (vaultbridge logs in with kubernetes, "
                "jwt, appRole or token)"
            )
            return
        for unused in ("aws", "gcp"):
            if unused in spec:
                del spec[unused]
                self.changes.append(f"spec.{unused} removed (unused: method is {method})")

    def _auth_global(self, spec: dict[str, Any]) -> None:
        method = spec.get("defaultAuthMethod")
        if method in ("aws", "gcp"):
            self.problems.append(
                f"spec.defaultAuthMethod {method} is not supported (vaultbridge logs in with "
                "kubernetes, jwt, appRole or token)"
            )
            return
        for unused in ("aws", "gcp"):
            if unused in spec:
                del spec[unused]
                self.changes.append(
                    f"spec.{unused} removed (vaultbridge has no {unused} method; a VaultAuth "
                    f"that needs it is reported)"
                )

    def _global_ref(self, spec: dict[str, Any], ref: object) -> None:
        """Keep the reference when the global is converted too (checking the merge when the
        global is known); inline the global when it is only looked up, not converted."""
        if not isinstance(ref, dict):
            self.problems.append("spec.vaultAuthGlobalRef is not a mapping")
            return
        lookup = self.options.lookup_global
        key: GlobalKey | None = None
        merged: dict[str, Any] | None = None
        if lookup is not None:
            try:
                key, global_spec = resolve_global_ref(
                    ref,
                    auth_namespace=self.namespace,
                    operator_namespace=self.options.operator_namespace,
                    lookup=lookup,
                )
                merged = merge_auth(spec, global_spec)
            except GlobalNotFound:
                pass  # reported below as "apply it too"
            except GlobalRefError as exc:
                self.problems.append(f"spec.vaultAuthGlobalRef: {exc}")
                return
        if merged is not None and key is not None:
            if merged.get("method") in ("aws", "gcp"):
                self.problems.append(
                    f"spec.vaultAuthGlobalRef: VaultAuthGlobal {key} gives method "
                    f"{merged['method']}, which vaultbridge does not support"
                )
                return
            converts = self.options.converts_global
            if converts is None or not converts(key):
                spec.clear()
                spec.update(merged)
                _drop_empty(spec)
                self.changes.append(
                    f"settings of VaultAuthGlobal {key} inlined (vaultAuthGlobalRef): the "
                    "global is not among the converted objects"
                )
                return
            self._check_merged(merged, key)
        else:
            self.changes.append(
                "spec.vaultAuthGlobalRef kept: its VaultAuthGlobal is not among the inputs; "
                "convert and apply it too"
            )
        namespace = ref.get("namespace")
        source, target = self.options.operator_namespace, self.options.target_namespace
        if namespace == source and source != target:
            ref["namespace"] = target
            self.changes.append(
                f"spec.vaultAuthGlobalRef.namespace follows the move to namespace {target}"
            )

    def _check_merged(self, merged: dict[str, Any], key: GlobalKey) -> None:
        """The VaultAuth as the operator will use it must be valid (reported now, not at
        the first login)."""
        for unused in ("aws", "gcp"):
            merged.pop(unused, None)
        try:
            VaultAuthSpec.model_validate(merged)
        except ValidationError as exc:
            self.problems.append(
                f"merged with VaultAuthGlobal {key}, not valid for vaultbridge: "
                f"{describe_validation_error(exc)}"
            )

    def _synced(self, spec: dict[str, Any]) -> None:
        dest = spec.get("destination")
        if isinstance(dest, dict):
            transformation = dest.get("transformation")
            if isinstance(transformation, dict):
                self._templates(
                    transformation.get("templates"), "spec.destination.transformation.templates"
                )

    def _static(self, spec: dict[str, Any]) -> None:
        self._synced(spec)
        # syncConfig.instantUpdates has the same name and meaning here (driven by Vault's
        # socket audit device instead of Enterprise event subscriptions); `false` is the
        # default and is dropped.
        sync = spec.get("syncConfig")
        if isinstance(sync, dict) and sync.get("instantUpdates") is False and len(sync) == 1:
            del spec["syncConfig"]
        if spec.get("version") == 0:
            del spec["version"]

    def _dynamic(self, spec: dict[str, Any]) -> None:
        self._synced(spec)

    def _pki(self, spec: dict[str, Any]) -> None:
        self._synced(spec)
        ref_ns = spec.pop("vaultAuthRefNamespace", None)
        if ref_ns:
            ref = spec.get("vaultAuthRef")
            if ref and "/" not in str(ref):
                spec["vaultAuthRef"] = f"{ref_ns}/{ref}"
                self.changes.append("spec.vaultAuthRefNamespace folded into spec.vaultAuthRef")
            else:
                self.changes.append(
                    "spec.vaultAuthRefNamespace removed (VSO ignores it without a bare "
                    "vaultAuthRef)"
                )
        if spec.pop("userIDs", None):
            self.problems.append("spec.userIDs: user ID subject values are not supported yet")
        for key in ("ttl", "expiryOffset"):
            value = spec.get(key)
            if isinstance(value, str):
                m = _DAYS.match(value)
                if m:
                    hours = float(m.group(1)) * 24
                    spec[key] = f"{hours:g}h"
                    self.changes.append(f"spec.{key} converted from days to hours")
        if spec.get("expiryOffset") == "":
            del spec["expiryOffset"]
            self.changes.append(
                "spec.expiryOffset '' (VSO: never rotate) removed: vaultbridge rotates 5m "
                "before expiry by default"
            )

    def _transformation_kind(self, spec: dict[str, Any]) -> None:
        self._templates(spec.get("templates"), "spec.templates")
        sources = spec.get("sourceTemplates")
        if isinstance(sources, list):
            for i, item in enumerate(sources):
                path = f"spec.sourceTemplates[{i}]"
                if isinstance(item, dict):
                    self._template_text(item, path)

    # --- templates --------------------------------------------------------------------------

    def _templates(self, templates: object, path: str) -> None:
        if not isinstance(templates, dict):
            return
        for key, template in templates.items():
            if not isinstance(template, dict):
                continue
            if "name" in template:
                del template["name"]
                self.changes.append(f"{path}.{key}.name removed (informational in VSO)")
            self._template_text(template, f"{path}.{key}")

    def _template_text(self, template: dict[str, Any], path: str) -> None:
        text = template.get("text")
        if not isinstance(text, str):
            return
        result = translate(text)
        if result.text is None:
            self.problems.append(f"{path}.text: Go template not translatable: {result.problem}")
            return
        if result.text != text:
            template["text"] = result.text
            self.changes.append(f"{path}.text translated from Go template to Jinja2")


_FREE_MAPS = frozenset({"labels", "annotations", "headers", "params"})


def _drop_empty(value: object) -> None:
    """Remove keys VSO treats as unset: null and empty strings (Go's omitempty).

    Free-form maps (labels, headers, ...) are left alone: an empty value is a value there.
    """
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None or (v == "" and k != "expiryOffset")]:
            del value[key]
        for key, v in value.items():
            if key not in _FREE_MAPS:
                _drop_empty(v)
    elif isinstance(value, list):
        for v in value:
            _drop_empty(v)
