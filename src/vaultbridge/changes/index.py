"""Which objects read which Vault paths: the map from an audited request to the keys to enqueue.

A pure data structure (no I/O, no clock). Guarantees:

* an object is registered with a set of KV secrets (``KVRef``: mount, path, KV version); every
  ``replace`` swaps the whole set, so an edit that drops a source stops matching it at once;
  ``remove`` forgets the object; a multi-source object simply registers several refs;
* ``lookup`` is a dictionary lookup per audited request, whatever the number of objects;
* a request matches only the operations that change what a reader of the secret gets back:

  ========  ===========================================  =====================
  version   request path                                 operations
  ========  ===========================================  =====================
  kv-v1     ``<mount>/<path>``                           write, delete
  kv-v2     ``<mount>/data/<path>``                      write (create/update/
                                                         patch), delete
  kv-v2     ``<mount>/delete/<path>``,                   write
            ``<mount>/undelete/<path>``,
            ``<mount>/destroy/<path>``
  kv-v2     ``<mount>/metadata/<path>``                  delete
  any       ``sys/mounts/<mount>``                       delete (the mount went)
  ========  ===========================================  =====================

  (A kv-v2 metadata *write* changes settings such as ``max_versions``, not the data a reader
  gets, and a kv-v2 ``delete`` of versions other than the latest is matched too: the
  re-read is cheap and tells.)

Vault namespaces are not part of the match: the audit entry's path is relative to its
namespace, and an object may take its namespace from its VaultAuth. Matching without it can
only cost an extra read (an object in another namespace with the same mount and path), never
a missed change.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)

Operation = Literal["write", "delete"]
"""What an audited request did: ``write`` (create, update, patch) or ``delete``."""


def normalise(path: str) -> str:
    """Vault's view of a path: no leading or trailing slash, no empty segments."""
    return "/".join(part for part in path.split("/") if part)


@dataclass(frozen=True, slots=True)
class KVRef:
    """One KV secret an object reads."""

    mount: str
    path: str
    kv_version: Literal[1, 2]

    def watched(self) -> list[tuple[str, Operation]]:
        """The (request path, operation) pairs that change what reading this secret returns."""
        mount, path = normalise(self.mount), normalise(self.path)
        if self.kv_version == 1:
            full = f"{mount}/{path}"
            return [(full, "write"), (full, "delete")]
        return [
            (f"{mount}/data/{path}", "write"),
            (f"{mount}/data/{path}", "delete"),
            (f"{mount}/delete/{path}", "write"),
            (f"{mount}/undelete/{path}", "write"),
            (f"{mount}/destroy/{path}", "write"),
            (f"{mount}/metadata/{path}", "delete"),
        ]


class PathIndex(Generic[K]):
    """See the module docstring. ``K`` is the caller's object key (e.g. ``ObjectKey``)."""

    def __init__(self) -> None:
        self._watch: dict[tuple[str, Operation], set[K]] = {}
        self._mounts: dict[str, set[K]] = {}
        self._refs: dict[K, frozenset[KVRef]] = {}

    def replace(self, key: K, refs: Iterable[KVRef]) -> None:
        """Register ``key`` as reading exactly ``refs`` (an empty set removes it)."""
        new = frozenset(refs)
        old = self._refs.get(key)
        if old == new:
            return
        if old is not None:
            self._unlink(key, old)
        if not new:
            self._refs.pop(key, None)
            return
        self._refs[key] = new
        for ref in new:
            for watched in ref.watched():
                self._watch.setdefault(watched, set()).add(key)
            self._mounts.setdefault(normalise(ref.mount), set()).add(key)

    def remove(self, key: K) -> None:
        """Forget ``key`` (no-op if it was never registered)."""
        old = self._refs.pop(key, None)
        if old is not None:
            self._unlink(key, old)

    def lookup(self, path: str, operation: Operation) -> set[K]:
        """Keys whose data the audited request ``operation`` on ``path`` may have changed."""
        path = normalise(path)
        found = set(self._watch.get((path, operation), ()))
        if operation == "delete" and path.startswith("sys/mounts/"):
            found |= self._mounts.get(path.removeprefix("sys/mounts/"), set())
        return found

    def is_watched(self, path: str, operation: Operation) -> bool:
        """Cheap pre-check: would ``lookup`` return anything?"""
        return bool(self.lookup(path, operation))

    def registered(self) -> set[K]:
        """Every registered key: the objects to re-read after a gap in the stream."""
        return set(self._refs)

    def refs(self, key: K) -> frozenset[KVRef]:
        return self._refs.get(key, frozenset())

    def __len__(self) -> int:
        return len(self._refs)

    def __contains__(self, key: object) -> bool:
        return key in self._refs

    def _unlink(self, key: K, refs: frozenset[KVRef]) -> None:
        for ref in refs:
            for watched in ref.watched():
                keys = self._watch.get(watched)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._watch[watched]
            mount = normalise(ref.mount)
            keys = self._mounts.get(mount)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._mounts[mount]
