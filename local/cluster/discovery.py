"""Discovery documents (``/version``, ``/api``, ``/apis``, resource lists) and a minimal OpenAPI v3.

``/api`` and ``/apis`` answer in the aggregated form (``apidiscovery.k8s.io/v2`` ``APIGroupDiscoveryList``: every
group version's resources in one document) when the request's ``Accept`` asks for it, as Kubernetes 1.30+ does
(client-go and kubectl 1.32 ask first); otherwise, and for ``v2beta1`` (removed in 1.33 and not served here), the
legacy ``APIVersions``/``APIGroupList``.

The OpenAPI v3 documents carry one path per resource with its operations, the
``x-kubernetes-group-version-kind`` extension and the query parameters (``fieldValidation``, ``fieldManager``,
``force``, ``dryRun``): what kubectl's ``QueryParamVerifierV3`` looks for before it sends ``fieldValidation``
instead of validating client-side (which would need ``/openapi/v2`` as protobuf). Patch operations list no
strategic-merge request body, so client-side ``kubectl apply`` falls back to its compiled-in types. There are no
component schemas (``kubectl explain`` does not work). ``/openapi/v2`` answers 404.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from local.cluster import schemas
from local.cluster.resources import Registry, ResourceType

Obj = dict[str, Any]

KUBE_VERSION = "v1.32.5"
VERSION_INFO: Obj = {
    "major": "1",
    "minor": "32",
    "emulationMajor": "1",
    "emulationMinor": "32",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "31",
    "gitVersion": f"{KUBE_VERSION}-eks-5d4a308",
    "gitCommit": "5d4a3087c2d8e5d0d4c22b1c4a3cbbd0a9f4a8d1",
    "gitTreeState": "clean",
    "buildDate": "2025-05-15T00:00:00Z",
    "goVersion": "go1.23.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group(name: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> Obj:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, vs) for g, vs in registry.groups()],
    }


def api_group(registry: Registry, group: str) -> Obj | None:
    for g, vs in registry.groups():
        if g == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(g, vs)}
    return None


AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether an ``Accept`` header asks for (JSON) aggregated discovery v2 before anything the server prefers."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        fields = dict(p.split("=", 1) for p in params if "=" in p)
        if media == "application/json" and fields.get("as") == "APIGroupDiscoveryList":
            if fields.get("g") == "apidiscovery.k8s.io" and fields.get("v") == "v2":
                return True
            continue
        if media in ("application/json", "*/*", "application/*"):
            return False
    return False


def _aggregated_resource(t: ResourceType) -> Obj:
    out: Obj = {
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        out["shortNames"] = list(t.short_names)
    if t.categories:
        out["categories"] = list(t.categories)
    subresources = []
    for entry in t.discovery()[1:]:
        kind = {"group": entry.get("group", t.group), "version": entry.get("version", t.version), "kind": entry["kind"]}
        subresources.append(
            {"subresource": entry["name"].split("/", 1)[1], "responseKind": kind, "verbs": list(entry["verbs"])}
        )
    if subresources:
        out["subresources"] = subresources
    return out


def _aggregated_versions(registry: Registry, group: str, versions: list[str]) -> list[Obj]:
    return [
        {
            "version": v,
            "resources": [
                _aggregated_resource(t) for t in sorted(registry.in_group_version(group, v), key=lambda t: t.plural)
            ],
            "freshness": "Current",
        }
        for v in versions
    ]


def aggregated(registry: Registry, *, core: bool) -> Obj:
    """``/api`` (``core``) or ``/apis`` as an ``APIGroupDiscoveryList``."""
    if core:
        items = [{"metadata": {"creationTimestamp": None}, "versions": _aggregated_versions(registry, "", ["v1"])}]
    else:
        items = [
            {"metadata": {"name": g, "creationTimestamp": None}, "versions": _aggregated_versions(registry, g, vs)}
            for g, vs in registry.groups()
        ]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for t in sorted(types, key=lambda t: t.plural):
        resources.extend(t.discovery())
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# ------------------------------------------------------------------------------------------------- OpenAPI v3

_QUERY_PARAMS = {
    "get": ("pretty",),
    "list": (
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ),
    "post": ("dryRun", "fieldManager", "fieldValidation", "pretty"),
    "put": ("dryRun", "fieldManager", "fieldValidation", "pretty"),
    "patch": ("dryRun", "fieldManager", "fieldValidation", "force", "pretty"),
    "delete": ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy", "pretty"),
}
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _params(names: tuple[str, ...]) -> list[Obj]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _op(t: ResourceType, action: str, method: str, op_id: str) -> Obj:
    op: Obj = {
        "operationId": op_id,
        "parameters": _params(_QUERY_PARAMS[method if method != "get" or action != "list" else "list"]),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
    }
    if method == "patch":
        op["requestBody"] = {"content": {ct: {"schema": {"type": "object"}} for ct in _PATCH_TYPES}}
    elif method in ("post", "put"):
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return op


def openapi_paths(t: ResourceType) -> dict[str, Obj]:
    prefix = f"/apis/{t.group}/{t.version}" if t.group else f"/api/{t.version}"
    scope = f"{prefix}/namespaces/{{namespace}}" if t.namespaced else prefix
    name = t.kind
    collection = f"{scope}/{t.plural}"
    item = f"{collection}/{{name}}"
    paths: dict[str, Obj] = {
        collection: {
            "get": _op(t, "list", "get", f"list{name}"),
            "post": _op(t, "post", "post", f"create{name}"),
        },
        item: {
            "get": _op(t, "get", "get", f"read{name}"),
            "put": _op(t, "put", "put", f"replace{name}"),
            "patch": _op(t, "patch", "patch", f"patch{name}"),
            "delete": _op(t, "delete", "delete", f"delete{name}"),
        },
    }
    if t.status:
        paths[f"{item}/status"] = {
            "get": _op(t, "get", "get", f"read{name}Status"),
            "put": _op(t, "put", "put", f"replace{name}Status"),
            "patch": _op(t, "patch", "patch", f"patch{name}Status"),
        }
    return paths


def openapi_document(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Obj] = {}
    for t in sorted(types, key=lambda t: t.plural):
        paths.update(openapi_paths(t))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas.for_group_version(group, version)},
    }


def openapi_index(registry: Registry) -> Obj:
    """``/openapi/v3``: one entry per group version, its URL carrying a content hash (clients cache by it)."""
    entries: dict[str, Obj] = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in registry.groups() for v in vs]
    for group, version in gvs:
        doc = openapi_document(registry, group, version)
        if doc is None:
            continue
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        stamp = {"paths": doc["paths"], "schemas": schemas.SCHEMA_VERSION}  # the schemas are fixed per version
        digest = hashlib.sha512(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:64].upper()
        entries[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": entries}
