"""Drift between a release's objects and the cluster, by ownership and by server-side dry run; and reclaiming it.

Two views, merged per object and field path:

* **Ownership** (``metadata.managedFields``): every field another field manager wrote (``kubectl edit``/``scale``/
  ``apply``, a console, an operator) that differs from the release or that the release does not have — an env var
  added by ``kubectl edit`` counts, although a server-side apply of the release would keep it (it is not ours to
  remove). Not drift: fields our own managers own (and the administrator's bootstrap apply, field manager
  ``cluster-bootstrap``), writes to ``status`` (controllers), ``spec.replicas`` of a workload an HPA of the release
  scales, the annotations controllers and labels the API server write, and a foreign write of the release's own
  value.
* **Server-side dry run** (``dryRun=All`` of the release, :func:`controlplane.kube.apply.diff_objects`): every field
  of ours that applying would change back.

Objects of the release missing from the cluster are ``deleted``; objects of the release's namespaced kinds in its
namespaces that the release does not have (and that no controller owns: no ownerReferences) are ``added``. Only
reads and dry-run patches: detection needs ``get``/``list`` and ``patch`` (a dry run is authorized like the write).

The release's add-ons (:func:`detect_addons`) are compared by listing only: ownership as above, plus the ledger's
record of the last apply (``found_by="record"``: uid, generation or resourceVersion moved, or a label/annotation we
set is gone: what the deploy's apply checks before skipping an unchanged object,
:func:`controlplane.kube.apply.change_since_applied`). No dry run: the drift identity may only ``list`` the add-ons'
kinds (kube-system is not ours to patch, and a dry-run patch of a Role would need RBAC's ``escalate``), and no
``added`` objects (their namespaces hold what others deploy).

:func:`reclaim` removes the foreign fields the release does not have (one guarded JSON patch per object); the next
forced apply of the release restores the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from controlplane.kube.apply import FIELD_MANAGER, HANDOVER_FIELD_MANAGER, change_since_applied, diff_objects
from controlplane.kube.client import ApiClient, KubeClient, dynamic_client, list_objects, request_json
from controlplane.kube.diff import RELEASE_ANNOTATION
from controlplane.kube.errors import translate_errors
from controlplane.models.drift import DriftFinding, DriftKind
from controlplane.models.kube import AppliedObject, ObjectDiff, ObjectRef
from controlplane.observability import logger
from controlplane.render import hpa_targets

RECLAIM_FIELD_MANAGER = f"{FIELD_MANAGER}-reclaim"
BOOTSTRAP_FIELD_MANAGER = "cluster-bootstrap"
"""The administrator's one-time apply of manifests/cluster-bootstrap (its namespace and RBAC): not drift."""
OUR_MANAGERS = frozenset(
    {FIELD_MANAGER, HANDOVER_FIELD_MANAGER, RECLAIM_FIELD_MANAGER, BOOTSTRAP_FIELD_MANAGER, "before-first-apply"}
)
CONTROLLER_ANNOTATIONS = frozenset({"deployment.kubernetes.io/revision", RELEASE_ANNOTATION})
# Objects every namespace has that nobody deploys: never "added" drift.
SYSTEM_OBJECTS = frozenset({("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")})

Keys = tuple[str, ...]
"""A field's path as managedFields spells it: ``("f:spec", "f:template", ..., 'k:{"name":"app"}', "f:image")``."""

__all__ = [
    "RECLAIM_FIELD_MANAGER",
    "detect",
    "detect_addons",
    "field_path",
    "foreign_fields",
    "json_pointer",
    "reclaim",
]


