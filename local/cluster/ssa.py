"""Server-side apply: field sets, ownership and merging as ``sigs.k8s.io/structured-merge-diff`` does them.

A :class:`FieldSet` is SMD's ``fieldpath.Set`` (members plus children keyed by path element); its JSON form is the
real ``fieldsV1`` encoding: ``f:<field>``, ``k:{"name":"app"}`` for items of associative lists, ``v:<json>`` for
items of sets, ``.`` when a node is itself a member. :class:`Schema` says, per field path, which lists are
associative (and their keys, with the ``protocol: TCP`` key default), which are sets, and which maps/lists/structs
are atomic: enough of the built-in OpenAPI schema for the workloads we deploy. Custom resources are treated as
"deduced" (granular maps, atomic lists) except for ``metadata``.

:func:`apply` implements ``merge.Updater.Apply`` (merge config into live, prune fields the applier dropped and no one
else owns, conflicts for fields other managers own with a different value, ``force`` moves ownership) and
:func:`update` implements ``Updater.Update`` for non-apply writes (the writer takes the fields it changed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Path = tuple[str, ...]

# --------------------------------------------------------------------------------------------------- field sets


class FieldSet:
    """``fieldpath.Set``: ``members`` are path elements that are themselves in the set; ``children`` descend."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, FieldSet] = {}

    # construction -------------------------------------------------------------------------------------------
    def insert(self, path: Path) -> None:
        if not path:
            return
        node = self
        for pe in path[:-1]:
            node = node.children.setdefault(pe, FieldSet())
        node.members.add(path[-1])

    def child(self, pe: str) -> FieldSet:
        return self.children.setdefault(pe, FieldSet())

    @classmethod
    def from_paths(cls, paths: list[Path]) -> FieldSet:
        out = cls()
        for p in paths:
            out.insert(p)
        return out

    # queries ------------------------------------------------------------------------------------------------
    def empty(self) -> bool:
        return not self.members and all(c.empty() for c in self.children.values())

    def has(self, path: Path) -> bool:
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node.children.get(pe) if node is not None else None
            if node is None:
                return False
        return node is not None and path[-1] in node.members

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every member path, parents before their children, in sorted order."""
        for pe in sorted(self.members | set(self.children)):
            if pe in self.members:
                yield (*prefix, pe)
            sub = self.children.get(pe)
            if sub is not None:
                yield from sub.paths((*prefix, pe))

    def __len__(self) -> int:
        return sum(1 for _ in self.paths())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and list(self.paths()) == list(other.paths())

    def __hash__(self) -> int:  # pragma: no cover - sets are mutable; defined for ruff's PLW1641
        raise TypeError("FieldSet is unhashable")

    def __repr__(self) -> str:
        return f"FieldSet({[path_string(p) for p in self.paths()]})"

    # algebra (non-destructive) ------------------------------------------------------------------------------
    def copy(self) -> FieldSet:
        out = FieldSet()
        out.members = set(self.members)
        out.children = {k: v.copy() for k, v in self.children.items()}
        return out

    def union(self, other: FieldSet) -> FieldSet:
        out = self.copy()
        out._union_in_place(other)
        return out

    def _union_in_place(self, other: FieldSet) -> None:
        self.members |= other.members
        for pe, sub in other.children.items():
            if pe in self.children:
                self.children[pe]._union_in_place(sub)
            else:
                self.children[pe] = sub.copy()

    def difference(self, other: FieldSet) -> FieldSet:
        """Exact-path difference (``Set.Difference``): removing a member leaves its children."""
        out = FieldSet()
        out.members = self.members - other.members
        for pe, sub in self.children.items():
            o = other.children.get(pe)
            d = sub.difference(o) if o is not None else sub.copy()
            if not d.empty():
                out.children[pe] = d
        return out

    def intersection(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members & other.members
        for pe, sub in self.children.items():
            o = other.children.get(pe)
            if o is not None:
                i = sub.intersection(o)
                if not i.empty():
                    out.children[pe] = i
        return out

    # fieldsV1 -----------------------------------------------------------------------------------------------
    def to_json(self) -> Obj:
        out: Obj = {}
        for pe in sorted(self.members | set(self.children), key=_pe_order):
            sub = self.children.get(pe)
            node: Obj = sub.to_json() if sub is not None and not sub.empty() else {}
            if pe in self.members and node:
                node = {".": {}, **node}
            if node or pe in self.members:
                out[pe] = node
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FieldSet:
        out = cls()
        for pe, node in (data or {}).items():
            if pe == ".":
                continue
            if not node:
                out.members.add(pe)
                continue
            if "." in node:
                out.members.add(pe)
            sub = cls.from_json(node)
            if not sub.empty():
                out.children[pe] = sub
        return out


def _pe_order(pe: str) -> tuple[int, str]:
    # SMD orders field names, then keys, then values, then indexes.
    return ({"f": 0, "k": 1, "v": 2, "i": 3}.get(pe[:1], 4), pe)


def pe_string(pe: str) -> str:
    """One path element as ``fieldpath.Path.String()`` renders it."""
    kind, _, raw = pe.partition(":")
    if kind == "f":
        return "." + raw
    if kind == "k":
        keys = json.loads(raw)
        return "[" + ",".join(f"{k}={_go_value(v)}" for k, v in sorted(keys.items())) + "]"
    if kind == "v":
        return f"[={_go_value(json.loads(raw))}]"
    return f"[{raw}]"


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def path_string(path: Path) -> str:
    return "".join(pe_string(pe) for pe in path)


def field_pe(name: str) -> str:
    return "f:" + name


def key_pe(keys: Mapping[str, Any]) -> str:
    return "k:" + json.dumps(dict(keys), separators=(",", ":"), sort_keys=True)


def value_pe(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------------------------------- schema

_CONTAINERS = frozenset({"containers", "initContainers", "ephemeralContainers"})
_ASSOC_BY_NAME: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
}
_SETS = frozenset({"finalizers"})
_ATOMIC_MAPS = frozenset(
    {
        "selector",
        "labelSelector",
        "namespaceSelector",
        "podSelector",
        "nodeSelector",
        "secretKeyRef",
        "configMapKeyRef",
        "fieldRef",
        "resourceFieldRef",
        "scaleTargetRef",
        "roleRef",
    }
)
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


@dataclass(frozen=True)
class ListType:
    kind: str  # "atomic", "set", "map"
    keys: tuple[str, ...] = ()


ATOMIC = ListType("atomic")
SET = ListType("set")


@dataclass(frozen=True)
class Schema:
    """Which lists/maps are associative, sets or atomic. ``builtin=False`` is the deduced schema of CRs."""

    builtin: bool = True
    kind: str = ""

    def list_type(self, path: tuple[str, ...]) -> ListType:
        """``path`` is the field names from the root to the list (list item elements omitted)."""
        name = path[-1]
        in_meta = len(path) == 2 and path[0] == "metadata"
        if in_meta and name == "finalizers":
            return SET
        if in_meta and name == "ownerReferences":
            return ListType("map", ("uid",))
        if not self.builtin:
            return ATOMIC
        if name == "ports":
            if len(path) >= 2 and path[-2] in _CONTAINERS:
                return ListType("map", ("containerPort", "protocol"))
            if self.kind == "Service" and path == ("spec", "ports"):
                return ListType("map", ("port", "protocol"))
            return ATOMIC
        if name == "conditions" and (len(path) < 2 or path[-2] != "status"):
            return ATOMIC
        if name in _ASSOC_BY_NAME:
            return ListType("map", _ASSOC_BY_NAME[name])
        if name in _SETS:
            return SET
        return ATOMIC

    def atomic_map(self, path: tuple[str, ...]) -> bool:
        if not self.builtin or path[:1] == ("metadata",):
            return False
        return path[-1] in _ATOMIC_MAPS


def item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    """The ``k:`` element of an associative-list item, or ``None`` when a key is missing (no default)."""
    if not isinstance(item, Mapping):
        return None
    values: dict[str, Any] = {}
    for k in keys:
        if k in item and item[k] is not None:
            values[k] = item[k]
        elif k in _KEY_DEFAULTS:
            values[k] = _KEY_DEFAULTS[k]
        else:
            return None
    return key_pe(values)


def _index_list(items: list[Any], lt: ListType) -> dict[str, Any] | None:
    """Path element -> item, or ``None`` when the list cannot be indexed (missing or duplicate keys)."""
    out: dict[str, Any] = {}
    for item in items:
        if lt.kind == "map":
            pe = item_key(item, lt.keys)
        else:
            try:
                pe = value_pe(item)
            except (TypeError, ValueError):  # pragma: no cover - JSON values always encode
                pe = None
        if pe is None or pe in out:
            return None
        out[pe] = item
    return out


# ------------------------------------------------------------------------------------------- field set of a value

# Fields the server owns: never part of any manager's set (``stripMetaManager``).
_STRIPPED_META = frozenset(
    {"name", "namespace", "creationTimestamp", "selfLink", "uid", "generation", "managedFields", "resourceVersion"}
)


def to_field_set(obj: Mapping[str, Any], schema: Schema, *, ignore: frozenset[str] = frozenset()) -> FieldSet:
    """``TypedValue.ToFieldSet``: leaves, associative/set items, atomic values. Top-level ``ignore`` fields
    (e.g. ``status`` on the main resource) and server-owned metadata are left out."""
    out = FieldSet()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or key in ignore:
            continue
        if key == "metadata" and isinstance(value, Mapping):
            meta = {k: v for k, v in value.items() if k not in _STRIPPED_META}
            if meta:
                _walk_set(meta, ("metadata",), out.child(field_pe("metadata")), schema)
            continue
        _walk_value(key, value, (), out, schema)
    return out


def _walk_value(key: str, value: Any, path: tuple[str, ...], node: FieldSet, schema: Schema) -> None:
    fpath = (*path, key)
    pe = field_pe(key)
    if isinstance(value, Mapping):
        if schema.atomic_map(fpath):
            node.members.add(pe)
        elif value:
            _walk_set(value, fpath, node.child(pe), schema)
            if node.children[pe].empty():
                del node.children[pe]
    elif isinstance(value, list):
        lt = schema.list_type(fpath)
        index = _index_list(value, lt) if lt.kind != "atomic" else None
        if index is None:
            node.members.add(pe)
            return
        sub = node.child(pe)
        for ipe, item in index.items():
            sub.members.add(ipe)
            if lt.kind == "map" and isinstance(item, Mapping) and item:
                _walk_set(item, fpath, sub.child(ipe), schema)
                if sub.children[ipe].empty():
                    del sub.children[ipe]
        if sub.empty():
            del node.children[pe]
    else:
        node.members.add(pe)


def _walk_set(value: Mapping[str, Any], path: tuple[str, ...], node: FieldSet, schema: Schema) -> None:
    for k, v in value.items():
        _walk_value(k, v, path, node, schema)


# ------------------------------------------------------------------------------------------------- compare


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=FieldSet)
    modified: FieldSet = field(default_factory=FieldSet)
    removed: FieldSet = field(default_factory=FieldSet)

    def changed(self) -> FieldSet:
        return self.added.union(self.modified)


def compare(
    old: Mapping[str, Any], new: Mapping[str, Any], schema: Schema, *, ignore: frozenset[str] = frozenset()
) -> Comparison:
    """``TypedValue.Compare``: what a write added, modified and removed (server-owned metadata left out)."""
    c = Comparison()
    old_f = _strip_root(old, ignore)
    new_f = _strip_root(new, ignore)
    _cmp_map(old_f, new_f, (), (), c, schema, root=True)
    return c


def _strip_root(obj: Mapping[str, Any], ignore: frozenset[str]) -> Obj:
    out: Obj = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or k in ignore:
            continue
        if k == "metadata" and isinstance(v, Mapping):
            out[k] = {mk: mv for mk, mv in v.items() if mk not in _STRIPPED_META}
        else:
            out[k] = v
    return out


# Non-pointer structs of the Go types: present (empty) in the zero object, so creating them never "adds" the node.
_ALWAYS_PRESENT = frozenset({"metadata", "spec", "status", "template", "strategy", "updateStrategy", "resources"})


def _cmp_map(  # noqa: PLR0917 - internal recursive walker
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    fpath: tuple[str, ...],
    path: Path,
    c: Comparison,
    schema: Schema,
    *,
    root: bool = False,
) -> None:
    for key in list(old) + [k for k in new if k not in old]:
        p = (*path, field_pe(key))
        fp = (*fpath, key)
        member = not (key == "metadata" and root) and not (schema.builtin and key in _ALWAYS_PRESENT)
        if key not in new:
            _mark(old[key], fp, p, c.removed, schema, member=member)
        elif key not in old:
            _mark(new[key], fp, p, c.added, schema, member=member)
        else:
            _cmp_value(old[key], new[key], fp, p, c, schema)


def _cmp_value(old: Any, new: Any, fpath: tuple[str, ...], path: Path, c: Comparison, schema: Schema) -> None:  # noqa: PLR0917
    if isinstance(old, Mapping) and isinstance(new, Mapping) and not schema.atomic_map(fpath):
        _cmp_map(old, new, fpath, path, c, schema)
        return
    if isinstance(old, list) and isinstance(new, list):
        lt = schema.list_type(fpath)
        if lt.kind != "atomic":
            oi, ni = _index_list(old, lt), _index_list(new, lt)
            if oi is not None and ni is not None:
                for ipe, item in oi.items():
                    if ipe not in ni:
                        _mark_item(item, lt, fpath, (*path, ipe), c.removed, schema)
                    elif lt.kind == "map" and isinstance(item, Mapping) and isinstance(ni[ipe], Mapping):
                        _cmp_map(item, ni[ipe], fpath, (*path, ipe), c, schema)
                for ipe, item in ni.items():
                    if ipe not in oi:
                        _mark_item(item, lt, fpath, (*path, ipe), c.added, schema)
                return
    if old != new or type(old) is not type(new):
        c.modified.insert(path)


def _mark(value: Any, fpath: tuple[str, ...], path: Path, into: FieldSet, schema: Schema, *, member: bool) -> None:
    """A whole subtree appeared or disappeared: every node and leaf of it."""
    if isinstance(value, Mapping) and not schema.atomic_map(fpath):
        if member or not value:
            into.insert(path)
        for k, v in value.items():
            _mark(
                v, (*fpath, k), (*path, field_pe(k)), into, schema, member=not (schema.builtin and k in _ALWAYS_PRESENT)
            )
        return
    if isinstance(value, list):
        lt = schema.list_type(fpath)
        index = _index_list(value, lt) if lt.kind != "atomic" else None
        if index is not None:
            if not index:
                into.insert(path)
            for ipe, item in index.items():
                _mark_item(item, lt, fpath, (*path, ipe), into, schema)
            return
    into.insert(path)


def _mark_item(item: Any, lt: ListType, fpath: tuple[str, ...], path: Path, into: FieldSet, schema: Schema) -> None:  # noqa: PLR0917
    into.insert(path)
    if lt.kind == "map" and isinstance(item, Mapping):
        for k, v in item.items():
            _mark(v, (*fpath, k), (*path, field_pe(k)), into, schema, member=True)


# --------------------------------------------------------------------------------------------------- merge


def merge(live: Any, config: Any, schema: Schema, fpath: tuple[str, ...] = ()) -> Any:
    """``TypedValue.Merge``: ``config`` wins for leaves and atomics; maps and associative lists merge."""
    if isinstance(live, Mapping) and isinstance(config, Mapping) and not (fpath and schema.atomic_map(fpath)):
        out = dict(live)
        for k, v in config.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v, schema, (*fpath, k))
            else:
                out[k] = _strip_nulls(copy.deepcopy(v))
        return out
    if isinstance(live, list) and isinstance(config, list) and fpath:
        lt = schema.list_type(fpath)
        if lt.kind != "atomic":
            li, ci = _index_list(live, lt), _index_list(config, lt)
            if li is not None and ci is not None:
                return _merge_list(live, li, config, ci, lt, schema, fpath)
    return _strip_nulls(copy.deepcopy(config))


def _merge_list(  # noqa: PLR0917 - internal recursive walker
    live: list[Any],
    li: dict[str, Any],
    config: list[Any],
    ci: dict[str, Any],
    lt: ListType,
    schema: Schema,
    fpath: tuple[str, ...],
) -> list[Any]:
    """SMD's ``visitListItems`` order: live-only items keep their place, shared and new items follow config."""
    del live, config
    lhs, rhs = list(li), list(ci)
    shared = [pe for pe in rhs if pe in li]
    next_shared = shared.pop(0) if shared else None
    merged: set[str] = set()
    out: list[Any] = []
    l_i = r_i = 0

    def take(pe: str) -> None:
        nonlocal next_shared
        merged.add(pe)
        if pe in li and lt.kind == "map":
            out.append(merge(li[pe], ci[pe], schema, fpath))
        else:
            out.append(_strip_nulls(copy.deepcopy(ci[pe])))
        if next_shared == pe:
            next_shared = shared.pop(0) if shared else None

    while l_i < len(lhs) or r_i < len(rhs):
        if l_i < len(lhs) and r_i < len(rhs):
            pe = lhs[l_i]
            if pe == rhs[r_i]:
                take(pe)
                l_i += 1
                r_i += 1
                continue
            if pe in ci and next_shared is not None and next_shared != pe:
                l_i += 1
                continue
        if l_i < len(lhs):
            pe = lhs[l_i]
            if pe not in ci:
                out.append(li[pe])
                l_i += 1
                continue
            if pe in merged:
                l_i += 1
                continue
        if r_i < len(rhs):
            take(rhs[r_i])
            r_i += 1
    return out


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def remove_paths(obj: Obj, paths: FieldSet, schema: Schema) -> Obj:
    """Remove every member path of ``paths`` from ``obj`` (a removed node takes its subtree)."""
    out = copy.deepcopy(obj)
    for path in sorted(paths.paths(), key=len, reverse=True):
        _remove(out, path, (), schema)
    return out


