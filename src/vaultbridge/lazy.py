"""Lazy package exports (PEP 562) for `vaultbridge.api` and `vaultbridge.secrets`: a name is
imported from its module when first used, so that importing one module of the package (as
`vaultbridge agent` does) does not load every other one. Imports nothing of vaultbridge."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `name` from the module `where[name]` (and caching it
    in the package's `namespace`)."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