# -- managedFields paths ----------------------------------------------------------------------------------------------
def field_path(keys: Keys) -> str:
    """``spec.template.spec.containers[name=app].image`` for managedFields keys (the diff's naming)."""
    out = ""
    for key in keys:
        kind, _, rest = key.partition(":")
        if kind == "f":
            out = f"{out}.{rest}" if out else rest
        elif kind == "k":
            item = json.loads(rest)
            out += "[" + ",".join(f"{k}={v}" for k, v in item.items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out


def _step(value: Any, key: str) -> tuple[bool, Any]:
    """(found, value) one managedFields key down from ``value``."""
    kind, _, rest = key.partition(":")
    if kind == "f" and isinstance(value, Mapping):
        return (rest in value), value.get(rest)
    if kind == "k" and isinstance(value, list):
        wanted = json.loads(rest)
        for item in value:
            if isinstance(item, Mapping) and all(item.get(k) == v for k, v in wanted.items()):
                return True, item
        return False, None
    if kind == "v" and isinstance(value, list):
        wanted = json.loads(rest)
        return (wanted in value), wanted
    if kind == "i" and isinstance(value, list) and rest.isdigit() and int(rest) < len(value):
        return True, value[int(rest)]
    return False, None


def value_at(obj: Any, keys: Keys) -> tuple[bool, Any]:
    """(found, value) of the field ``keys`` names in ``obj``."""
    value = obj
    for key in keys:
        found, value = _step(value, key)
        if not found:
            return False, None
    return True, value


def _leaves(node: Mapping[str, Any], prefix: Keys = ()) -> Iterator[Keys]:
    """The fields a managedFields entry owns: leaves, and list items / map entries owned whole (``"."``)."""
    if not node or "." in node:
        if prefix:
            yield prefix
        return
    for key, child in node.items():
        yield from _leaves(child if isinstance(child, Mapping) else {}, (*prefix, key))


SERVER_LABELS = frozenset({"kubernetes.io/metadata.name"})
"""Labels the API server sets itself (a namespace's name)."""


def _ignored(keys: Keys, ref: ObjectRef, hpa: frozenset[tuple[str, str, str]]) -> bool:
    if keys[0] == "f:status":
        return True
    if keys[:2] == ("f:metadata", "f:labels") and len(keys) > 2 and keys[2][2:] in SERVER_LABELS:
        return True
    if keys[:2] == ("f:metadata", "f:annotations") and len(keys) > 2 and keys[2][2:] in CONTROLLER_ANNOTATIONS:
        return True
    return keys == ("f:spec", "f:replicas") and (ref.namespace or "", ref.kind, ref.name) in hpa


def _foreign_entries(live: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], Keys]]:
    """(managedFields entry, field) for every field a foreign manager owns outside ``status``."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") in OUR_MANAGERS or entry.get("subresource") == "status":
            continue
        for keys in _leaves(entry.get("fieldsV1") or {}):
            yield entry, keys


def foreign_fields(
    live: Mapping[str, Any], desired: Mapping[str, Any], hpa: frozenset[tuple[str, str, str]]
) -> list[tuple[Keys, DriftFinding]]:
    """The fields of ``live`` other managers wrote that differ from ``desired`` (or that it does not have)."""
    ref = ObjectRef.of(desired)
    found: dict[Keys, DriftFinding] = {}
    for entry, keys in _foreign_entries(live):
        if keys in found or _ignored(keys, ref, hpa):
            continue
        in_live, live_value = value_at(live, keys)
        in_desired, desired_value = value_at(desired, keys)
        if not in_live or (in_desired and desired_value == live_value):
            continue
        found[keys] = DriftFinding(
            ref=ref,
            kind=DriftKind.CHANGED if in_desired else DriftKind.ADDED,
            path=field_path(keys),
            manager=str(entry.get("manager") or ""),
            operation=str(entry.get("operation") or "") or None,
            live=_json(live_value),
            desired=_json(desired_value) if in_desired else None,
        )
    return list(found.items())


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _owner_of(live: Mapping[str, Any], path: str) -> tuple[str | None, str | None]:
    """The foreign manager owning ``path`` (or a field under it) in ``live``, if any."""
    for entry, keys in _foreign_entries(live):
        owned = field_path(keys)
        if owned == path or owned.startswith(path + ".") or path.startswith(owned + "."):
            return str(entry.get("manager")), str(entry.get("operation") or "") or None
    return None, None


# -- detection ------------------------------------------------------------------------------------------------------
class _Cluster:
    """Live objects by reference, listed once per (type, namespace) without a label selector."""

    def __init__(self, dyn: KubeClient) -> None:
        self.dyn = dyn
        self._listed: dict[tuple[str, str, str | None], dict[str, dict[str, Any]]] = {}

    def listing(self, api_version: str, kind: str, namespace: str | None) -> dict[str, dict[str, Any]]:
        key = (api_version, kind, namespace)
        if key not in self._listed:
            with translate_errors(f"{kind} ({api_version})"):
                resource = self.dyn.resources.get(api_version=api_version, kind=kind)
                items = list_objects(self.dyn, resource, namespace if resource.namespaced else None)
            self._listed[key] = {str(i["metadata"]["name"]): i for i in items}
        return self._listed[key]

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.listing(ref.api_version, ref.kind, ref.namespace).get(ref.name)


def detect(api: ApiClient, objects: Sequence[Mapping[str, Any]]) -> list[DriftFinding]:
    """How the cluster differs from ``objects`` (the release as applied); see the module docstring."""
    cluster = _Cluster(dynamic_client(api))
    hpa = hpa_targets(objects)
    findings: list[DriftFinding] = []
    present: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for obj in objects:
        found = cluster.get(ObjectRef.of(obj))
        if found is None:
            findings.append(DriftFinding(ref=ObjectRef.of(obj), kind=DriftKind.DELETED, found_by="listing"))
        else:
            present.append((obj, found))
    # one dry-run pass over the objects that exist (a missing one is reported, never dry-run created)
    diffs = diff_objects(api, [obj for obj, _ in present]) if present else []
    for (obj, live), diff in zip(present, diffs, strict=True):
        owned = [f for _, f in foreign_fields(live, obj, hpa)]
        findings += owned + _dry_run_findings(diff, live, reported={f.path for f in owned})
    findings += _added_objects(cluster, objects)
    return findings


def detect_addons(
    api: ApiClient, objects: Sequence[Mapping[str, Any]], recorded: Mapping[str, AppliedObject]
) -> list[DriftFinding]:
    """How the cluster differs from the release's add-on ``objects``, by listing alone (see the module docstring):
    missing (``deleted``), fields other managers wrote (ownership), and, for an object ``recorded`` (the ledger's
    record of the last apply, by key) without such a field, what moved since that apply (``found_by="record"``)."""
    cluster = _Cluster(dynamic_client(api))
    findings: list[DriftFinding] = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        live = cluster.get(ref)
        if live is None:
            findings.append(DriftFinding(ref=ref, kind=DriftKind.DELETED, found_by="listing"))
            continue
        owned = [f for _, f in foreign_fields(live, obj, frozenset())]
        last = recorded.get(ref.key)
        moved = change_since_applied(obj, live, last) if last is not None and not owned else None
        if moved is not None:
            path, now, then = moved
            manager, operation = _last_writer(live)
            owned.append(
                DriftFinding(
                    ref=ref,
                    kind=DriftKind.CHANGED,
                    path=path,
                    manager=manager,
                    operation=operation,
                    live=_json(now),
                    desired=_json(then),
                    found_by="record",
                )
            )
        findings += owned
    return findings


def _last_writer(live: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The foreign manager that wrote ``live`` last (its latest entry outside ``status``), or ``None`` when nobody
    can tell (a write that only removed fields leaves its manager owning nothing, so no entry)."""
    entries = [
        m
        for m in (live.get("metadata") or {}).get("managedFields") or []
        if m.get("subresource") != "status" and m.get("manager") not in OUR_MANAGERS
    ]
    if not entries:
        return None, None
    last = max(entries, key=lambda m: str(m.get("time") or ""))
    return str(last.get("manager") or "") or None, str(last.get("operation") or "") or None


