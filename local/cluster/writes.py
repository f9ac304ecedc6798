"""Write verbs of the API server: create, update, patch, server-side apply, delete, deletecollection.

Writes follow the real server's pipeline: decode, namespace/name checks, patch or apply, server-owned metadata
(uid, creationTimestamp, generation), status reset for resources with a status subresource, defaulting,
validation, managedFields, optimistic concurrency on resourceVersion (compare-and-swap in the store, retried for
patches), then the controllers reconcile before the answer goes out. Deleting an owner removes its dependents
(the garbage collector, synchronous).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from local.cluster import patching, ssa, status, validation
from local.cluster.access import User
from local.cluster.auth import forbidden_message
from local.cluster.rbac import Attributes, Authorizer
from local.cluster.reads import ReadVerbs
from local.cluster.resources import CRD_GR, ResourceType
from local.cluster.selectors import fields_match, matches
from local.cluster.status import ApiError
from local.cluster.store import CommitConflictError, Event, GroupResource
from local.cluster.wire import JSON, MAX_RETRIES, Info, Obj, Request, Response, YamlLoader, clone, encode, now_string

NAMESPACES = GroupResource("", "namespaces")
SERVICEACCOUNTS = GroupResource("", "serviceaccounts")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


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


# Kinds whose DELETE answers with the object rather than a Status: the registries with ReturnDeletedObject (pods,
# services, service accounts, PVCs, storage classes) and those a finalizer keeps (namespaces, CRDs).
RETURNS_DELETED_OBJECT = frozenset(
    {
        "Pod",
        "Service",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "StorageClass",
        "Namespace",
        "CustomResourceDefinition",
    }
)


def _initial_status(kind: str) -> Obj | None:
    if kind in ("Pod", "PersistentVolumeClaim"):
        return {"phase": "Pending"}
    if kind == "Namespace":
        return {"phase": "Active"}
    if kind == "Service":
        return {"loadBalancer": {}}
    return None


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


class WriteCtx:
    """Per-write options from the query string."""

    def __init__(self, req: Request, rt: ResourceType, info: Info, identity: User | None) -> None:
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


class WriteVerbs(ReadVerbs):
    """Decoding, the write pipeline and the write verbs."""

    authorizer: Authorizer

    after_write: Callable[[], None]
    _ip_lock: threading.Lock
    _next_ip: int
    _next_node_port: int
    _openapi_cache: tuple[int, Obj] | None

    # -------------------------------------------------------------------------------------------- decoding
    def _decode(self, req: Request, *, allow_yaml: bool = True) -> Obj:
        ctype = req.content_type
        if ctype and ctype not in (JSON, "application/yaml", "text/yaml", "*/*"):
            raise status.unsupported_media_type(ctype, (JSON, "application/yaml"))
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
                data = yaml.load(raw, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass
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
    def _prepare(self, rt: ResourceType, cur: Obj | None, new: Obj, ctx: WriteCtx) -> Obj:
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

    def _managed(self, rt: ResourceType, cur: Obj | None, new: Obj, ctx: WriteCtx) -> None:
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

    def _commit(self, rt: ResourceType, cur: Obj | None, new: Obj, ctx: WriteCtx) -> tuple[Obj, bool]:
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

    def _done(self, ctx: WriteCtx, written: bool) -> None:
        if written and not ctx.dry_run:
            self.after_write()

    # --------------------------------------------------------------------------------------------------- create
    def _create(self, req: Request, rt: ResourceType, info: Info, identity: User | None) -> Response:
        ctx = WriteCtx(req, rt, info, identity)
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
    def _update(self, req: Request, rt: ResourceType, info: Info, identity: User | None) -> Response:
        ctx = WriteCtx(req, rt, info, identity)
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
        self, rt: ResourceType, info: Info, cur: Obj, new: Obj, ctx: WriteCtx, *, stale_on_race: bool
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

    def _authorize_create(self, info: Info, ctx: WriteCtx) -> None:
        """An apply that creates the object needs ``create`` too (kube-apiserver's ``createAuthorizerAttributes``)."""
        if ctx.identity is None:
            return
        attrs = Attributes(
            verb="create",
            resource_request=True,
            group=info.group,
            resource=info.resource,
            namespace=info.namespace,
            name=info.name,
        )
        if not self.authorizer.allowed(ctx.identity, attrs):
            message = forbidden_message(
                ctx.identity.name,
                "create",
                resource=info.resource,
                subresource="",
                group=info.group,
                namespace=info.namespace,
                name=info.name,
            )
            raise status.forbidden(info.resource, info.group, info.name, message)

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

    def _patch(self, req: Request, rt: ResourceType, info: Info, identity: User | None) -> Response:
        ctx = WriteCtx(req, rt, info, identity)
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
    def _apply(self, req: Request, rt: ResourceType, info: Info, ctx: WriteCtx) -> Response:
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
            if cur is None:
                self._authorize_create(info, ctx)
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
        if rt.kind in RETURNS_DELETED_OBJECT and rt.builtin:
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
