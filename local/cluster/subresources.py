"""Subresources of the API server: ``/status``, ``/scale`` (autoscaling/v1 Scale) and services' ``/proxy``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from local.cluster import patching, status, validation
from local.cluster.access import User
from local.cluster.clock import SimClock
from local.cluster.resources import ResourceType
from local.cluster.selectors import label_selector_to_string
from local.cluster.store import Store
from local.cluster.wire import JSON, MAX_RETRIES, Info, Obj, Request, Response, clone, encode, get_path, set_path
from local.cluster.writes import WriteCtx, WriteVerbs

ProxyFn = Callable[[Store, SimClock, str, str, str, str], tuple[int, bytes]]


class SubresourceVerbs(WriteVerbs):
    """``/status``, ``/scale`` and ``/proxy``."""

    proxy: ProxyFn | None

    # ---------------------------------------------------------------------------------------------- subresources
    def _subresource(self, req: Request, info: Info, rt: ResourceType, identity: User | None) -> Response:
        sub = info.subresource
        if sub == "status" and rt.status:
            return self._status(req, info, rt, identity)
        if sub == "scale" and rt.scale is not None:
            return self._scale(req, info, rt, identity)
        if sub == "proxy" and rt.proxy:
            return self._proxy(req, info)
        raise status.not_found_path()

    def _status(self, req: Request, info: Info, rt: ResourceType, identity: User | None) -> Response:
        ns = info.namespace if rt.namespaced else ""
        if info.verb == "get":
            return self._get(rt, info)
        if info.verb not in ("update", "patch"):
            raise status.method_not_allowed()
        ctx = WriteCtx(req, rt, info, identity)
        if info.verb == "update":
            body = self._decode(req)
            self._check_type(rt, body)
            self._place(rt, info, body)
        elif req.content_type == "application/apply-patch+yaml":
            raise status.unsupported_media_type(
                req.content_type,
                (
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ),
            )
        fn = self._patch_fn(req, rt) if info.verb == "patch" else None
        for _ in range(MAX_RETRIES):
            cur = self.store.peek(rt.gr, ns, info.name)
            if cur is None:
                raise status.not_found(rt.plural, rt.group, info.name)
            source = body if fn is None else self._run_patch(fn, cur)
            wanted_rv = (source.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != cur["metadata"].get("resourceVersion"):
                raise status.conflict(rt.plural, rt.group, info.name, status.STALE)
            new = clone(cur)
            if "status" in source:
                new["status"] = clone({"s": source["status"]})["s"]
            else:
                new.pop("status", None)
            stored = self._write(rt, info, cur, new, ctx, stale_on_race=bool(wanted_rv))
            if stored is None:
                continue
            return self._respond(200, rt, stored)
        raise status.conflict(rt.plural, rt.group, info.name, status.STALE)

    @staticmethod
    def _to_scale(rt: ResourceType, obj: Obj) -> Obj:
        assert rt.scale is not None
        paths = rt.scale
        meta = obj["metadata"]
        selector = get_path(obj, paths.selector) if paths.selector else None
        if paths.selector_struct:
            selector_text = label_selector_to_string(selector) if isinstance(selector, Mapping) else ""
        else:
            selector_text = str(selector or "")
        scale_meta = {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        }
        status_obj: Obj = {"replicas": int(get_path(obj, paths.status_replicas) or 0)}
        if selector_text:
            status_obj["selector"] = selector_text
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": scale_meta,
            "spec": {"replicas": int(get_path(obj, paths.spec_replicas) or 0)},
            "status": status_obj,
        }

    def _scale(self, req: Request, info: Info, rt: ResourceType, identity: User | None) -> Response:
        assert rt.scale is not None
        ns = info.namespace if rt.namespaced else ""
        if info.verb == "get":
            cur = self.store.peek(rt.gr, ns, info.name)
            if cur is None:
                raise status.not_found(rt.plural, rt.group, info.name)
            return Response(200, encode(self._to_scale(rt, cur)))
        if info.verb not in ("update", "patch"):
            raise status.method_not_allowed()
        ctx = WriteCtx(req, rt, info, identity)
        body: Obj | None = None
        fn: Callable[[Obj], Any] | None = None
        if info.verb == "update":
            body = self._decode(req)
            kind = body.get("kind")
            if kind and kind != "Scale":
                raise status.bad_request(f'Scale in version "v1" cannot be handled as a {kind}')
        else:
            if req.content_type == "application/apply-patch+yaml":
                raise status.unsupported_media_type(
                    req.content_type, ("application/json-patch+json", "application/merge-patch+json")
                )
            if req.content_type == "application/strategic-merge-patch+json":
                try:
                    doc = json.loads(req.body or b"null")
                except ValueError as exc:
                    raise status.bad_request(f"error decoding patch: {exc}") from exc
                fn = lambda cur: patching.merge_patch(cur, doc)  # noqa: E731 - Scale has no merge keys
            else:
                fn = self._patch_fn(req, rt)
        for _ in range(MAX_RETRIES):
            cur = self.store.peek(rt.gr, ns, info.name)
            if cur is None:
                raise status.not_found(rt.plural, rt.group, info.name)
            scale = self._to_scale(rt, cur)
            wanted = body if fn is None else self._run_patch(fn, scale)
            assert wanted is not None
            wanted_rv = (wanted.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != cur["metadata"].get("resourceVersion"):
                raise status.conflict(rt.plural, rt.group, info.name, status.STALE)
            replicas = (wanted.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise status.invalid(
                    "Scale",
                    "autoscaling",
                    info.name,
                    [validation.invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
                )
            new = clone(cur)
            set_path(new, rt.scale.spec_replicas, replicas)
            stored = self._write(rt, info, cur, new, ctx, stale_on_race=bool(wanted_rv))
            if stored is None:
                continue
            return Response(200, encode(self._to_scale(rt, stored)))
        raise status.conflict(rt.plural, rt.group, info.name, status.STALE)

    def _proxy(self, req: Request, info: Info) -> Response:
        target = info.name
        parts = target.split(":")
        if len(parts) == 3:
            service, port = parts[1], parts[2]
        elif len(parts) == 2:
            service, port = parts[0], parts[1]
        else:
            service, port = target, ""
        path = "/" + "/".join(quote(p, safe="") for p in info.rest)
        if req.query:
            path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, vs in req.query.items() for v in vs)
        if self.proxy is None:
            raise status.service_unavailable(f'no endpoints available for service "{service}"')
        code, payload = self.proxy(self.store, self.clock, info.namespace, service, port, path)
        ctype = JSON if payload[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
        return Response(code, payload, ctype)