def kept_foreign_fields(
    api: ApiClient, objects: Sequence[Mapping[str, Any]], *, kinds: frozenset[str] | None = None
) -> list[DriftFinding]:
    """After a deploy's apply: the fields other managers added to (or changed on) ``objects`` (those of ``kinds``,
    default all) that the apply kept (a server-side apply never removes another manager's field, e.g.
    ``kubectl set env``'s variable). The deploy reports them with its outcome rather than keep them silently. One
    list per type and namespace; an HPA of the release still owns its target's replicas (not drift)."""
    cluster = _Cluster(dynamic_client(api))
    hpa = hpa_targets(objects)
    found: list[DriftFinding] = []
    for obj in objects:
        if kinds is not None and obj.get("kind") not in kinds:
            continue
        live = cluster.get(ObjectRef.of(obj))
        if live is not None:
            found += [f for _, f in foreign_fields(live, obj, hpa)]
    return found


def _dry_run_findings(diff: ObjectDiff, live: Mapping[str, Any], *, reported: set[str | None]) -> list[DriftFinding]:
    out: list[DriftFinding] = []
    for change in diff.changes:
        if change.path in reported or any(change.path.startswith(f"{p}.") for p in reported if p):
            continue
        manager, operation = _owner_of(live, change.path)
        out.append(
            DriftFinding(
                ref=diff.ref,
                kind=DriftKind.ADDED if change.op == "remove" else DriftKind.CHANGED,
                path=change.path,
                manager=manager,
                operation=operation,
                live=change.live,
                desired=change.desired,
                found_by="dry-run",
            )
        )
    return out


