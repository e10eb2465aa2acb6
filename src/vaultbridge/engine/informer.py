"""List + watch one resource into an in-memory store and tell handlers what changed.

The informer is the only reader of the API server on the hot path: reconcilers read the
store. It lists once, then watches from the list's resourceVersion (with bookmarks, so a
quiet resource still advances its version) and resumes from the last version seen when the
stream ends or breaks. When the server no longer has that version (410 Gone) it lists again
and reports the difference between the store and the fresh list as ordinary add / update /
delete calls, so a handler never misses a change, it only sees it late.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from vaultbridge.engine.backoff import Backoff
from vaultbridge.engine.keys import ObjectKey
from vaultbridge.kube import objects
from vaultbridge.kube.client import KubeClient
from vaultbridge.kube.errors import ResourceExpired
from vaultbridge.kube.resources import Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
Transform = Callable[[Obj], Obj]

# A watch that ends cleanly sooner than this without delivering anything is treated like a
# failure for backoff purposes, so a misbehaving server cannot drive a hot reconnect loop.
_MIN_HEALTHY_WATCH_SECONDS = 1.0


def strip_managed_fields(obj: Obj) -> Obj:
    """Default store transform: drop ``metadata.managedFields``.

    Nothing in the operator reads them and they are often the largest part of an object.
    """
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


# Strings up to this length are interned when an object enters a store (see `compact`).
_INTERN_MAX = 64
_intern = sys.intern


def compact(value: Any) -> Any:
    """The same JSON value, with dict keys and short strings interned.

    Every decoded object carries its own copy of every key ("apiVersion", "metadata",
    "lastTransitionTime", …) and of the values most objects share (API version, kind,
    namespace, condition types and reasons, "True"): ~50 bytes each, thousands per thousand
    objects. A store holds each object for its whole life, so it keeps one copy of each
    instead: a synced VaultStaticSecret 5.9 → 2.9 KB, an owned Secret's digest 3.2 → 1.2 KB
    (tracemalloc; tests/unit/test_informer_compact.py counts it). Unique values (uid,
    resourceVersion) are interned too: interned strings are freed with their last user
    (CPython), so nothing outlives the object. Leaves are handled inline (no call per string):
    this runs once per stored event, ~20 µs for a VaultStaticSecret.
    """
    t = type(value)
    if t is dict:
        return _compact_dict(value)
    if t is list or t is tuple:
        return t(_compact_seq(value))
    if t is str and len(value) <= _INTERN_MAX:
        return _intern(value)
    return value


def _compact_dict(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        t = type(v)
        if t is str:
            out[_intern(k)] = _intern(v) if len(v) <= _INTERN_MAX else v
        elif t is dict:
            out[_intern(k)] = _compact_dict(v)
        elif t is list or t is tuple:
            out[_intern(k)] = t(_compact_seq(v))
        else:
            out[_intern(k)] = v
    return out


def _compact_seq(seq: list[Any] | tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for v in seq:
        t = type(v)
        if t is str:
            out.append(_intern(v) if len(v) <= _INTERN_MAX else v)
        elif t is dict:
            out.append(_compact_dict(v))
        elif t is list or t is tuple:
            out.append(t(_compact_seq(v)))
        else:
            out.append(v)
    return out


_encode = msgspec.json.Encoder().encode


def compact_like(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``compact(new)``, reusing the already compacted parts of ``old`` that did not change.

    An update usually changes little: a status write (our own, coming back as a watch event)
    changes ``status`` and ``metadata.resourceVersion``; the spec, labels, annotations and
    owner references are what the store already holds. Those subtrees are taken from ``old``
    as they are instead of being walked again: for a VaultStaticSecret's status echo this
    walks the status and the metadata's scalars only, ~1/4 of the nodes
    (tests/unit/test_informer_compact.py counts them).

    A subtree is reused only when it is equal **and of the same JSON types** (Python's ``==``
    takes ``True == 1 == 1.0``; their JSON encodings differ): the result is always a value
    equal to ``compact(new)`` in type and content. Stored objects are read-only (``Store``),
    so sharing a subtree between the old and the new version is safe.
    """
    out: dict[str, Any] = {}
    for k, v in new.items():
        t = type(v)
        if t is str:
            out[_intern(k)] = _intern(v) if len(v) <= _INTERN_MAX else v
        elif t is dict or t is list or t is tuple:
            ov = old.get(k)
            if type(ov) is t and ov == v and _same_json(ov, v):
                out[_intern(k)] = ov
            elif t is dict:
                out[_intern(k)] = compact_like(v, ov) if type(ov) is dict else _compact_dict(v)
            else:
                out[_intern(k)] = t(_compact_seq(v))
        else:
            out[_intern(k)] = v
    return out


