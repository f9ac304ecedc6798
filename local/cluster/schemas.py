"""OpenAPI v3 schemas of the built-in types, for ``/openapi/v3/<group-version>`` (what ``kubectl explain`` reads).

Converted from the Kubernetes 1.32 JSON schemas that ship with ``kubernetes-validate`` (generated from the same
OpenAPI the real server publishes): ``#/$defs/X`` references become ``#/components/schemas/X`` (wrapped in
``allOf`` when a description sits next to them, as kube-openapi does) and nullable type lists become one type.
Each group-version document carries the schemas of its kinds and everything they reference.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate

Obj = dict[str, Any]
SCHEMA_VERSION = "v1.32.0-local"
_DEFS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / SCHEMA_VERSION / "_definitions.json"
_REF = "#/$defs/"


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out["type"] = kinds[0] if kinds else "object"
        elif key == "$ref":
            out["$ref"] = "#/components/schemas/" + str(value)[len(_REF) :]
        else:
            out[key] = _convert(value)
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


@cache
def definitions() -> dict[str, Obj]:
    raw = json.loads(_DEFS.read_text(encoding="utf-8"))["$defs"]
    return {name: _convert(schema) for name, schema in raw.items()}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


@cache
def for_group_version(group: str, version: str) -> dict[str, Obj]:
    """The schemas of every kind of ``group/version`` and their transitive references."""
    defs = definitions()
    roots = {
        name
        for name, schema in defs.items()
        if any(
            g.get("group", "") == group and g.get("version") == version
            for g in schema.get("x-kubernetes-group-version-kind") or []
        )
    }
    wanted: set[str] = set()
    pending = sorted(roots)
    while pending:
        name = pending.pop()
        if name in wanted or name not in defs:
            continue
        wanted.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        pending.extend(found - wanted)
    return {name: defs[name] for name in sorted(wanted)}