def _remove(node: Any, path: Path, fpath: tuple[str, ...], schema: Schema) -> bool:
    """Remove ``path`` below ``node``; returns True when ``node`` became empty because of it."""
    pe = path[0]
    kind, _, raw = pe.partition(":")
    if kind == "f" and isinstance(node, dict):
        if raw not in node:
            return False
        if len(path) == 1:
            del node[raw]
        else:
            child = node[raw]
            if _remove(child, path[1:], (*fpath, raw), schema) and (isinstance(child, dict | list)) and not child:
                del node[raw]
        return not node
    if kind in ("k", "v") and isinstance(node, list):
        lt = schema.list_type(fpath)
        for i, item in enumerate(node):
            ipe = item_key(item, lt.keys) if kind == "k" else value_pe(item)
            if ipe != pe:
                continue
            if len(path) == 1:
                del node[i]
            else:
                _remove(item, path[1:], fpath, schema)
            break
        return not node
    return False


# ------------------------------------------------------------------------------------------- managed fields


@dataclass
class Manager:
    """One ``managedFields`` entry."""

    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    fields: FieldSet
    time: str = ""
    subresource: str = ""

    def identity(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation, self.subresource, "" if self.operation == "Apply" else self.api_version)

    def describe(self) -> str:
        """``printManager``: how conflict messages name this manager."""
        out = json.dumps(self.manager)
        if self.subresource:
            out = f"{out} with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            return f"{out} using {self.api_version}"
        return out

    def to_json(self) -> Obj:
        out: Obj = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self.fields.to_json()
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Manager:
        return cls(
            manager=str(entry.get("manager", "")),
            operation=str(entry.get("operation", "Update")),
            api_version=str(entry.get("apiVersion", "")),
            fields=FieldSet.from_json(entry.get("fieldsV1")),
            time=_norm_time(str(entry.get("time", "") or "")),
            subresource=str(entry.get("subresource", "") or ""),
        )


