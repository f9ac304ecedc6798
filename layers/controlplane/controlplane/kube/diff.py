"""Comparing a live object with what applying would make of it (pure functions).

The server fills in what nobody asked about (resourceVersion, managedFields, status, timestamps); those are
dropped before comparing, so a diff shows only what a person approving a release would care about.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from controlplane.models.kube import FieldChange

# Releases no longer write it (the ledger knows which release applied what); objects applied before still carry it.
RELEASE_ANNOTATION = "synthetictrialstudio.io/release-id"

# metadata fields the server owns; they change on every write (or never matter to a reviewer).
_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "uid",
    "selfLink",
)
# annotations controllers write, and the release id earlier releases wrote.
_NOISE_ANNOTATIONS = ("deployment.kubernetes.io/revision", RELEASE_ANNOTATION)


def normalized(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` without status, server-owned metadata and controller annotations."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for field in _SERVER_METADATA:
            meta.pop(field, None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for key in _NOISE_ANNOTATIONS:
                annotations.pop(key, None)
            if not annotations:
                meta.pop("annotations")
    return out


def field_changes(live: Any, desired: Any, path: str = "") -> list[FieldChange]:
    """The fields that differ between ``live`` and ``desired``, in a stable order, named by dotted paths."""
    if isinstance(live, dict) and isinstance(desired, dict):
        return _keyed_changes(live, desired, lambda key: f"{path}.{key}" if path else str(key))
    if isinstance(live, list) and isinstance(desired, list) and live != desired:
        named_live, named_desired = _by_name(live), _by_name(desired)
        if named_live is not None and named_desired is not None:
            return field_changes_named(named_live, named_desired, path)
        if len(live) == len(desired):
            return [
                c
                for i, (a, b) in enumerate(zip(live, desired, strict=True))
                for c in field_changes(a, b, f"{path}[{i}]")
            ]
    if live != desired:
        return [FieldChange(path=path, op="replace", live=live, desired=desired)]
    return []


def field_changes_named(live: dict[str, Any], desired: dict[str, Any], path: str) -> list[FieldChange]:
    """Like :func:`field_changes` for lists keyed by their items' ``name`` (containers, env, ports)."""
    return _keyed_changes(live, desired, lambda name: f"{path}[name={name}]")


def _keyed_changes(live: dict[Any, Any], desired: dict[Any, Any], path_of: Callable[[Any], str]) -> list[FieldChange]:
    """Removed, added and changed entries of two mappings, in key order; ``path_of`` names an entry."""
    changes: list[FieldChange] = []
    for key in sorted(set(live) | set(desired), key=str):
        sub = path_of(key)
        if key not in desired:
            changes.append(FieldChange(path=sub, op="remove", live=live[key]))
        elif key not in live:
            changes.append(FieldChange(path=sub, op="add", desired=desired[key]))
        else:
            changes.extend(field_changes(live[key], desired[key], sub))
    return changes


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    """``items`` keyed by their ``name`` when every item is an object with a distinct string name."""
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    keyed = {i["name"]: i for i in items}
    return keyed if len(keyed) == len(items) else None