def _same_json(a: Any, b: Any) -> bool:
    """Equal values (``a == b`` known) that are also the same JSON (``True`` is not ``1``)."""
    try:
        return _encode(a) == _encode(b)
    except (TypeError, ValueError, msgspec.MsgspecError):  # not JSON: not reused
        return False


class Store:
    """The informer's cache: current objects by key, with a per-namespace index.

    Objects are shared, not copied: treat them as read-only.
    """

    def __init__(self) -> None:
        self._items: dict[ObjectKey, Obj] = {}
        self._by_namespace: dict[str, dict[str, Obj]] = {}

    def get(self, key: ObjectKey) -> Obj | None:
        return self._items.get(key)

    def list(self, namespace: str | None = None) -> builtins.list[Obj]:
        if namespace is None:
            return list(self._items.values())
        return list(self._by_namespace.get(namespace, {}).values())

    def keys(self, namespace: str | None = None) -> builtins.list[ObjectKey]:
        if namespace is None:
            return list(self._items)
        return [ObjectKey(namespace, n) for n in self._by_namespace.get(namespace, {})]

    def namespaces(self) -> builtins.list[str]:
        return list(self._by_namespace)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[ObjectKey]:
        return iter(list(self._items))

    def _put(self, obj: Obj) -> Obj | None:
        key = ObjectKey.of(obj)
        old = self._items.get(key)
        self._items[key] = obj
        self._by_namespace.setdefault(key.namespace, {})[key.name] = obj
        return old

    def _delete(self, key: ObjectKey) -> Obj | None:
        old = self._items.pop(key, None)
        ns = self._by_namespace.get(key.namespace)
        if ns is not None:
            ns.pop(key.name, None)
            if not ns:
                del self._by_namespace[key.namespace]
        return old


@dataclass
class InformerStats:
    lists: int = 0
    watches: int = 0
    relists_after_expiry: int = 0
    events: int = 0
    errors: int = 0


