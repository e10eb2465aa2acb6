"""A Jinja2 sandbox with a work budget, for templates written by tenants of the cluster.

Jinja2's `ImmutableSandboxedEnvironment` already refuses private attributes (`__class__`,
`__globals__`, ...) and mutation of lists and dicts. It does nothing against templates that
simply take forever or eat the memory of the operator, which every other tenant shares:
nested loops, `"x" * 10**9`, `9 ** 9 ** 9`, a string doubled forty times with `~`,
`"{:999999999}".format(1)`, `"x".ljust(10**9)`, `[s] * 100000 | join`. So this environment:

- counts an operation for every loop iteration (the code generator wraps each `for` iterable),
  every call, attribute or item lookup, operator, filter, test and output expression, and
  stops at `RenderLimits.max_operations` and at the wall-clock `timeout_seconds` (checked at
  every operation);
- checks the size of a result *before* building it for everything that can multiply sizes
  (`*`, `**`, `+`, `~`, `%`, `str.format`, `join`, `replace`, `center`, `indent`, `wordwrap`,
  `format`, `batch`, `slice`, `range`) and the printable size of containers before they are
  turned into text;
- accounts every string or list produced (`max_work`) so that many medium values add up;
- allows only a short list of methods on built-in types (no `ljust`, `zfill`, `to_bytes`...);
- raises `SecurityError` at once on unsafe attribute access instead of returning an undefined
  value that might silently render as "";
- exposes only `range`, `dict`, `namespace` and the helpers of `template_helpers`, and the
  built-in filters that are deterministic and not HTML-specific (no `random`, `urlize`,
  `xmlattr`; no `lipsum`, `cycler`, `joiner`).

No loader except the source templates is ever set, so templates cannot read files.
"""

from __future__ import annotations

import functools
import re
import string
import textwrap
import threading
import time
from collections import OrderedDict
from collections.abc import (
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MappingView,
    MutableMapping,
)
from types import CodeType
from typing import Any, cast

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS as DEFAULT_TESTS
from jinja2.utils import Namespace

from vaultbridge.secrets import template_helpers
from vaultbridge.secrets.limits import DEFAULT_LIMITS, RenderLimits


class BudgetExceeded(SecurityError):
    """A template went over one of its `RenderLimits`."""


class Budget:
    """Operation, size and time accounting for one render call."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.operations = 0
        self.work = 0
        self.deadline = time.monotonic() + limits.timeout_seconds

    def tick(self) -> None:
        self.operations += 1
        if self.operations > self.limits.max_operations:
            raise BudgetExceeded(
                f"the templates exceeded {self.limits.max_operations} operations "
                "(loop iterations, calls, lookups, operators)"
            )
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"the templates took longer than {self.limits.timeout_seconds:g}s to render"
            )

    def check_chars(self, size: int) -> None:
        if size > self.limits.max_string_chars:
            raise BudgetExceeded(
                f"a value of about {size} characters would exceed the limit of "
                f"{self.limits.max_string_chars}"
            )

    def check_items(self, count: int) -> None:
        if count > self.limits.max_items:
            raise BudgetExceeded(
                f"a sequence of {count} items would exceed the limit of {self.limits.max_items}"
            )

    def check_printable(self, value: Any) -> None:
        """Refuse values whose text form would be too long, before anything stringifies them."""
        if isinstance(value, str | int | float | bool | type(None)):
            return
        self.check_chars(estimate_text_size(value, self.limits.max_string_chars + 1))

    def account(self, value: Any) -> Any:
        """Charge the size of a freshly produced value to the work budget."""
        if isinstance(value, str | bytes):
            self.check_chars(len(value))
            size = len(value)
        elif isinstance(value, list | tuple | dict | set | frozenset):
            self.check_items(len(value))
            size = len(value)
        else:
            return value
        self.work += size
        if self.work > self.limits.max_work:
            raise BudgetExceeded(
                f"the templates produced more than {self.limits.max_work} characters/items in total"
            )
        return value


def estimate_text_size(value: Any, limit: int) -> int:
    """An upper-ish estimate of `len(str(value))`, walked without building it; stops at limit."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 4
        elif isinstance(item, bool) or item is None:
            total += 6
        elif isinstance(item, int):
            total += item.bit_length() * 31 // 100 + 3  # digits, sign and separator
        elif isinstance(item, float):
            total += 26
        elif isinstance(item, Mapping):
            total += 2
            for key, sub in item.items():
                stack.append(key)
                stack.append(sub)
                total += 4
                if total > limit:
                    return total
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total > limit:
                return total
            stack.extend(item)
        elif isinstance(item, MappingView):
            # dict_items([...]) prints its whole content, like the dict itself.
            total += 14
            stack.extend(cast(Iterable[Any], item))
        elif isinstance(item, Namespace):
            total += 14
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        else:
            total += 80
        if total > limit:
            return total
    return total