def _norm_time(value: str) -> str:
    """RFC 3339 as Go prints a UTC ``metav1.Time`` (clients may send ``+00:00`` or fractions back)."""
    if value.endswith("+00:00"):
        value = value[:-6] + "Z"
    if "." in value and value.endswith("Z"):
        value = value.split(".", 1)[0] + "Z"
    return value


def decode_managers(entries: list[Any] | None) -> list[Manager]:
    return [Manager.from_json(e) for e in entries or [] if isinstance(e, Mapping) and e.get("manager")]


def encode_managers(managers: list[Manager]) -> list[Obj]:
    """Sorted like ``sortEncodedManagedFields``: Apply before Update, then time, manager, version, subresource."""
    ordered = sorted(managers, key=lambda m: (m.operation, m.time, m.manager, m.api_version, m.subresource))
    return [m.to_json() for m in ordered if not m.fields.empty()]


@dataclass(frozen=True)
class Conflict:
    manager: Manager
    path: Path

    def field(self) -> str:
        return path_string(self.path)


class ConflictError(Exception):
    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        super().__init__(conflict_message(conflicts))


def conflict_message(conflicts: list[Conflict]) -> str:
    """``getConflictMessage`` from the API server's field manager."""
    if len(conflicts) == 1:
        c = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {c.manager.describe()}: {c.field()}"
    by_manager: dict[str, list[str]] = {}
    for c in conflicts:
        by_manager.setdefault(c.manager.describe(), []).append(c.field())
    lines: list[str] = []
    for name in sorted(by_manager):
        lines.append(f"conflicts with {name}:")
        lines.extend(f"- {p}" for p in by_manager[name])
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def _find(managers: list[Manager], ident: tuple[str, str, str, str]) -> Manager | None:
    for m in managers:
        if m.identity() == ident:
            return m
    return None