class Informer:
    """Keep ``store`` in sync with ``resource`` (optionally one namespace / label selector).

    Register handlers with ``add_handlers`` before ``run()``; run it as a task for the life of
    the process (cancel to stop). Handlers are plain functions called in the informer's task:
    keep them quick (enqueue a key, no I/O). A handler that raises is logged and skipped.
    """

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        watch_timeout: float = 300.0,
        page_size: int = 500,
        backoff: Backoff | None = None,
        transform: Transform | None = strip_managed_fields,
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.name = name or resource.plural
        self.store = Store()
        self.stats = InformerStats()
        self._watch_timeout = watch_timeout
        self._page_size = page_size
        self._backoff = backoff if backoff is not None else Backoff(base=1.0, cap=30.0, factor=2.0)
        self._transform = transform
        self._rng = rng or random.Random()  # noqa: S311 - scheduling, not cryptography
        self._rv = ""
        self._synced = asyncio.Event()
        self._on_add: list[AddHandler] = []
        self._on_update: list[UpdateHandler] = []
        self._on_delete: list[DeleteHandler] = []

    def add_handlers(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        if on_add is not None:
            self._on_add.append(on_add)
        if on_update is not None:
            self._on_update.append(on_update)
        if on_delete is not None:
            self._on_delete.append(on_delete)

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the store (stays true across relists)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (list, event or bookmark)."""
        return self._rv

    async def run(self) -> None:
        """List and watch until cancelled; API errors are retried with backoff, forever.

        Running again after a cancel resumes the watch from the last version seen (the store
        is kept), so a restarted informer catches up with watch events instead of a relist.
        """
        need_list = not self._synced.is_set()
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    self._backoff.reset(self.name)
                if await self._watch():
                    self._backoff.reset(self.name)
                    continue
                delay = self._backoff.failure(self.name)
                log.debug("informer %s: short empty watch, pausing %.1fs", self.name, delay)
                await asyncio.sleep(delay)
            except ResourceExpired:
                self.stats.relists_after_expiry += 1
                log.info("informer %s: resourceVersion %s expired, relisting", self.name, self._rv)
                need_list = True
            except Exception as exc:
                self.stats.errors += 1
                delay = self._backoff.failure(self.name)
                log.warning(
                    "informer %s: %s; retrying in %.1fs%s",
                    self.name,
                    exc,
                    delay,
                    "" if need_list else f" from resourceVersion {self._rv}",
                )
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        result = await self.client.list(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            limit=self._page_size,
        )
        self.stats.lists += 1
        fresh: dict[ObjectKey, Obj] = {}
        for item in result.items:
            obj = self._compacted(item)
            fresh[ObjectKey.of(obj)] = obj
        # Differences first for deletions, so handlers see a consistent store afterwards.
        for key in [k for k in self.store._items if k not in fresh]:
            old = self.store._delete(key)
            if old is not None:
                self._dispatch_delete(old)
        for obj in fresh.values():
            old = self.store._put(obj)
            if old is None:
                self._dispatch_add(obj)
            elif objects.resource_version(old) != objects.resource_version(obj):
                self._dispatch_update(old, obj)
        self._rv = result.resource_version
        if not self._synced.is_set():
            log.info("informer %s: synced %d objects", self.name, len(fresh))
            self._synced.set()

    async def _watch(self) -> bool:
        """One watch call. Returns False if it ended at once having delivered nothing."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        delivered = False
        timeout = int(self._watch_timeout * self._rng.uniform(1.0, 2.0))
        self.stats.watches += 1
        stream = self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self._rv,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=max(1, timeout),
            allow_bookmarks=True,
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                delivered = True
                self.stats.events += 1
                self._apply(event.type, event.object)
        return delivered or loop.time() - started >= _MIN_HEALTHY_WATCH_SECONDS

    def _apply(self, etype: str, raw: Obj) -> None:
        rv = objects.resource_version(raw)
        if etype == "BOOKMARK":
            if rv:
                self._rv = rv
            return
        obj = self._compacted(raw)
        if etype in ("ADDED", "MODIFIED"):
            old = self.store._put(obj)
            if old is None:
                self._dispatch_add(obj)
            else:
                self._dispatch_update(old, obj)
        elif etype == "DELETED":
            # The event carries the final state; report it even if the store never had it.
            self.store._delete(ObjectKey.of(obj))
            self._dispatch_delete(obj)
        else:
            log.warning("informer %s: unknown watch event type %r", self.name, etype)
        if rv:
            self._rv = rv

    def _compacted(self, raw: Obj) -> Obj:
        """The store's form of ``raw``: transformed, then compacted — against the version the
        store holds, if any (`compact_like`: an update walks only what changed)."""
        obj = self._transform(raw) if self._transform else raw
        old = self.store._items.get(ObjectKey.of(obj))
        return compact_like(obj, old) if old is not None else compact(obj)

    def _dispatch_add(self, obj: Obj) -> None:
        for handler in self._on_add:
            try:
                handler(obj)
            except Exception:
                log.exception("informer %s: add handler failed", self.name)

    def _dispatch_update(self, old: Obj, new: Obj) -> None:
        for handler in self._on_update:
            try:
                handler(old, new)
            except Exception:
                log.exception("informer %s: update handler failed", self.name)

    def _dispatch_delete(self, obj: Obj) -> None:
        for handler in self._on_delete:
            try:
                handler(obj)
            except Exception:
                log.exception("informer %s: delete handler failed", self.name)
