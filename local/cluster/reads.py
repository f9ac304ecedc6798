"""Read verbs of the API server: get, list (selectors, limit/continue) and watch."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator

from local.cluster import status
from local.cluster.clock import IDLE_PACE, SimClock
from local.cluster.resources import Registry, ResourceType
from local.cluster.selectors import (
    FieldRequirement,
    Requirement,
    SelectorError,
    fields_match,
    matches,
    parse_field_selector,
    parse_label_selector,
)
from local.cluster.store import Event, ResourceVersionTooOldError, Store
from local.cluster.wire import Alive, Info, Obj, Request, Response, encode

DEFAULT_WATCH_TIMEOUT = 1800.0
BOOKMARK_INTERVAL = 60.0
"""The watch cache's bookmark frequency (a minute), in simulated seconds."""
BOOKMARK_BEFORE_TIMEOUT = 2.0
"""The watch cache also sends a watcher with a deadline a bookmark this long before its timeout."""


class _Bookmarks:
    """When a watcher that asked for bookmarks (``allowWatchBookmarks``) gets one: every minute and just before its
    timeout, on the simulated clock (k8s.io/apiserver's cacher: ``bookmarkFrequency``, the deadline minus 2 s)."""

    def __init__(self, started: float, deadline: float) -> None:
        self._deadline = deadline
        self._next = self._after(started)

    def _after(self, now: float) -> float:
        before_timeout = self._deadline - BOOKMARK_BEFORE_TIMEOUT
        return min(now + BOOKMARK_INTERVAL, before_timeout if before_timeout > now else float("inf"))

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = self._after(now)
        return True


