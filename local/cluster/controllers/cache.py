"""The controllers' informer: the latest version of every watched object, indexed by controller owner uid."""

from __future__ import annotations

import threading

from local.cluster.objects import (
    CONTROLLERREVISIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    HORIZONTALPODAUTOSCALERS,
    JOBS,
    NAMESPACES,
    NODES,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    controller_uid,
    meta,
    name_of,
    namespace_of,
)
from local.cluster.store import Event, GroupResource, Obj, Store

WATCHED = (
    PODS,
    NODES,
    NAMESPACES,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    JOBS,
    CONTROLLERREVISIONS,
    HORIZONTALPODAUTOSCALERS,
    PODDISRUPTIONBUDGETS,
)

Key = tuple[str, str]


class Informer:
    """Fed by the store's change listener, so reads cost no copies.

    Objects handed out are shared, never copied: callers must treat them as read-only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[GroupResource, dict[Key, Obj]] = {gr: {} for gr in WATCHED}
        self._rvs: dict[tuple[GroupResource, Key], int] = {}
        self._owned: dict[str, dict[tuple[GroupResource, Key], None]] = {}

    def on_event(self, event: Event) -> None:
        if event.gr not in self._objects:
            return
        key = (namespace_of(event.object), name_of(event.object))
        self._apply(event.gr, key, event.resource_version, None if event.type == "DELETED" else event.object)

    def prime(self, store: Store) -> None:
        for gr in WATCHED:
            for obj in store.list(gr):
                rv = int(meta(obj).get("resourceVersion") or 0)
                self._apply(gr, (namespace_of(obj), name_of(obj)), rv, obj)

    def _apply(self, gr: GroupResource, key: Key, rv: int, obj: Obj | None) -> None:
        with self._lock:
            if self._rvs.get((gr, key), -1) >= rv:
                return  # a newer version (or its deletion) already arrived from another thread
            self._rvs[(gr, key)] = rv
            bucket = self._objects[gr]
            previous = bucket.pop(key, None)
            if previous is not None:
                owner = controller_uid(previous)
                if owner:
                    self._owned.get(owner, {}).pop((gr, key), None)
            if obj is not None:
                bucket[key] = obj
                owner = controller_uid(obj)
                if owner:
                    self._owned.setdefault(owner, {})[(gr, key)] = None

    def objects(self, gr: GroupResource) -> list[Obj]:
        with self._lock:
            return list(self._objects[gr].values())

    def get(self, gr: GroupResource, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects[gr].get((namespace, name))

    def owned(self, uid: str, gr: GroupResource) -> list[Obj]:
        with self._lock:
            keys = [k for (g, k) in self._owned.get(uid, {}) if g == gr]
            bucket = self._objects[gr]
            found = [bucket[k] for k in keys if k in bucket]
        return [o for o in found if controller_uid(o) == uid]
