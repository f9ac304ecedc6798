"""The three non-apply patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

The strategic merge patch is deliberately small: it knows the ``patchMergeKey``/``patchStrategy=merge`` lists of
the pod template and Service (containers, initContainers, env, ports, volumes, volumeMounts, imagePullSecrets,
ownerReferences, conditions, finalizers) and the directives ``$patch: delete|replace|merge``, ``$retainKeys``,
``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>`` that kubectl sends. Every other list is
replaced, as the real server does for lists without a merge strategy.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


class PatchError(ValueError):
    """The patch cannot be applied (the server answers 422, or 400 for a malformed patch document)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


# ----------------------------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# ------------------------------------------------------------------------------------------------ JSON patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}"', malformed=True)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, dict):
            if part not in cur:
                raise PatchError(f"replace operation does not apply: doc is missing path: {path}")
            cur = cur[part]
        elif isinstance(cur, list):
            cur = cur[_index(part, len(cur), path)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return cur, parts[-1]


def _index(part: str, length: int, path: str, *, allow_end: bool = False) -> int:
    if part == "-" and allow_end:
        return length
    if not part.isdigit():
        raise PatchError(f"unable to access invalid index: {part}")
    idx = int(part)
    if idx > length or (idx == length and not allow_end):
        raise PatchError(f"unable to access invalid index: {idx} (path {path})")
    return idx


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for part in _pointer(path):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list):
            cur = cur[_index(part, len(cur), path)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), path, allow_end=True), value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("remove operation does not apply: cannot remove the root")
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'remove operation does not apply: doc is missing path: "{path}"')
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), path))
    raise PatchError(f'remove operation does not apply: doc is missing path: "{path}"')


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 ``add``/``remove``/``replace``/``move``/``copy``/``test`` (what the apiserver's jsonpatch does)."""
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", malformed=True)
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("Unexpected kind: missing op", malformed=True)
        kind = op["op"]
        path = op.get("path")
        if not isinstance(path, str):
            raise PatchError(f"{kind} operation missing path", malformed=True)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(op.get("value"))
                continue
            parent, last = _parent(doc, parts, path)
            if isinstance(parent, dict):
                if last not in parent:
                    raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
                parent[last] = copy.deepcopy(op.get("value"))
            elif isinstance(parent, list):
                parent[_index(last, len(parent), path)] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError(f"replace operation does not apply: doc is missing path: {path}")
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"{kind} operation missing from", malformed=True)
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}", malformed=True)
    return doc


# ---------------------------------------------------------------------------------------- strategic merge patch

_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
_PRIMITIVE_MERGE = frozenset({"finalizers"})
_CONTAINERS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def _merge_key(path: tuple[str, ...], kind: str) -> str | None:
    name = path[-1]
    if name == "ports":
        if len(path) >= 2 and path[-2] in _CONTAINERS:
            return "containerPort"
        if kind == "Service" and path == ("spec", "ports"):
            return "port"
        return None
    return _MERGE_KEYS.get(name)


def strategic_merge_patch(target: Any, patch: Any, *, kind: str) -> Any:
    """Apply a strategic merge patch to a built-in object of ``kind``."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", malformed=True)
    return _smp_map(target if isinstance(target, dict) else {}, patch, (), kind)


def _smp_map(target: Obj, patch: Obj, path: tuple[str, ...], kind: str) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if not key.startswith("$"):
            _smp_field(out, key, value, (*path, key), kind)
    _smp_directives(out, patch, path, kind)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_field(out: Obj, key: str, value: Any, fpath: tuple[str, ...], kind: str) -> None:
    """Merge one field of a strategic merge patch into ``out``."""
    if value is None:
        out.pop(key, None)
    elif isinstance(value, dict):
        merged = _smp_map(out[key] if isinstance(out.get(key), dict) else {}, value, fpath, kind)
        if merged is not None:
            out[key] = merged
        elif isinstance(out.get(key), dict):
            out.pop(key, None)
    elif isinstance(value, list):
        out[key] = _smp_list(out.get(key), value, fpath, kind)
    else:
        out[key] = copy.deepcopy(value)


def _smp_directives(out: Obj, patch: Obj, path: tuple[str, ...], kind: str) -> None:
    """``$deleteFromPrimitiveList/<field>`` then ``$setElementOrder/<field>``."""
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            name = key.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [v for v in out[name] if v not in value]
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(value, list):
            name = key.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = _order(out[name], value, _merge_key((*path, name), kind))


def _smp_list(current: Any, patch: list[Any], path: tuple[str, ...], kind: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    cur = list(current) if isinstance(current, list) else []
    key = _merge_key(path, kind)
    if key is None:
        if path[-1] in _PRIMITIVE_MERGE:
            return cur + [copy.deepcopy(v) for v in patch if v not in cur]
        return [copy.deepcopy(i) for i in patch]
    out = cur
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"expected a map for merge key {key!r} in list {path[-1]}")
        match = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if match is not None:
                out = out[:match] + out[match + 1 :]
            continue
        if match is None:
            merged = _smp_map({}, item, path, kind)
            if merged is not None:
                out = [*out, merged]
        else:
            merged = _smp_map(out[match], item, path, kind)
            out = out[:match] + ([merged] if merged is not None else []) + out[match + 1 :]
    return out


def _order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(v: Any) -> Any:
        return v.get(key) if key is not None and isinstance(v, dict) else repr(v)

    wanted = [ident(v) for v in order]
    ranked = {w: i for i, w in enumerate(wanted)}
    return sorted(items, key=lambda v: ranked.get(ident(v), len(wanted)))