def _take_from_others(managers: list[Manager], me: tuple[str, str, str, str], taken: FieldSet) -> list[Manager]:
    out: list[Manager] = []
    for m in managers:
        kept = m
        if m.identity() != me and not taken.empty():
            kept = Manager(m.manager, m.operation, m.api_version, m.fields.difference(taken), m.time, m.subresource)
        if not kept.fields.empty():
            out.append(kept)
    return out


def update(
    live: Obj,
    new: Obj,
    managers: list[Manager],
    *,
    manager: str,
    api_version: str,
    now: str,
    schema: Schema,
    subresource: str = "",
    ignore: frozenset[str] = frozenset(),
) -> list[Manager]:
    """``Updater.Update`` (a non-apply write): the writer takes what it added or modified; others lose it."""
    c = compare(live, new, schema, ignore=ignore)
    taken = c.changed()
    lost = taken.union(c.removed)
    me = (manager, "Update", subresource, api_version)
    if taken.empty() and c.removed.empty():
        return managers
    out = _take_from_others(managers, me, lost)
    mine = _find(out, me)
    base = mine.fields if mine is not None else FieldSet()
    fields = base.difference(c.removed).union(taken)
    out = [m for m in out if m.identity() != me]
    if not fields.empty():
        out.append(Manager(manager, "Update", api_version, fields, now, subresource))
    return out


