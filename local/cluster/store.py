"""The emulator's object store: what etcd is to a real API server.

Objects are plain JSON-shaped dicts keyed by (group, resource plural, namespace, name); cluster-scoped objects have
namespace ``""``. The store owns ``metadata.resourceVersion`` (one cluster-wide monotonic counter, as etcd's
revision) and keeps a bounded event history for watches. Everything above it (defaulting, generation, managedFields,
validation) is the API layer's business; controllers write through :meth:`Store.put` too, so watches see them.

All methods are thread-safe and return deep copies: callers never alias stored objects.
"""

from __future__ import annotations

import builtins
import copy
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class GroupResource:
    """A resource type: ``group`` is ``""`` for the core group; ``resource`` is the plural (``deployments``)."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it."""

    resource_version: int
    type: EventType
    gr: GroupResource
    object: Obj


class ResourceVersionTooOldError(Exception):
    """A watch asked for history the store no longer keeps (the real server answers 410 Gone)."""


ChangeListener = Callable[[Event], None]

HISTORY = 10_000


class Store:
    """In-memory objects with a monotonic resourceVersion and an event history."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[GroupResource, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._listeners: list[ChangeListener] = []

    @property
    def lock(self) -> threading.RLock:
        """Hold this to make a read-modify-write atomic against other writers."""
        return self._lock

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` after every change (outside no lock guarantees: listeners may write back)."""
        with self._lock:
            self._listeners.append(listener)

    def get(self, gr: GroupResource, namespace: str, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects.get(gr, {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, gr: GroupResource, namespace: str | None = None) -> list[Obj]:
        """Objects of ``gr``, in one namespace or (``None``) all, sorted by namespace then name."""
        with self._lock:
            items = self._objects.get(gr, {})
            keys = sorted(k for k in items if namespace is None or k[0] == namespace)
            return [copy.deepcopy(items[k]) for k in keys]

    def iter_all(self) -> Iterator[tuple[GroupResource, Obj]]:
        """Every stored object (a snapshot), for garbage collection and debugging."""
        with self._lock:
            snapshot = [(gr, copy.deepcopy(o)) for gr, objs in self._objects.items() for o in objs.values()]
        yield from snapshot

    def put(self, gr: GroupResource, obj: Obj) -> Obj:
        """Create or replace ``obj``; stamps a new resourceVersion and records ADDED or MODIFIED."""
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", "") or "", meta["name"])
        with self._lock:
            self._rv += 1
            stored = copy.deepcopy(obj)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            bucket = self._objects.setdefault(gr, {})
            event_type: EventType = "MODIFIED" if key in bucket else "ADDED"
            bucket[key] = stored
            event = Event(self._rv, event_type, gr, copy.deepcopy(stored))
            self._history.append(event)
            self._changed.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return copy.deepcopy(stored)

    def remove(self, gr: GroupResource, namespace: str, name: str) -> Obj | None:
        """Delete the object; records DELETED with a new resourceVersion. ``None`` when it was not there."""
        with self._lock:
            bucket = self._objects.get(gr, {})
            popped = bucket.pop((namespace, name), None)
            if popped is None:
                return None
            self._rv += 1
            # Copy the top level and metadata before stamping: readers may hold the popped dict (``peek``).
            stored = {**popped, "metadata": {**popped["metadata"], "resourceVersion": str(self._rv)}}
            event = Event(self._rv, "DELETED", gr, copy.deepcopy(stored))
            self._history.append(event)
            self._changed.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return copy.deepcopy(stored)

    def events_since(self, resource_version: int, timeout: float) -> builtins.list[Event]:
        """Events newer than ``resource_version``, waiting up to ``timeout`` seconds (real time) for one."""
        with self._lock:
            if self._history and resource_version < self._history[0].resource_version - 1:
                raise ResourceVersionTooOldError(str(resource_version))
            if resource_version >= self._rv:
                self._changed.wait(timeout)
            return [e for e in self._history if e.resource_version > resource_version]

    # --- no-copy reads and compare-and-swap writes, for the API server (added by the API half) --------------------
    #
    # ``peek``/``peek_list`` return the stored dicts themselves: callers must treat them as read-only. The store never
    # mutates a stored dict in place (``put`` and ``commit`` replace it; ``remove`` copies before stamping), so a
    # reference stays a consistent snapshot. ``commit`` takes ownership of the dict it is given.

    def peek(self, gr: GroupResource, namespace: str, name: str) -> Obj | None:
        """The stored object itself (no copy): read-only."""
        with self._lock:
            return self._objects.get(gr, {}).get((namespace, name))

    def peek_list(self, gr: GroupResource, namespace: str | None = None) -> tuple[builtins.list[Obj], int]:
        """Stored objects (no copies, read-only), sorted by namespace then name, with the store's resourceVersion."""
        with self._lock:
            items = self._objects.get(gr, {})
            keys = sorted(k for k in items if namespace is None or k[0] == namespace)
            return [items[k] for k in keys], self._rv

    def commit(self, gr: GroupResource, obj: Obj, *, expect: str | None) -> Obj:
        """Store ``obj`` (taking ownership: the caller must not touch it afterwards) if the current object's
        resourceVersion is ``expect`` (``None``: the object must not exist). Raises :class:`CommitConflictError`
        otherwise. Listeners run after the lock is released. Returns the stored object (read-only)."""
        meta = obj["metadata"]
        key = (meta.get("namespace", "") or "", meta["name"])
        with self._lock:
            bucket = self._objects.setdefault(gr, {})
            current = bucket.get(key)
            if expect is None:
                if current is not None:
                    raise CommitConflictError(current)
            elif current is None or current["metadata"].get("resourceVersion") != expect:
                raise CommitConflictError(current)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            bucket[key] = obj
            event = Event(self._rv, "MODIFIED" if current is not None else "ADDED", gr, copy.deepcopy(obj))
            self._history.append(event)
            self._changed.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return obj

    def remove_if(self, gr: GroupResource, namespace: str, name: str, *, uid: str | None = None) -> Obj | None:
        """``remove`` that only deletes the object with ``uid`` (when given); ``None`` when nothing was removed."""
        with self._lock:
            current = self._objects.get(gr, {}).get((namespace, name))
            if current is None or (uid is not None and current["metadata"].get("uid") != uid):
                return None
            return self.remove(gr, namespace, name)

    def dependents(self, uids: set[str]) -> builtins.list[tuple[GroupResource, Obj]]:
        """Objects with an ownerReference to one of ``uids`` (stored dicts, read-only)."""
        out: builtins.list[tuple[GroupResource, Obj]] = []
        with self._lock:
            for gr, objs in self._objects.items():
                for o in objs.values():
                    refs = o["metadata"].get("ownerReferences")
                    if refs and any(r.get("uid") in uids for r in refs):
                        out.append((gr, o))
        return out

    def namespaced_in(self, namespace: str) -> builtins.list[tuple[GroupResource, Obj]]:
        """Every object in ``namespace`` (stored dicts, read-only)."""
        with self._lock:
            return [(gr, o) for gr, objs in self._objects.items() for (ns, _), o in objs.items() if ns == namespace]


class CommitConflictError(Exception):
    """:meth:`Store.commit` found a different object (or none, or one) than expected; ``current`` is what is there."""

    def __init__(self, current: Obj | None) -> None:
        super().__init__("the stored object changed")
        self.current = current