class ReadVerbs:
    """The server's state and its read verbs (the write verbs and subresources build on it)."""

    store: Store
    clock: SimClock
    registry: Registry
    stopping: threading.Event

    # ------------------------------------------------------------------------------------------------ output
    @staticmethod
    def _out(rt: ResourceType, obj: Obj) -> Obj:
        if obj.get("apiVersion") == rt.api_version and obj.get("kind") == rt.kind:
            return obj
        return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}

    def _respond(self, code: int, rt: ResourceType, obj: Obj) -> Response:
        return Response(code, encode(self._out(rt, obj)))

    # ---------------------------------------------------------------------------------------------------- get
    def _get(self, rt: ResourceType, info: Info) -> Response:
        obj = self.store.peek(rt.gr, info.namespace if rt.namespaced else "", info.name)
        if obj is None:
            raise status.not_found(rt.plural, rt.group, info.name)
        return self._respond(200, rt, obj)

    def _selectors(self, req: Request, rt: ResourceType) -> tuple[list[Requirement], list[FieldRequirement]]:
        try:
            labels = parse_label_selector(req.q("labelSelector"))
            fields = parse_field_selector(req.q("fieldSelector"), rt.field_selectors)
        except SelectorError as exc:
            raise status.bad_request(str(exc)) from exc
        return labels, fields

    def _list(self, req: Request, rt: ResourceType, info: Info) -> Response:
        labels, fields = self._selectors(req, rt)
        items, rv = self.store.peek_list(rt.gr, info.namespace if rt.namespaced and info.namespace else None)
        selected = [
            o
            for o in items
            if (not labels or matches(labels, o["metadata"].get("labels"))) and (not fields or fields_match(fields, o))
        ]
        list_meta: Obj = {"resourceVersion": str(rv)}
        cont = req.q("continue")
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                after = (str(token["ns"]), str(token["name"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise status.bad_request(f"continue key is not valid: {exc}") from exc
            selected = [o for o in selected if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
        limit_raw = req.q("limit")
        if limit_raw:
            try:
                limit = int(limit_raw)
            except ValueError as exc:
                raise status.bad_request(f"invalid limit {limit_raw!r}") from exc
            if 0 < limit < len(selected):
                last = selected[limit - 1]["metadata"]
                key = {"ns": last.get("namespace", ""), "name": last["name"], "rv": rv}
                list_meta["continue"] = base64.urlsafe_b64encode(encode(key)).decode().rstrip("=")
                list_meta["remainingItemCount"] = len(selected) - limit
                selected = selected[:limit]
        if rt.builtin:
            out_items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in selected]
        else:
            out_items = [self._out(rt, o) for o in selected]
        body = {"kind": rt.list_kind_name, "apiVersion": rt.api_version, "metadata": list_meta, "items": out_items}
        return Response(200, encode(body))

    # -------------------------------------------------------------------------------------------------- watch
    def _watch(self, req: Request, rt: ResourceType, info: Info) -> Response:
        labels, fields = self._selectors(req, rt)
        namespace = info.namespace if rt.namespaced and info.namespace else None
        rv_raw = req.q("resourceVersion") or ""
        send_initial = req.flag("sendInitialEvents")
        timeout_raw = req.q("timeoutSeconds")
        try:
            timeout = float(timeout_raw) if timeout_raw else DEFAULT_WATCH_TIMEOUT
            start = int(rv_raw) if rv_raw not in ("", "0") else None
        except ValueError as exc:
            raise status.bad_request(f"invalid resource version or timeout: {exc}") from exc
        gr = rt.gr

        def wanted(obj: Obj) -> bool:
            meta = obj["metadata"]
            if namespace is not None and meta.get("namespace", "") != namespace:
                return False
            return (not labels or matches(labels, meta.get("labels"))) and (not fields or fields_match(fields, obj))

        def line(kind: str, obj: Obj) -> bytes:
            return encode({"type": kind, "object": self._out(rt, obj)})

        def bookmark(rv: int) -> bytes:
            mark = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(rv)}}
            return encode({"type": "BOOKMARK", "object": mark})

        def stream(alive: Alive) -> Iterator[bytes]:
            # timeoutSeconds is simulated time; a clock nobody moves still ends the watch after as much wall time.
            clock = self.clock
            deadline = clock.now() + timeout
            wall_deadline = time.monotonic() + timeout
            bookmarks = _Bookmarks(clock.now(), deadline) if req.flag("allowWatchBookmarks") else None
            items, current = self.store.peek_list(gr, namespace)
            known = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items if wanted(o)}
            if start is None or send_initial:
                position = current
                for o in items:
                    if wanted(o):
                        yield line("ADDED", o)
                if send_initial:
                    mark = json.loads(bookmark(current))
                    mark["object"]["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                    yield encode(mark)
            else:
                position = start
            quiet_since = time.monotonic()
            while not self.stopping.is_set() and alive():
                seen = clock.now()
                if seen >= deadline or time.monotonic() >= wall_deadline:
                    return
                try:
                    events = self.store.events_since(position, IDLE_PACE)
                except ResourceVersionTooOldError:
                    oldest = self.store.resource_version
                    err = status.gone(f"too old resource version: {position} ({oldest})")
                    yield encode({"type": "ERROR", "object": err.status()})
                    return
                for ev in events:
                    position = ev.resource_version
                    if ev.gr != gr:
                        continue
                    out = self._translate(ev, wanted, known)
                    if out is not None:
                        quiet_since = time.monotonic()
                        yield line(out, ev.object)
                if bookmarks is not None and bookmarks.due(clock.now()):
                    yield bookmark(position)
                if time.monotonic() - quiet_since >= IDLE_PACE and alive():
                    # nothing to report for a while: in driven mode, this waiter lets a simulated second pass
                    clock.pass_idle(seen, min(seen + 1.0, deadline))

        return Response(200, stream=stream)

    @staticmethod
    def _translate(ev: Event, wanted: Callable[[Obj], bool], known: set[tuple[str, str]]) -> str | None:
        """The watch cache's event type for one filtered watcher: objects entering/leaving the selection are
        ADDED/DELETED."""
        meta = ev.object["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        now_in = wanted(ev.object)
        was_in = key in known
        if ev.type == "DELETED":
            known.discard(key)
            return "DELETED" if (was_in or now_in) else None
        if now_in:
            known.add(key)
            return "MODIFIED" if was_in else "ADDED"
        if was_in:
            known.discard(key)
            return "DELETED"
        return None
