"""The API server's request handling, independent of HTTP: routing, authentication, verbs, subresources.

:meth:`ApiServer.handle` takes a parsed :class:`Request` and returns a :class:`Response` (a body, a watch stream
or a connection reset). Writes follow the real server's pipeline: decode, namespace/name checks, patch or apply,
server-owned metadata (uid, creationTimestamp, generation), status reset for resources with a status
subresource, defaulting, validation, managedFields, optimistic concurrency on resourceVersion (compare-and-swap
in the store, retried for patches), then the controllers reconcile before the answer goes out.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import yaml

from local.cluster import discovery, patching, ssa, status, validation
from local.cluster.auth import DenyRule, Identity, TokenError, TokenVerifier, forbidden_message
from local.cluster.clock import SimClock
from local.cluster.faults import Fault, FaultInjector, RequestLog, RequestRecord
from local.cluster.resources import CRD_GR, Registry, ResourceType
from local.cluster.selectors import (
    FieldRequirement,
    Requirement,
    SelectorError,
    fields_match,
    label_selector_to_string,
    matches,
    parse_field_selector,
    parse_label_selector,
)
from local.cluster.status import ApiError
from local.cluster.store import CommitConflictError, Event, GroupResource, ResourceVersionTooOldError, Store

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
ProxyFn = Callable[[Store, SimClock, str, str, str, str], tuple[int, bytes]]

NAMESPACES = GroupResource("", "namespaces")
SERVICEACCOUNTS = GroupResource("", "serviceaccounts")
PUBLIC_PATHS = frozenset(
    {"/version", "/healthz", "/livez", "/readyz", "/.well-known/openid-configuration", "/openid/v1/jwks"}
)
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
DEFAULT_WATCH_TIMEOUT = 1800.0
MAX_RETRIES = 20
JSON = "application/json"


# ------------------------------------------------------------------------------------------------ wire types


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool:
        value = self.q(name)
        return value is not None and value.lower() in ("true", "1", "yes")

    def header(self, name: str) -> str:
        return str(self.headers.get(name) or "")

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()


Alive = Callable[[], bool]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[Alive], Iterator[bytes]] | None = None
    reset: bool = False


@dataclass
class Info:
    """What a request addresses (``k8s.io/apiserver``'s RequestInfo)."""

    verb: str
    resource_request: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    rest: list[str] = field(default_factory=list)


def parse_info(method: str, path: str, query: Mapping[str, list[str]]) -> Info:
    parts = [p for p in path.strip("/").split("/") if p != ""]
    verb = method.lower()
    if not parts or parts[0] not in ("api", "apis"):
        return Info(verb)
    if parts[0] == "api":
        if len(parts) < 2:
            return Info(verb)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return Info(verb, group=parts[1] if len(parts) == 2 else "")
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return Info(verb, group=group, version=version)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    extra = rest[3:]
    if resource == "namespaces" and name:
        namespace = name
    m = method.upper()
    if m in ("GET", "HEAD"):
        watch = (query.get("watch") or [""])[0].lower() in ("true", "1")
        kverb = "watch" if watch else ("get" if name else "list")
    elif m == "POST":
        kverb = "create"
    elif m == "PUT":
        kverb = "update"
    elif m == "PATCH":
        kverb = "patch"
    elif m == "DELETE":
        kverb = "delete" if name else "deletecollection"
    else:
        kverb = verb
    return Info(
        kverb,
        resource_request=True,
        group=group,
        version=version,
        resource=resource,
        subresource=sub,
        namespace=namespace,
        name=name,
        rest=extra,
    )


# ------------------------------------------------------------------------------------------------- helpers


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1 as sigs.k8s.io/yaml reads it, but timestamps stay strings (they are JSON strings on the wire)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def clone(obj: Obj) -> Obj:
    """A deep copy of a JSON-shaped object (a JSON round trip is faster than ``copy.deepcopy``)."""
    out: Obj = json.loads(json.dumps(obj))
    return out


def now_string(clock: SimClock) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(clock.now())))


def _get_path(obj: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: Obj, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)


def _normalize(obj: Obj) -> Obj:
    """Key order as the real server serialises (kind, apiVersion, metadata, ..., status last)."""
    meta = obj.get("metadata") or {}
    ordered_meta = {k: meta[k] for k in _META_ORDER if k in meta}
    ordered_meta.update({k: v for k, v in meta.items() if k not in ordered_meta})
    out: Obj = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "metadata": ordered_meta}
    for k, v in obj.items():
        if k not in ("kind", "apiVersion", "metadata", "status"):
            out[k] = v
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def _drop_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for k in [k for k, v in value.items() if v is None]:
            del value[k]
        for v in value.values():
            _drop_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _drop_nulls(v)


