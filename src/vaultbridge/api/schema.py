"""pydantic JSON Schema → Kubernetes structural OpenAPI v3 schema.

The API server only accepts *structural* schemas for CRDs: every node has a `type`, no `$ref`,
and no `anyOf`/`oneOf` carrying types. pydantic emits all three (`$defs` for nested models,
`anyOf: [X, null]` for optional fields), so we inline references, collapse optionals to their
non-null branch, and refuse anything we cannot express instead of emitting a schema the API
server would reject at install time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

VALIDATIONS = "x-kubernetes-validations"

# Keywords the API server accepts in a structural schema (JSONSchemaProps), minus the ones
# that are forbidden there (uniqueItems, $ref, ...) or that we never emit.
_PASSTHROUGH = frozenset(
    {
        "description",
        "type",
        "format",
        "default",
        "enum",
        "maximum",
        "minimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "maxProperties",
        "minProperties",
        "multipleOf",
        "nullable",
        VALIDATIONS,
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    }
)
_DROPPED = frozenset({"title", "$defs"})
_EMPTY_DEFAULTS: tuple[Any, ...] = (None, "", [], {})


class SchemaError(ValueError):
    """The model uses a construct that has no structural-schema equivalent."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of a model, with nested models inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _Converter(raw.get("$defs", {})).convert(raw, model.__name__)


class _Converter:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self._defs = defs
        self._stack: list[str] = []

    def _resolve(self, ref: str, path: str) -> dict[str, Any]:
        prefix = "#/$defs/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in self._defs:
            raise SchemaError(f"{path}: unresolvable reference {ref}")
        name = ref[len(prefix) :]
        if name in self._stack:
            # A recursive model cannot be inlined, and structural schemas have no references.
            raise SchemaError(f"{path}: recursive model {name}")
        self._stack.append(name)
        try:
            return self.convert(self._defs[name], path)
        finally:
            self._stack.pop()

    def convert(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        node = dict(node)
        base: dict[str, Any] | None = None
        if "$ref" in node:
            base = self._resolve(node.pop("$ref"), path)
        elif "allOf" in node:
            branches = node.pop("allOf")
            if len(branches) != 1:
                raise SchemaError(f"{path}: allOf with several branches")
            base = self.convert(branches[0], path)
        for union in ("anyOf", "oneOf"):
            if union in node:
                branches = [b for b in node.pop(union) if b != {"type": "null"}]
                if len(branches) != 1:
                    raise SchemaError(f"{path}: unions of several types are not structural")
                base = self.convert(branches[0], path)

        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED:
                continue
            if key == "properties":
                out[key] = {
                    name: self.convert(sub, f"{path}.{name}") for name, sub in value.items()
                }
            elif key == "items":
                out[key] = self.convert(value, f"{path}[]")
            elif key == "additionalProperties":
                if value is True or not isinstance(value, Mapping):
                    if value is not False:
                        raise SchemaError(f"{path}: free-form objects are not supported")
                    continue
                out[key] = self.convert(value, f"{path}{{}}")
            elif key == "propertyNames":
                names = {**out.get("_names", {}), **value}
                out["_names"] = names
            elif key == "patternProperties":
                # pydantic's spelling of a map whose keys carry a pattern.
                if len(value) != 1:
                    raise SchemaError(f"{path}: several key patterns")
                ((pattern, sub),) = value.items()
                out["_names"] = {**out.get("_names", {}), "pattern": pattern}
                out["additionalProperties"] = self.convert(sub, f"{path}{{}}")
            elif key == "required":
                out[key] = sorted(value)
            elif key == "const":
                out["enum"] = [value]
            elif key == "default":
                if not any(
                    value == empty and type(value) is type(empty) for empty in _EMPTY_DEFAULTS
                ):
                    out[key] = value
            elif key == "description":
                out[key] = clean_description(value)
            elif key in _PASSTHROUGH:
                out[key] = value
            else:
                raise SchemaError(f"{path}: keyword {key!r} is not allowed in a structural schema")

        if "_names" in out:
            out.setdefault(VALIDATIONS, []).extend(_key_rules(out.pop("_names"), path))
        if base is not None:
            # The referring site (a field) wins over the referenced model for description and
            # default; CEL rules of both apply.
            rules = base.get(VALIDATIONS, []) + out.get(VALIDATIONS, [])
            out = {**base, **out}
            if rules:
                out[VALIDATIONS] = rules
        if "type" not in out:
            out["type"] = _infer_type(out, path)
        if out.get("required") == []:
            del out["required"]
        return out


def clean_description(text: str) -> str:
    """Docstrings wrap at the source's line width; `kubectl explain` wraps on its own.

    Single line breaks become spaces; blank lines still separate paragraphs.
    """
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _infer_type(node: Mapping[str, Any], path: str) -> str:
    values = node.get("enum")
    if values and all(isinstance(v, str) for v in values):
        return "string"
    raise SchemaError(f"{path}: no type")


def _cel_string(value: str) -> str:
    if "'" in value or "\n" in value:
        raise SchemaError(f"cannot quote {value!r} as a CEL raw string")
    return f"r'{value}'"


def _key_rules(names: Mapping[str, Any], path: str) -> list[dict[str, str]]:
    """CEL rule checking map keys: OpenAPI has `propertyNames`, structural schemas do not."""
    unknown = set(names) - {"maxLength", "minLength", "pattern", "type", "title"}
    if unknown:
        raise SchemaError(f"{path}: unsupported propertyNames keywords {sorted(unknown)}")
    checks: list[str] = []
    words: list[str] = []
    pattern = names.get("pattern")
    if pattern is not None:
        checks.append(f"k.matches({_cel_string(pattern)})")
        words.append(f"match {pattern}")
    min_length = int(names.get("minLength", 0))
    # A pattern that cannot match "" already implies a minimum length of one.
    if min_length > 1 or (min_length == 1 and (pattern is None or re.search(pattern, ""))):
        checks.append(f"size(k) >= {min_length}")
        words.append(f"be at least {min_length} characters long")
    if "maxLength" in names:
        checks.append(f"size(k) <= {int(names['maxLength'])}")
        words.append(f"be at most {int(names['maxLength'])} characters long")
    if not checks:
        return []
    return [
        {
            "rule": f"self.all(k, {' && '.join(checks)})",
            "message": "keys must " + " and ".join(words),
        }
    ]


# --- checks -----------------------------------------------------------------------------------


def iter_nodes(
    schema: Mapping[str, Any], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with a readable path, depth first."""
    yield path or ".", schema
    for name, sub in schema.get("properties", {}).items():
        yield from iter_nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from iter_nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from iter_nodes(schema["additionalProperties"], f"{path}{{}}")


def structural_problems(schema: Mapping[str, Any], *, need_descriptions: bool = True) -> list[str]:
    """What keeps a schema from being structural (and documented); empty when all is well."""
    problems = []
    for path, node in iter_nodes(schema):
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "not", "uniqueItems", "$defs"):
            if forbidden in node:
                problems.append(f"{path}: has {forbidden}")
        if "type" not in node and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{path}: has no type")
        is_property = path != "." and not path.endswith(("[]", "{}"))
        if need_descriptions and is_property and not node.get("description"):
            problems.append(f"{path}: has no description")
        if node.get("type") == "object" and "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: both properties and additionalProperties")
        for name in node.get("required", []):
            if name not in node.get("properties", {}):
                problems.append(f"{path}: requires unknown property {name}")
    return problems