def _added_objects(cluster: _Cluster, objects: Sequence[Mapping[str, Any]]) -> list[DriftFinding]:
    """Objects of the release's namespaced kinds in its namespaces that the release does not have."""
    refs = [ObjectRef.of(o) for o in objects]
    wanted = {r.key for r in refs}
    namespaces = sorted({r.namespace for r in refs if r.namespace})
    kinds = sorted({(r.api_version, r.kind) for r in refs if r.namespace})
    out: list[DriftFinding] = []
    for (api_version, kind), namespace in ((k, n) for k in kinds for n in namespaces):
        for name, live in sorted(cluster.listing(api_version, kind, namespace).items()):
            ref = ObjectRef(api_version=api_version, kind=kind, namespace=namespace, name=name)
            if ref.key not in wanted and not _system_or_controlled(kind, name, live):
                out.append(_added(ref, live))
    return out


def _system_or_controlled(kind: str, name: str, live: Mapping[str, Any]) -> bool:
    return (kind, name) in SYSTEM_OBJECTS or bool((live.get("metadata") or {}).get("ownerReferences"))


def _added(ref: ObjectRef, live: Mapping[str, Any]) -> DriftFinding:
    """An object the release does not have, with the manager that wrote it first."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    first: Mapping[str, Any] = next((m for m in entries if m.get("subresource") != "status"), {})
    return DriftFinding(
        ref=ref,
        kind=DriftKind.ADDED,
        manager=first.get("manager"),
        operation=first.get("operation"),
        found_by="listing",
    )


# -- reclaiming ------------------------------------------------------------------------------------------------------
def json_pointer(obj: Any, keys: Keys) -> str | None:
    """The JSON pointer (RFC 6901) of the field ``keys`` names in ``obj`` (list items by their live index)."""
    parts: list[str] = []
    value = obj
    for key in keys:
        found, child = _step(value, key)
        if not found:
            return None
        if key.startswith("f:"):
            parts.append(key[2:].replace("~", "~0").replace("/", "~1"))
        else:
            parts.append(str(next(i for i, item in enumerate(value) if item is child or item == child)))
        value = child
    return "/" + "/".join(parts)


def reclaim(api: ApiClient, objects: Sequence[Mapping[str, Any]]) -> list[ObjectRef]:
    """Remove the fields other managers added to ``objects`` that the release does not have; the references of the
    objects changed. Fields another manager changed (and ours) are left to the release's forced apply.

    A server-side apply cannot take a field away from an ``Update`` manager whose value it shares (both become owners),
    so the fields are removed by one JSON patch (an ``Update`` by :data:`RECLAIM_FIELD_MANAGER`), guarded by the
    object's resourceVersion and each removed value (``test`` operations): a concurrent write fails it (409/422)
    rather than removing something else.
    """
    dyn = dynamic_client(api)
    cluster = _Cluster(dyn)
    hpa = hpa_targets(objects)
    changed: list[ObjectRef] = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        live = cluster.get(ref)
        if live is None:
            continue
        added = [keys for keys, f in foreign_fields(live, obj, hpa) if f.kind is DriftKind.ADDED]
        pointers = [(p, value_at(live, keys)[1]) for keys in added if (p := json_pointer(live, keys))]
        if not pointers:
            continue
        version = str(live["metadata"].get("resourceVersion", ""))
        ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
        # deepest and last list items first, so earlier removals do not shift the indexes of later ones
        for pointer, value in sorted(pointers, key=lambda pv: _pointer_order(pv[0]), reverse=True):
            ops += [{"op": "test", "path": pointer, "value": value}, {"op": "remove", "path": pointer}]
        with translate_errors(ref):
            resource = dyn.resources.get(api_version=ref.api_version, kind=ref.kind)
            request_json(
                dyn,
                "PATCH",
                resource.path(name=ref.name, namespace=ref.namespace),
                body=ops,
                content_type="application/json-patch+json",
                query_params=[("fieldManager", RECLAIM_FIELD_MANAGER)],
            )
        logger.info("removed fields other managers added", extra={"object": ref.key, "fields": len(pointers)})
        changed.append(ref)
    return changed


def _pointer_order(pointer: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in pointer.split("/"))