def _spec_like(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _user_agent_manager(user_agent: str) -> str:
    """``managerOrUserAgent``: the User-Agent up to its first ``/`` (``kubectl``, ``OpenAPI-Generator``)."""
    return (user_agent.split("/", 1)[0] or "unknown")[:128]


def _initial_status(kind: str) -> Obj | None:
    if kind in ("Pod", "PersistentVolumeClaim"):
        return {"phase": "Pending"}
    if kind == "Namespace":
        return {"phase": "Active"}
    if kind == "Service":
        return {"loadBalancer": {}}
    return None


def _forbidden(rt: ResourceType, info: Info, identity: Identity | None) -> ApiError:
    """403 Forbidden in RBAC's words, for a deny rule or an injected 403."""
    user = identity.username if identity else "system:anonymous"
    message = forbidden_message(
        user,
        info.verb,
        resource=info.resource,
        subresource=info.subresource,
        group=rt.group,
        namespace=info.namespace,
        name=info.name,
    )
    return status.forbidden(info.resource, rt.group, info.name, message)


def _crd_status(crd: Obj, now: str, previous: Obj | None = None) -> Obj:
    """The status the apiextensions controller settles on; a condition's lastTransitionTime moves only when its
    status changes (as on a real server), so re-applying an unchanged CRD is a no-op."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    status: Obj = {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": storage,
    }
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    for condition in status["conditions"]:
        old = before.get(condition["type"])
        if old is not None and old.get("status") == condition["status"] and old.get("lastTransitionTime"):
            condition["lastTransitionTime"] = old["lastTransitionTime"]
    return status


class _WriteCtx:
    """Per-write options from the query string."""

    def __init__(self, req: Request, rt: ResourceType, info: Info, identity: Identity | None) -> None:
        self.dry_run = (req.q("dryRun") or "") == "All"
        dry = req.q("dryRun")
        if dry not in (None, "", "All"):
            raise status.bad_request(f'Unsupported dryRun value "{dry}": supported values: "All"')
        self.field_manager = req.q("fieldManager") or ""
        if len(self.field_manager) > 128:
            raise status.invalid(
                "PatchOptions" if req.method == "PATCH" else "UpdateOptions",
                "meta.k8s.io",
                "",
                [("fieldManager", "FieldValueTooLong", "Too long: may not be more than 128 bytes")],
            )
        self.manager = self.field_manager or _user_agent_manager(req.header("User-Agent"))
        self.subresource = info.subresource
        self.rt = rt
        self.identity = identity


# ------------------------------------------------------------------------------------------------- the server


class ApiServer:
    """Everything between the socket and the store."""

    def __init__(
        self,
        *,
        store: Store,
        clock: SimClock,
        registry: Registry,
        faults: FaultInjector,
        requests: RequestLog,
        verifier: TokenVerifier,
        deny_rules: list[DenyRule],
        after_write: Callable[[], None],
        proxy: ProxyFn | None,
        address: Callable[[], str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.faults = faults
        self.requests = requests
        self.verifier = verifier
        self.deny_rules = deny_rules
        self.after_write = after_write
        self.proxy = proxy
        self.address = address
        self.stopping = threading.Event()
        self._ip_lock = threading.Lock()
        self._next_ip = 10
        self._next_node_port = 30000
        self._openapi_cache: tuple[int, Obj] | None = None
        store.subscribe(self._on_change)

    # ---------------------------------------------------------------------------------------------- entry point
    def handle(self, req: Request) -> Response:
        info = parse_info(req.method, req.path, req.query)
        record_verb = info.verb
        try:
            identity = self._authenticate(req)
            if info.resource_request:
                resp = self._resource_request(req, info, identity)
            else:
                resp = self._non_resource(req, info)
        except ApiError as err:
            resp = self.error(err)
        except Exception as exc:
            logger.exception("internal error serving %s %s", req.method, req.path)
            resp = self.error(status.internal_error(str(exc)))
        self.requests.append(
            RequestRecord(
                method=req.method,
                path=req.path,
                query={k: v[0] for k, v in req.query.items() if v},
                content_type=req.content_type,
                status=0 if resp.reset else resp.status,
                verb=record_verb,
                resource=info.resource,
                namespace=info.namespace,
                name=info.name,
                subresource=info.subresource,
                group=info.group,
                user_agent=req.header("User-Agent"),
                field_manager=req.q("fieldManager") or "",
            )
        )
        return resp

    @staticmethod
    def error(err: ApiError) -> Response:
        return Response(err.code, encode(err.status()), JSON, dict(err.headers))

    def _authenticate(self, req: Request) -> Identity | None:
        if req.path.rstrip("/") in PUBLIC_PATHS and not req.header("Authorization"):
            return None  # anonymous access to public info (a presented token must be valid, as on EKS)
        try:
            return self.verifier.verify(req.header("Authorization"))
        except TokenError as exc:
            logger.debug("refused token: %s", exc)
            raise status.unauthorized() from exc

    # ----------------------------------------------------------------------------------------- non-resource paths
    def _non_resource(self, req: Request, info: Info) -> Response:
        if req.method not in ("GET", "HEAD"):
            raise status.method_not_allowed()
        path = req.path.rstrip("/") or "/"
        if path == "/version":
            return self._json(200, discovery.VERSION_INFO)
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/api":
            return self._json(200, discovery.api_versions(self.address()))
        if path == "/apis":
            return self._json(200, discovery.api_group_list(self.registry))
        if path.startswith("/apis/") and info.group and not info.version:
            group = discovery.api_group(self.registry, info.group)
            if group is None:
                raise status.not_found_path()
            return self._json(200, group)
        if info.version and (path.startswith(("/api/", "/apis/"))):
            doc = discovery.resource_list(self.registry, info.group, info.version)
            if doc is None:
                raise status.not_found_path()
            return self._json(200, doc)
        if path == "/openapi/v3":
            return self._json(200, discovery.openapi_index(self.registry))
        if path.startswith("/openapi/v3/"):
            key = path[len("/openapi/v3/") :].split("/")
            if key[:1] == ["api"] and len(key) == 2:
                doc = discovery.openapi_document(self.registry, "", key[1])
            elif key[:1] == ["apis"] and len(key) == 3:
                doc = discovery.openapi_document(self.registry, key[1], key[2])
            else:
                doc = None
            if doc is None:
                raise status.not_found_path()
            return self._json(200, doc, {"Cache-Control": "public, immutable"})
        raise status.not_found_path()

    @staticmethod
    def _json(code: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(code, encode(obj), JSON, headers or {})

    # ----------------------------------------------------------------------------------------- resource requests
    def _resource_request(self, req: Request, info: Info, identity: Identity | None) -> Response:
        rt = self.registry.get(info.group, info.version, info.resource)
        if rt is None:
            raise status.not_found_path()
        if info.namespace and not rt.namespaced and info.resource != "namespaces":
            raise status.not_found_path()
        is_apply = info.verb == "patch" and req.content_type == "application/apply-patch+yaml"
        fault = self.faults.pick(
            "apply" if is_apply else info.verb, info.resource, info.subresource, info.namespace, info.name
        )
        if fault is not None:
            early = self._fire(fault, rt, info, identity)
            if early is not None:
                return early
        self._authorize(rt, info, identity)
        if info.subresource:
            return self._subresource(req, info, rt, identity)
        if info.verb == "get":
            return self._get(rt, info)
        if info.verb == "list":
            return self._list(req, rt, info)
        if info.verb == "watch":
            return self._watch(req, rt, info)
        if info.verb == "create":
            if info.name:
                raise status.method_not_allowed()
            return self._create(req, rt, info, identity)
        if info.verb == "update":
            return self._update(req, rt, info, identity)
        if info.verb == "patch":
            if not info.name:
                raise status.method_not_allowed()
            return self._patch(req, rt, info, identity)
        if info.verb == "delete":
            return self._delete(req, rt, info)
        if info.verb == "deletecollection":
            return self._delete_collection(req, rt, info)
        raise status.method_not_allowed()

    def _fire(self, fault: Fault, rt: ResourceType, info: Info, identity: Identity | None) -> Response | None:
        if fault.latency > 0:
            time.sleep(fault.latency)
        if fault.reset:
            return Response(0, reset=True)
        code = fault.status
        if code is None:
            return None
        if code == 429:
            raise status.too_many_requests(fault.retry_after if fault.retry_after is not None else 1)
        if code == 403:
            raise _forbidden(rt, info, identity)
        if code == 500:
            err = status.internal_error("injected fault")
        elif code == 503:
            err = status.service_unavailable()
        elif code == 504:
            err = status.gateway_timeout()
        elif code == 404:
            err = status.not_found(info.resource, rt.group, info.name)
        elif code == 409:
            err = status.conflict(info.resource, rt.group, info.name, status.STALE)
        else:
            reasons = {400: "BadRequest", 401: "Unauthorized", 410: "Expired", 422: "Invalid", 502: "InternalError"}
            err = ApiError(code, reasons.get(code, "InternalError"), f"injected fault ({code})")
        if fault.retry_after is not None:
            err.retry_after = fault.retry_after
            err.headers["Retry-After"] = str(fault.retry_after)
        raise err

    def _authorize(self, rt: ResourceType, info: Info, identity: Identity | None) -> None:
        for rule in list(self.deny_rules):
            if rule.matches(info.verb, info.resource, info.subresource, info.namespace, info.name):
                raise _forbidden(rt, info, identity)

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
            return encode({"type": kind, "object": self._out(rt, obj)}) + b"\n"

        def stream(alive: Alive) -> Iterator[bytes]:
            deadline = time.monotonic() + timeout
            items, current = self.store.peek_list(gr, namespace)
            known = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items if wanted(o)}
            if start is None or send_initial:
                position = current
                for o in items:
                    if wanted(o):
                        yield line("ADDED", o)
                if send_initial:
                    mark = {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {
                            "resourceVersion": str(current),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    }
                    yield encode({"type": "BOOKMARK", "object": mark}) + b"\n"
            else:
                position = start
            while not self.stopping.is_set() and alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    events = self.store.events_since(position, min(remaining, 0.5))
                except ResourceVersionTooOldError:
                    oldest = self.store.resource_version
                    err = status.gone(f"too old resource version: {position} ({oldest})")
                    yield encode({"type": "ERROR", "object": err.status()}) + b"\n"
                    return
                for ev in events:
                    position = ev.resource_version
                    if ev.gr != gr:
                        continue
                    out = self._translate(ev, wanted, known)
                    if out is not None:
                        yield line(out, ev.object)

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

    # -------------------------------------------------------------------------------------------- decoding
    def _decode(self, req: Request, *, allow_yaml: bool = True) -> Obj:
        ctype = req.content_type
        if ctype and ctype not in (JSON, "application/yaml", "text/yaml", "*/*"):
            raise status.unsupported_media_type(
                ctype, (JSON, "application/yaml", "application/vnd.kubernetes.protobuf")
            )
        return self._parse(req.body, yaml_ok=allow_yaml and ctype != JSON)

    @staticmethod
    def _parse(raw: bytes, *, yaml_ok: bool) -> Obj:
        if not raw.strip():
            raise status.bad_request("the request body is empty")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            if not yaml_ok:
                raise status.bad_request(f"error decoding JSON: {exc}") from exc
            try:
                data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
            except yaml.YAMLError as yexc:
                raise status.bad_request(f"error converting YAML to JSON: {yexc}") from yexc
        if not isinstance(data, dict):
            raise status.bad_request("Object 'Kind' is missing in request body: expected a JSON object")
        return data

    @staticmethod
    def _check_type(rt: ResourceType, body: Obj) -> None:
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if kind and kind != rt.kind:
            raise status.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {kind}: '
                f"the object provided is unrecognized (wrong kind {kind!r})"
            )
        if api_version and api_version != rt.api_version:
            raise status.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )

    def _place(self, rt: ResourceType, info: Info, body: Obj) -> None:
        """Namespace and name of the body against the URL (400 on mismatch)."""
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise status.bad_request("metadata must be an object")
        if rt.namespaced:
            ns = meta.get("namespace")
            if ns and info.namespace and ns != info.namespace:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            if info.namespace:
                meta["namespace"] = info.namespace
            elif not ns:
                raise status.bad_request("the namespace of the object is required")
        else:
            meta.pop("namespace", None)
        if info.name:
            name = meta.get("name")
            if name and name != info.name:
                raise status.bad_request(
                    f"the name of the object ({name}) does not match the name on the URL ({info.name})"
                )
            meta["name"] = info.name

    def _require_namespace(self, rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and self.store.peek(NAMESPACES, "", namespace) is None:
            raise status.not_found("namespaces", "", namespace)

    # ---------------------------------------------------------------------------------------- write pipeline
    def _prepare(self, rt: ResourceType, cur: Obj | None, new: Obj, ctx: _WriteCtx) -> Obj:
        """Server-owned metadata, status reset, defaulting, generation, validation, managedFields. ``new`` is owned
        (no structure shared with ``cur``)."""
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = new["metadata"]
        now = now_string(self.clock)
        for server_field in ("selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_field, None)
        if cur is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now
            meta.pop("resourceVersion", None)
            if rt.generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rt.status and not ctx.subresource:
                if rt.builtin:
                    new["status"] = _initial_status(rt.kind) or {}
                else:
                    new.pop("status", None)
        else:
            cmeta = cur["metadata"]
            meta["uid"] = cmeta.get("uid")
            meta["creationTimestamp"] = cmeta.get("creationTimestamp")
            meta["resourceVersion"] = cmeta.get("resourceVersion")
            if "generation" in cmeta:
                meta["generation"] = cmeta["generation"]
            else:
                meta.pop("generation", None)
            if rt.status and not ctx.subresource:
                if "status" in cur:
                    new["status"] = clone({"s": cur["status"]})["s"]
                else:
                    new.pop("status", None)
        if rt.builtin:
            _drop_nulls(new)  # a typed decoder drops them (e.g. kubectl's "creationTimestamp": null)
            validation.apply_defaults(rt.kind, new)
            self._kind_hooks(rt, cur, new)
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            new["status"] = _crd_status(new, now, previous=(cur or {}).get("status"))
        if cur is not None and rt.generation and _spec_like(new) != _spec_like(cur):
            meta["generation"] = int(cur["metadata"].get("generation") or 0) + 1
        errs = validation.validate(rt.kind, new, builtin=rt.builtin)
        if cur is not None and rt.builtin:
            errs.extend(validation.validate_update(rt.kind, cur, new))
        if errs:
            raise status.invalid(rt.kind, rt.group, str(meta.get("name") or ""), errs)
        return new

    def _kind_hooks(self, rt: ResourceType, cur: Obj | None, new: Obj) -> None:
        if rt.kind == "Secret" and rt.group == "":
            problem = validation.validate_secret_data(new)
            if problem:
                raise status.bad_request(problem)
            string_data = new.pop("stringData", None)
            if isinstance(string_data, dict):
                data = new.setdefault("data", {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif rt.kind == "Service" and rt.group == "":
            self._service_ips(cur, new)

    def _service_ips(self, cur: Obj | None, new: Obj) -> None:
        spec = new.get("spec")
        if not isinstance(spec, dict):
            return
        old_spec = (cur or {}).get("spec") or {}
        stype = spec.get("type", "ClusterIP")
        if stype == "ExternalName":
            return
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec.setdefault("clusterIPs", old_spec.get("clusterIPs") or [old_spec["clusterIP"]])
        if not spec.get("clusterIP"):
            with self._ip_lock:
                n = self._next_ip
                self._next_ip += 1
            spec["clusterIP"] = f"10.100.{(n // 254) % 256}.{n % 254 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if stype in ("NodePort", "LoadBalancer"):
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in old_spec.get("ports") or []
                if isinstance(p, dict)
            }
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort"):
                    previous = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if previous:
                        p["nodePort"] = previous
                    else:
                        with self._ip_lock:
                            p["nodePort"] = self._next_node_port
                            self._next_node_port += 1
            if stype == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)

    def _managed(self, rt: ResourceType, cur: Obj | None, new: Obj, ctx: _WriteCtx) -> None:
        """Record a non-apply write in managedFields (operation Update)."""
        meta = new["metadata"]
        requested = meta.get("managedFields")
        current = (cur or {}).get("metadata", {}).get("managedFields")
        if requested == [{}]:
            base: list[ssa.Manager] = []
        elif isinstance(requested, list) and requested and requested != current and not ctx.subresource:
            base = ssa.decode_managers(requested)
        else:
            base = ssa.decode_managers(current)
        managers = ssa.update(
            cur or {},
            new,
            base,
            manager=ctx.manager,
            api_version=rt.api_version,
            now=now_string(self.clock),
            schema=ssa.Schema(rt.builtin, rt.kind),
            subresource=ctx.subresource,
        )
        encoded = ssa.encode_managers(managers)
        if encoded:
            meta["managedFields"] = encoded
        else:
            meta.pop("managedFields", None)

    def _commit(self, rt: ResourceType, cur: Obj | None, new: Obj, ctx: _WriteCtx) -> tuple[Obj, bool]:
        """Store ``new`` unless it equals ``cur``; returns (object, written). Raises CommitConflictError."""
        final = _normalize(new)
        if cur is not None and final == cur:
            return cur, False
        if ctx.dry_run:
            return final, False
        meta = final["metadata"]
        stored = self.store.commit(rt.gr, final, expect=None if cur is None else str(meta.get("resourceVersion")))
        self._after_commit(rt, cur, stored)
        return stored, True

    def _after_commit(self, rt: ResourceType, cur: Obj | None, obj: Obj) -> None:
        if rt.gr == CRD_GR:
            self.registry.register_crd(obj)
            self._openapi_cache = None
        elif rt.gr == NAMESPACES and cur is None:
            self._ensure_default_sa(obj["metadata"]["name"])

    def _ensure_default_sa(self, namespace: str) -> None:
        if self.store.peek(SERVICEACCOUNTS, namespace, "default") is not None:
            return
        sa = {
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {
                "name": "default",
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_string(self.clock),
            },
        }
        with contextlib.suppress(CommitConflictError):
            self.store.commit(SERVICEACCOUNTS, sa, expect=None)

    def _done(self, ctx: _WriteCtx, written: bool) -> None:
        if written and not ctx.dry_run:
            self.after_write()

    # --------------------------------------------------------------------------------------------------- create
    def _create(self, req: Request, rt: ResourceType, info: Info, identity: Identity | None) -> Response:
        ctx = _WriteCtx(req, rt, info, identity)
        body = self._decode(req)
        self._check_type(rt, body)
        self._place(rt, info, body)
        meta = body["metadata"]
        if meta.get("resourceVersion"):
            raise status.bad_request("resourceVersion should not be set on objects to be created")
        generate = meta.get("generateName")
        if rt.namespaced:
            self._require_namespace(rt, meta["namespace"])
        for _ in range(MAX_RETRIES):
            new = clone(body)
            if not new["metadata"].get("name") and generate:
                suffix = "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                new["metadata"]["name"] = f"{generate}{suffix}"
            self._prepare(rt, None, new, ctx)
            self._managed(rt, None, new, ctx)
            try:
                stored, written = self._commit(rt, None, new, ctx)
            except CommitConflictError as exc:
                if generate and not body["metadata"].get("name"):
                    continue
                raise status.already_exists(rt.plural, rt.group, new["metadata"]["name"]) from exc
            self._done(ctx, written)
            return self._respond(201, rt, stored)
        raise status.already_exists(rt.plural, rt.group, str(generate))

    # --------------------------------------------------------------------------------------------------- update
    def _update(self, req: Request, rt: ResourceType, info: Info, identity: Identity | None) -> Response:
        ctx = _WriteCtx(req, rt, info, identity)
        body = self._decode(req)
        self._check_type(rt, body)
        self._place(rt, info, body)
        wanted_rv = body["metadata"].get("resourceVersion")
        ns = info.namespace if rt.namespaced else ""
        for _ in range(MAX_RETRIES):
            cur = self.store.peek(rt.gr, ns, info.name)
            if cur is None:
                raise status.not_found(rt.plural, rt.group, info.name)
            if wanted_rv and wanted_rv != cur["metadata"].get("resourceVersion"):
                raise status.conflict(rt.plural, rt.group, info.name, status.STALE)
            new = clone(body)
            stored = self._write(rt, info, cur, new, ctx, stale_on_race=bool(wanted_rv))
            if stored is None:
                continue
            return self._respond(200, rt, stored)
        raise status.conflict(rt.plural, rt.group, info.name, status.STALE)

    def _write(
        self, rt: ResourceType, info: Info, cur: Obj, new: Obj, ctx: _WriteCtx, *, stale_on_race: bool
    ) -> Obj | None:
        """Prepare and store ``new`` over ``cur``; ``None`` when another writer got in between (read again and
        retry), or 409 Conflict when the caller pinned a resourceVersion (``stale_on_race``)."""
        self._prepare(rt, cur, new, ctx)
        self._managed(rt, cur, new, ctx)
        try:
            stored, written = self._commit(rt, cur, new, ctx)
        except CommitConflictError:
            if stale_on_race:
                raise status.conflict(rt.plural, rt.group, info.name, status.STALE) from None
            return None
        self._done(ctx, written)
        return stored

    # ---------------------------------------------------------------------------------------------------- patch
    def _patch_fn(self, req: Request, rt: ResourceType) -> Callable[[Obj], Any]:
        ctype = req.content_type
        if ctype == "application/json-patch+json":
            try:
                ops = json.loads(req.body or b"null")
            except ValueError as exc:
                raise status.bad_request(f"error decoding patch: {exc}") from exc
            if not isinstance(ops, list):
                raise status.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            return lambda cur: patching.json_patch(cur, ops)
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            try:
                doc = json.loads(req.body or b"null")
            except ValueError as exc:
                raise status.bad_request(f"error decoding patch: {exc}") from exc
            if not isinstance(doc, dict):
                raise status.bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
            if ctype == "application/merge-patch+json":
                return lambda cur: patching.merge_patch(cur, doc)
            if not rt.builtin:
                raise status.unsupported_media_type(
                    ctype,
                    ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"),
                )
            return lambda cur: patching.strategic_merge_patch(cur, doc, kind=rt.kind)
        raise status.unsupported_media_type(ctype)

    def _run_patch(self, fn: Callable[[Obj], Any], cur: Obj) -> Obj:
        try:
            out = fn(cur)
        except patching.PatchError as exc:
            if exc.malformed:
                raise status.bad_request(str(exc)) from exc
            raise ApiError(422, "Invalid", str(exc)) from exc
        if not isinstance(out, dict):
            raise ApiError(422, "Invalid", "the patch did not produce an object")
        return out

    def _patch(self, req: Request, rt: ResourceType, info: Info, identity: Identity | None) -> Response:
        ctx = _WriteCtx(req, rt, info, identity)
        if req.content_type == "application/apply-patch+yaml":
            return self._apply(req, rt, info, ctx)
        fn = self._patch_fn(req, rt)
        ns = info.namespace if rt.namespaced else ""
        for _ in range(MAX_RETRIES):
            cur = self.store.peek(rt.gr, ns, info.name)
            if cur is None:
                raise status.not_found(rt.plural, rt.group, info.name)
            patched = self._run_patch(fn, cur)
            new = clone(patched)
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                raise ApiError(422, "Invalid", "metadata must be an object")
            if meta.get("name") != info.name:
                raise status.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({info.name})"
                )
            if rt.namespaced and meta.get("namespace", ns) != ns:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            wanted_rv = meta.get("resourceVersion")
            if wanted_rv and wanted_rv != cur["metadata"].get("resourceVersion"):
                raise status.conflict(rt.plural, rt.group, info.name, status.STALE)
            stored = self._write(rt, info, cur, new, ctx, stale_on_race=False)
            if stored is None:
                continue
            return self._respond(200, rt, stored)
        raise status.conflict(rt.plural, rt.group, info.name, status.STALE)

    # ---------------------------------------------------------------------------------------- server-side apply
    def _apply(self, req: Request, rt: ResourceType, info: Info, ctx: _WriteCtx) -> Response:
        if not ctx.field_manager:
            raise status.invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [("fieldManager", "FieldValueRequired", "Required value: is required for apply patch")],
            )
        force = req.flag("force")
        config = self._parse(req.body, yaml_ok=True)
        if not config.get("apiVersion") or not config.get("kind"):
            raise status.bad_request("apiVersion and kind must be set in an apply patch (Object 'Kind' is missing)")
        if config["apiVersion"] != rt.api_version:
            raise status.bad_request(
                f"Incorrect version specified in apply patch. Specified patch version: {config['apiVersion']}, "
                f"expected: {rt.api_version}"
            )
        if config["kind"] != rt.kind:
            raise status.bad_request(
                f"Incorrect kind specified in apply patch. Specified patch kind: {config['kind']}, expected: {rt.kind}"
            )
        self._place(rt, info, config)
        cmeta = config["metadata"]
        if cmeta.get("managedFields") is not None:
            raise status.bad_request("metadata.managedFields must be nil")
        wanted_rv = cmeta.pop("resourceVersion", None)
        for server_field in ("uid", "creationTimestamp", "generation", "selfLink"):
            cmeta.pop(server_field, None)
        ns = info.namespace if rt.namespaced else ""
        if rt.namespaced:
            self._require_namespace(rt, ns)
        schema = ssa.Schema(rt.builtin, rt.kind)
        ignore = frozenset({"status"}) if rt.status else frozenset()
        for _ in range(MAX_RETRIES):
            cur = self.store.peek(rt.gr, ns, info.name)
            if wanted_rv and (cur is None or wanted_rv != cur["metadata"].get("resourceVersion")):
                if cur is None:
                    raise status.not_found(rt.plural, rt.group, info.name)
                raise status.conflict(rt.plural, rt.group, info.name, status.STALE)
            live = cur or {}
            managers = ssa.decode_managers(live.get("metadata", {}).get("managedFields"))
            try:
                merged, managers = ssa.apply(
                    live,
                    config,
                    managers,
                    manager=ctx.field_manager,
                    api_version=rt.api_version,
                    now=now_string(self.clock),
                    schema=schema,
                    force=force,
                    ignore=ignore,
                )
            except ssa.ConflictError as exc:
                raise ApiError(
                    409,
                    "Conflict",
                    str(exc),
                    causes=[
                        status.Cause("FieldManagerConflict", f"conflict with {c.manager.describe()}", c.field())
                        for c in exc.conflicts
                    ],
                ) from exc
            new = clone(merged)
            new.setdefault("metadata", {})["name"] = info.name
            if rt.namespaced:
                new["metadata"]["namespace"] = ns
            self._prepare(rt, cur, new, ctx)
            encoded = ssa.encode_managers(managers)
            if encoded:
                new["metadata"]["managedFields"] = encoded
            else:
                new["metadata"].pop("managedFields", None)
            try:
                stored, written = self._commit(rt, cur, new, ctx)
            except CommitConflictError:
                continue
            self._done(ctx, written)
            return self._respond(201 if cur is None else 200, rt, stored)
        raise status.conflict(rt.plural, rt.group, info.name, status.STALE)

    # --------------------------------------------------------------------------------------------------- delete
    def _delete_options(self, req: Request) -> Obj:
        opts: Obj = {}
        if req.body.strip():
            try:
                parsed = json.loads(req.body)
            except ValueError as exc:
                raise status.bad_request(f"error decoding DeleteOptions: {exc}") from exc
            if isinstance(parsed, dict):
                opts = parsed
        policy = req.q("propagationPolicy") or opts.get("propagationPolicy")
        if req.flag("orphanDependents") or opts.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise status.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    (
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
                    )
                ],
            )
        dry = req.q("dryRun") or ("All" if "All" in (opts.get("dryRun") or []) else None)
        if dry not in (None, "", "All"):
            raise status.bad_request(f'Unsupported dryRun value "{dry}": supported values: "All"')
        return {
            "policy": policy or "Background",
            "dry_run": dry == "All",
            "preconditions": opts.get("preconditions") or {},
        }

    def _delete(self, req: Request, rt: ResourceType, info: Info) -> Response:
        opts = self._delete_options(req)
        ns = info.namespace if rt.namespaced else ""
        cur = self.store.peek(rt.gr, ns, info.name)
        if cur is None:
            raise status.not_found(rt.plural, rt.group, info.name)
        if rt.gr == NAMESPACES and info.name in PROTECTED_NAMESPACES:
            raise status.forbidden(
                rt.plural, "", info.name, f'namespaces "{info.name}" is forbidden: this namespace may not be deleted'
            )
        pre = opts["preconditions"]
        meta = cur["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise status.conflict(
                rt.plural,
                rt.group,
                info.name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise status.conflict(
                rt.plural,
                rt.group,
                info.name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        if opts["dry_run"]:
            return self._deleted_response(rt, cur)
        removed = self._remove(rt, cur, opts["policy"])
        if removed is None:
            raise status.not_found(rt.plural, rt.group, info.name)
        self.after_write()
        return self._deleted_response(rt, removed)

    def _deleted_response(self, rt: ResourceType, obj: Obj) -> Response:
        if rt.kind in ("Pod", "Namespace", "CustomResourceDefinition") and rt.builtin:
            return self._respond(200, rt, obj)
        meta = obj["metadata"]
        return Response(200, encode(status.success(meta["name"], rt.group, rt.plural, str(meta.get("uid", "")))))

    def _remove(self, rt: ResourceType, cur: Obj, policy: str) -> Obj | None:
        meta = cur["metadata"]
        uid = str(meta.get("uid") or "")
        if policy == "Orphan" and uid:
            self._orphan(uid)
        return self.store.remove_if(rt.gr, meta.get("namespace", "") or "", meta["name"], uid=uid or None)

    def _orphan(self, uid: str) -> None:
        for gr, dep in self.store.dependents({uid}):
            for _ in range(MAX_RETRIES):
                current = self.store.peek(gr, dep["metadata"].get("namespace", ""), dep["metadata"]["name"])
                if current is None:
                    break
                new = clone(current)
                refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                if refs:
                    new["metadata"]["ownerReferences"] = refs
                else:
                    new["metadata"].pop("ownerReferences", None)
                try:
                    self.store.commit(gr, new, expect=current["metadata"].get("resourceVersion"))
                    break
                except CommitConflictError:
                    continue

    def _delete_collection(self, req: Request, rt: ResourceType, info: Info) -> Response:
        if "deletecollection" not in rt.verbs:
            raise status.method_not_allowed()
        opts = self._delete_options(req)
        labels, fields = self._selectors(req, rt)
        items, rv = self.store.peek_list(rt.gr, info.namespace if rt.namespaced and info.namespace else None)
        chosen = [o for o in items if matches(labels, o["metadata"].get("labels")) and fields_match(fields, o)]
        deleted: list[Obj] = []
        for obj in chosen:
            if opts["dry_run"]:
                deleted.append(obj)
                continue
            removed = self._remove(rt, obj, opts["policy"])
            if removed is not None:
                deleted.append(removed)
        if deleted and not opts["dry_run"]:
            self.after_write()
        items_out = [self._out(rt, o) for o in deleted]
        body = {
            "kind": rt.list_kind_name,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv)},
            "items": items_out,
        }
        return Response(200, encode(body))

    # ------------------------------------------------------------------------------------------ garbage collector
    def _on_change(self, event: Event) -> None:
        """Store listener: dependents of a deleted owner, and the contents of a deleted namespace, go too."""
        if event.type != "DELETED":
            return
        meta = event.object["metadata"]
        if event.gr == NAMESPACES:
            for gr, obj in self.store.namespaced_in(meta["name"]):
                self.store.remove_if(gr, meta["name"], obj["metadata"]["name"], uid=obj["metadata"].get("uid"))
            return
        if event.gr == CRD_GR:
            for t in self.registry.unregister_crd(meta["name"]):
                for obj in self.store.peek_list(t.gr)[0]:
                    m = obj["metadata"]
                    self.store.remove_if(t.gr, m.get("namespace", "") or "", m["name"], uid=m.get("uid"))
            self._openapi_cache = None
            return
        uid = meta.get("uid")
        if not uid:
            return
        for gr, dep in self.store.dependents({str(uid)}):
            refs = dep["metadata"].get("ownerReferences") or []
            if all(self._owner_gone(r, dep) for r in refs):
                m = dep["metadata"]
                self.store.remove_if(gr, m.get("namespace", "") or "", m["name"], uid=m.get("uid"))

    def _owner_gone(self, ref: Mapping[str, Any], dependent: Obj) -> bool:
        api_version = str(ref.get("apiVersion", ""))
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        kind = ref.get("kind")
        for t in self.registry.all():
            if t.group == group and t.kind == kind:
                ns = dependent["metadata"].get("namespace", "") if t.namespaced else ""
                owner = self.store.peek(t.gr, ns or "", str(ref.get("name", "")))
                return owner is None or owner["metadata"].get("uid") != ref.get("uid")
        return True

    # ---------------------------------------------------------------------------------------------- subresources
    def _subresource(self, req: Request, info: Info, rt: ResourceType, identity: Identity | None) -> Response:
        sub = info.subresource
        if sub == "status" and rt.status:
            return self._status(req, info, rt, identity)
        if sub == "scale" and rt.scale is not None:
            return self._scale(req, info, rt, identity)
        if sub == "proxy" and rt.proxy:
            return self._proxy(req, info)
        raise status.not_found_path()

    def _status(self, req: Request, info: Info, rt: ResourceType, identity: Identity | None) -> Response:
        ns = info.namespace if rt.namespaced else ""
        if info.verb == "get":
            return self._get(rt, info)
        if info.verb not in ("update", "patch"):
            raise status.method_not_allowed()
        ctx = _WriteCtx(req, rt, info, identity)
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
        selector = _get_path(obj, paths.selector) if paths.selector else None
        if paths.selector_struct:
            selector_text = label_selector_to_string(selector) if isinstance(selector, Mapping) else ""
        else:
            selector_text = str(selector or "")
        scale_meta = {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        }
        status_obj: Obj = {"replicas": int(_get_path(obj, paths.status_replicas) or 0)}
        if selector_text:
            status_obj["selector"] = selector_text
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": scale_meta,
            "spec": {"replicas": int(_get_path(obj, paths.spec_replicas) or 0)},
            "status": status_obj,
        }

    def _scale(self, req: Request, info: Info, rt: ResourceType, identity: Identity | None) -> Response:
        assert rt.scale is not None
        ns = info.namespace if rt.namespaced else ""
        if info.verb == "get":
            cur = self.store.peek(rt.gr, ns, info.name)
            if cur is None:
                raise status.not_found(rt.plural, rt.group, info.name)
            return Response(200, encode(self._to_scale(rt, cur)))
        if info.verb not in ("update", "patch"):
            raise status.method_not_allowed()
        ctx = _WriteCtx(req, rt, info, identity)
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
            _set_path(new, rt.scale.spec_replicas, replicas)
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