# Methods that templates may call on built-in values; everything else on these types is
# refused. Each listed method produces at most a small multiple of its inputs, except
# `replace`, `join` and `format`, which `BoundedSandbox.call` / `wrap_str_format` guard.
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "encode", "endswith", "find", "format", "index",
        "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
        "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "lower", "lstrip",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
        "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
        "swapcase", "title", "upper",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (bytes, frozenset({"decode", "hex", "startswith", "endswith", "count", "find"})),
    (bool, frozenset()),
    (int, frozenset({"bit_length"})),
    (float, frozenset({"is_integer"})),
    (dict, frozenset({"get", "items", "keys", "values", "copy"})),
    (list, frozenset({"count", "index", "copy"})),
    (tuple, frozenset({"count", "index"})),
    (
        (set, frozenset),
        frozenset({"difference", "intersection", "isdisjoint", "issubset", "issuperset",
                   "symmetric_difference", "union", "copy"}),
    ),
)  # fmt: skip

# Built-in filters that only pick from or re-wrap a value, in time linear in its length, so
# their arguments need no content-size check. Every other filter stringifies or compares its
# input (sort, unique, min...), and comparing many equal megabyte strings is slow even when
# the list is short enough, so those have their input's content size checked first.
_STRUCTURAL_FILTERS = frozenset(
    {
        "attr", "batch", "count", "d", "default", "first", "items", "last", "length", "list",
        "map", "reverse", "slice", "abs", "float", "int", "round",
    }
)  # fmt: skip
_EXCLUDED_FILTERS = frozenset({"random", "urlize", "xmlattr"})

_PRINTF_SPEC = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?(.|$)")


def template_filename(key: str) -> str:
    """The code filename of a template, which tracebacks carry: it tells errors where they are."""
    return f"<template {key}>"


def source_filename(name: str) -> str:
    return f"<source template {name}>"