def apply(
    live: Obj,
    config: Obj,
    managers: list[Manager],
    *,
    manager: str,
    api_version: str,
    now: str,
    schema: Schema,
    force: bool,
    subresource: str = "",
    ignore: frozenset[str] = frozenset(),
) -> tuple[Obj, list[Manager]]:
    """``Updater.Apply``: returns the new object and managers, or raises :class:`ConflictError`.

    ``live`` is ``{}`` when the object does not exist yet. ``ignore`` lists top-level fields the endpoint resets
    (``status`` on a main resource with a status subresource): they are neither merged nor owned."""
    cfg = {k: v for k, v in config.items() if k not in ignore}
    applied = to_field_set(cfg, schema)
    me = (manager, "Apply", subresource, "")
    previous = _find(managers, me)
    merged = merge(live, cfg, schema)
    others = [m for m in managers if m.identity() != me]
    if previous is not None and not previous.fields.empty():
        owned = applied.copy()
        for m in others:
            owned = owned.union(m.fields)
        dropped = previous.fields.difference(owned)
        if not dropped.empty():
            merged = remove_paths(merged, dropped, schema)
    c = compare(live, merged, schema, ignore=ignore)
    changed = c.changed()
    conflicts: list[Conflict] = []
    for m in others:
        both = m.fields.intersection(changed)
        conflicts.extend(Conflict(m, p) for p in both.paths())
    if conflicts and not force:
        conflicts.sort(key=lambda x: (x.manager.describe(), x.path))
        raise ConflictError(conflicts)
    out = _take_from_others(others, me, changed.union(c.removed))
    if not applied.empty():
        object_changed = not (changed.empty() and c.removed.empty())
        when = now if object_changed or previous is None else previous.time
        out.append(Manager(manager, "Apply", api_version, applied, when, subresource))
    return merged, out