class _CodeCache:
    """Compiled template code shared by all render calls, keyed by source text.

    Compiling is most of the cost of a small render (about 1 ms a template) and secret
    objects are re-rendered on every refresh with the same templates. The generated code does
    not depend on the environment instance (it reads `environment` from its globals), and
    every `BoundedSandbox` has the same filters and settings, so code compiled by one serves
    all. Template text is not secret, and constants folded at compile time come from it alone.
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, str, RenderLimits], CodeType] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, env: BoundedSandbox, source: str, name: str, filename: str) -> CodeType:
        # Limits are part of the key: constant folding at compile time runs under them.
        key = (source, name, filename, env.budget.limits)
        with self._lock:
            code = self._entries.get(key)
            if code is not None:
                self._entries.move_to_end(key)
                return code
        code = env.compile(source, name, filename)
        with self._lock:
            self._entries[key] = code
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return code


CODE_CACHE = _CodeCache()


class _SourceTemplateLoader(BaseLoader):
    """Serves the named source templates and nothing else."""

    def __init__(self, templates: Mapping[str, str]) -> None:
        self._templates = dict(templates)

    def load(
        self,
        environment: Environment,
        name: str,
        globals: MutableMapping[str, Any] | None = None,
    ) -> Template:
        if not isinstance(environment, BoundedSandbox):
            raise TypeError("source templates load only into a BoundedSandbox")
        source, filename, _uptodate = self.get_source(environment, name)
        code = CODE_CACHE.get(environment, source, name, filename or source_filename(name))
        return environment.template_class.from_code(environment, code, globals or {})

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self._templates:
            raise TemplateNotFound(template)
        return self._templates[template], source_filename(template), lambda: True


class _BudgetCodeGenerator(CodeGenerator):
    """Adds budget hooks where the stock code generator emits plain Python."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Every iteration of every loop (filtered or not) passes through `vb_iter`.
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("vb_iter"), [node.iter], [], None, None, lineno=node.lineno
        )
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `a ~ b` is not an interceptable operator; route it through a size check.
        self.write("environment.vb_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("), context.eval_ctx)")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """One environment per render call: it carries that call's `Budget`."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(
        self,
        budget: Budget,
        source_templates: Mapping[str, str] | None = None,
    ) -> None:
        self.budget = budget
        loader = _SourceTemplateLoader(source_templates or {})
        super().__init__(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=self._finalize,
            auto_reload=False,
            cache_size=0,
            extensions=["jinja2.ext.loopcontrols"],
        )
        self.filters = self._build_filters()
        tests: Mapping[str, Any] = DEFAULT_TESTS
        self.tests = {name: self._ticking(func) for name, func in tests.items()}
        self.globals = {
            "range": self._ticking(self._range),
            "dict": self._ticking(_make_dict),
            "namespace": self._ticking(_make_namespace),
            **{
                name: self._wrap_filter(func, check_args=True)
                for name, func in template_helpers.GLOBALS.items()
            },
        }

    # -- wrappers -------------------------------------------------------------------------

    def _ticking(self, func: Callable[..., Any]) -> Callable[..., Any]:
        budget = self.budget

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            budget.tick()
            return func(*args, **kwargs)

        return _keep_pass_arg(wrapper, func)

    def _wrap_filter(self, func: Callable[..., Any], *, check_args: bool) -> Callable[..., Any]:
        """Tick, refuse oversized printable arguments, account the result."""
        budget = self.budget

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            budget.tick()
            if check_args:
                for arg in (*args, *kwargs.values()):
                    if not isinstance(arg, Context | EvalContext | Environment):
                        budget.check_printable(arg)
            return budget.account(func(*args, **kwargs))

        return _keep_pass_arg(wrapper, func)

    def _build_filters(self) -> dict[str, Callable[..., Any]]:
        builtin: dict[str, Callable[..., Any]] = {
            name: func for name, func in DEFAULT_FILTERS.items() if name not in _EXCLUDED_FILTERS
        }
        builtin.update(
            {
                "center": self._center,
                "indent": self._indent,
                "format": self._format,
                "replace": self._replace_filter,
                "join": self._join_filter,
                "batch": self._batch,
                "slice": self._slice,
                "wordwrap": self._wordwrap,
                "sum": self._sum,
            }
        )
        builtin.update(template_helpers.FILTERS)
        return {
            name: self._wrap_filter(func, check_args=name not in _STRUCTURAL_FILTERS)
            for name, func in builtin.items()
        }

    # -- hooks called by the generated code ------------------------------------------------

    def _finalize(self, value: Any) -> Any:
        self.budget.tick()
        self.budget.check_printable(value)
        if isinstance(value, str):
            self.budget.account(value)
        return value

    def vb_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        tick = self.budget.tick
        for item in iterable:
            tick()
            yield item

    def vb_concat(self, parts: tuple[Any, ...], eval_ctx: EvalContext) -> str:
        budget = self.budget
        budget.tick()
        size = 0
        for part in parts:
            size += (
                len(part)
                if isinstance(part, str)
                else estimate_text_size(part, budget.limits.max_string_chars + 1)
            )
            budget.check_chars(size)
        joined = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
        return str(budget.account(joined))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = self.budget
        budget.tick()
        if operator == "*":
            self._check_multiply(left, right)
        elif operator == "**":
            self._check_power(left, right)
        elif operator == "+":
            self._check_add(left, right)
        elif operator == "%" and isinstance(left, str):
            self._check_printf(left, right)
        return budget.account(self.binop_table[operator](left, right))

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        self.budget.tick()
        return self.unop_table[operator](arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.budget.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.budget.tick()
        value = super().getitem(obj, argument)
        if isinstance(argument, slice):
            self.budget.account(value)
        return value

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.budget.tick()
        guarded = self._guarded_method(obj)
        result = super().call(context, guarded or obj, *args, **kwargs)
        return self.budget.account(result)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        for types, allowed in _ALLOWED_ATTRIBUTES:
            if isinstance(obj, types):
                return attr in allowed
        return True

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Fail loudly: an undefined value might render as "" and hide the attempt.
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__} value is not allowed"
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        def guarded(*args: Any, **kwargs: Any) -> str:
            self.budget.tick()
            named = args[0] if is_map and args else kwargs
            self._check_brace_format(template, () if is_map else args, named)
            return str(self.budget.account(wrapped(*args, **kwargs)))

        return guarded

    # -- size checks ---------------------------------------------------------------------

    def _check_multiply(self, left: Any, right: Any) -> None:
        budget = self.budget
        for seq, factor in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and isinstance(factor, int):
                count = max(factor, 0)
                if isinstance(seq, str | bytes):
                    budget.check_chars(len(seq) * count)
                else:
                    budget.check_items(len(seq) * count)
                    self._check_content(seq, times=count)
                return
        if isinstance(left, int) and isinstance(right, int):
            self._check_bits(abs(left).bit_length() + abs(right).bit_length())

    def _check_content(self, *parts: Any, times: int = 1) -> None:
        """Lists built by operators may not hold more than `max_string_chars` of content:
        `[big] * 100000` is only 100,000 references, but printing, joining, sorting or
        comparing it costs as much as the 100,000 copies."""
        limit = self.budget.limits.max_string_chars
        size = sum(estimate_text_size(part, limit + 1) for part in parts) * max(times, 1)
        self.budget.check_chars(size)

    def _check_power(self, base: Any, exponent: Any) -> None:
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            self._check_bits(abs(base).bit_length() * exponent)

    def _check_bits(self, bits: int) -> None:
        if bits > self.budget.limits.max_int_bits:
            raise BudgetExceeded(
                f"an integer of about {bits} bits would exceed the limit of "
                f"{self.budget.limits.max_int_bits}"
            )

    def _check_add(self, left: Any, right: Any) -> None:
        if isinstance(left, str | bytes) and isinstance(right, str | bytes):
            self.budget.check_chars(len(left) + len(right))
        elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
            self.budget.check_items(len(left) + len(right))
            self._check_content(left, right)

    def _check_width(self, number: str | None) -> int:
        if not number:
            return 0
        if number == "*":
            raise BudgetExceeded("'*' widths are not allowed in format strings")
        if len(number) > 9 or int(number) > self.budget.limits.max_format_width:
            raise BudgetExceeded(
                f"format widths above {self.budget.limits.max_format_width} are not allowed"
            )
        return int(number)

    def _check_printf(self, template: str, values: Any) -> None:
        limit = self.budget.limits.max_string_chars + 1
        total = len(template)
        position = 0
        for match in _PRINTF_SPEC.finditer(template):
            name, width, precision, conversion = match.groups()
            if conversion == "%":
                continue
            total += self._check_width(width) + self._check_width(precision)
            if name is not None and isinstance(values, Mapping):
                arg = values.get(name)
            elif isinstance(values, tuple):
                arg = values[position] if position < len(values) else None
                position += 1
            else:
                arg = values
            total += estimate_text_size(arg, limit)
            self.budget.check_chars(total)

    def _check_brace_format(
        self, template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        limit = self.budget.limits.max_string_chars + 1
        total = len(template)
        auto = 0
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise SecurityError(f"invalid format string: {exc}") from None
        for _literal, field, spec, _conversion in fields:
            if field is None:
                continue
            if spec and "{" in spec:
                raise BudgetExceeded("nested fields in format specifications are not allowed")
            for number in re.findall(r"\d+", spec or ""):
                total += self._check_width(number)
            first = re.split(r"[.\[]", field, maxsplit=1)[0]
            arg: Any
            if first == "":
                arg = args[auto] if auto < len(args) else None
                auto += 1
            elif first.isdigit():
                arg = args[int(first)] if int(first) < len(args) else None
            else:
                arg = kwargs.get(first) if isinstance(kwargs, Mapping) else None
            total += estimate_text_size(arg, limit)
            self.budget.check_chars(total)

    # -- guarded replacements --------------------------------------------------------------

    def _guarded_method(self, obj: Any) -> Callable[..., Any] | None:
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str) and callable(obj):
            name = getattr(obj, "__name__", "")
            if name == "replace":
                return functools.partial(self._replace, owner)
            if name == "join":
                return functools.partial(self._join_strings, owner)
        return None

    def _replace(self, text: str, old: Any, new: Any, count: int = -1) -> str:
        if not isinstance(old, str) or not isinstance(new, str):
            raise TypeError("replace expects text arguments")
        occurrences = len(text) + 1 if old == "" else text.count(old)
        if count >= 0:
            occurrences = min(occurrences, count)
        self.budget.check_chars(len(text) + occurrences * max(len(new) - len(old), 0))
        return text.replace(old, new, count)

    def _join_strings(self, separator: str, items: Iterable[Any]) -> str:
        parts = list(items)
        self.budget.check_items(len(parts))
        size = len(separator) * max(len(parts) - 1, 0)
        for part in parts:
            size += len(part) if isinstance(part, str) else 0
            self.budget.check_chars(size)
        return separator.join(parts)

    def _replace_filter(self, value: Any, old: Any, new: Any, count: int | None = None) -> str:
        return self._replace(str(value), str(old), str(new), -1 if count is None else count)

    def _join_filter(
        self, value: Iterable[Any], d: str = "", attribute: str | int | None = None
    ) -> str:
        items = list(value)
        self.budget.check_items(len(items))
        if attribute is not None:
            items = [self.getitem(item, attribute) for item in items]
        limit = self.budget.limits.max_string_chars + 1
        size = len(d) * max(len(items) - 1, 0)
        texts: list[str] = []
        for item in items:
            size += len(item) if isinstance(item, str) else estimate_text_size(item, limit)
            self.budget.check_chars(size)
            texts.append(item if isinstance(item, str) else str(item))
        return str(d).join(texts)

    def _center(self, value: Any, width: int = 80) -> str:
        self.budget.check_chars(max(width, 0))
        return str(value).center(width)

    def _indent(
        self, value: Any, width: int | str = 4, first: bool = False, blank: bool = False
    ) -> str:
        text = str(value)
        pad = " " * self._check_width(str(width)) if isinstance(width, int) else str(width)
        self.budget.check_chars(len(text) + (text.count("\n") + 1) * len(pad))
        func = DEFAULT_FILTERS["indent"]
        return str(func(text, pad, first, blank))

    def _format(self, value: Any, *args: Any, **kwargs: Any) -> str:
        if args and kwargs:
            raise TypeError("format accepts positional or keyword arguments, not both")
        values: Any = kwargs or args
        self._check_printf(str(value), values)
        return str(str(value) % values)

    def _batch(self, value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
        self.budget.check_items(linecount)
        return DEFAULT_FILTERS["batch"](value, linecount, fill_with)

    def _slice(self, value: Iterable[Any], slices: int, fill_with: Any = None) -> Any:
        self.budget.check_items(slices)
        return DEFAULT_FILTERS["slice"](value, slices, fill_with)

    def _wordwrap(
        self,
        value: Any,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> str:
        text = str(value)
        joiner = "\n" if wrapstring is None else str(wrapstring)
        self.budget.check_chars(len(text) + (len(text) // max(width, 1) + 1) * len(joiner) * 2)
        lines = []
        for paragraph in text.splitlines():
            lines.extend(
                textwrap.wrap(
                    paragraph,
                    width=max(width, 1),
                    expand_tabs=False,
                    replace_whitespace=False,
                    break_long_words=break_long_words,
                    break_on_hyphens=break_on_hyphens,
                )
                or [""]
            )
        return joiner.join(lines)

    def _sum(self, value: Iterable[Any], attribute: str | int | None = None, start: Any = 0) -> Any:
        # Only numbers: summing lists or strings is quadratic and unbounded in size.
        if not isinstance(start, int | float):
            raise TypeError("sum adds numbers only")
        total = start
        for item in value:
            number = self.getitem(item, attribute) if attribute is not None else item
            if not isinstance(number, int | float):
                raise TypeError("sum adds numbers only")
            total += number
        return total

    def _range(self, *args: int) -> range:
        result = range(*args)
        self.budget.check_items(len(result))
        return result


def _keep_pass_arg(wrapper: Callable[..., Any], func: Callable[..., Any]) -> Callable[..., Any]:
    # Jinja2 reads `jinja_pass_arg` to inject the context/environment; `functools.wraps` would
    # copy it too but costs a millisecond per environment for all the filters.
    pass_arg = getattr(func, "jinja_pass_arg", None)
    if pass_arg is not None:
        wrapper.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return wrapper


def _make_dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    return dict(*args, **kwargs)


def _make_namespace(*args: Any, **kwargs: Any) -> Namespace:
    return Namespace(*args, **kwargs)


__all__ = [
    "DEFAULT_LIMITS",
    "BoundedSandbox",
    "Budget",
    "BudgetExceeded",
    "RenderLimits",
    "estimate_text_size",
]
