"""Diffs show what a reviewer cares about: server-owned fields are gone, list items are named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from controlplane.kube.diff import RELEASE_ANNOTATION, field_changes, normalized
from controlplane.models.kube import FieldChange

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"


def deployment() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "deployment_rolled_out.json").read_text())
    return data


def test_normalized_drops_status_and_server_owned_metadata() -> None:
    obj = deployment()
    obj["metadata"]["managedFields"] = [{"manager": "kube-controller-manager"}]
    clean = normalized(obj)
    assert "status" not in clean
    for field in ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "annotations"):
        assert field not in clean["metadata"]
    assert obj["status"]  # the input is not modified


def test_release_id_earlier_releases_wrote_is_not_a_change() -> None:
    old = deployment()
    assert old["metadata"]["annotations"][RELEASE_ANNOTATION] == "rel-20260126-0007"
    new = deployment()
    new["metadata"]["annotations"].pop(RELEASE_ANNOTATION)
    assert field_changes(normalized(old), normalized(new)) == []


def test_identical_objects_have_no_changes() -> None:
    assert field_changes(normalized(deployment()), normalized(deployment())) == []


def test_replica_and_image_changes_are_named_by_path() -> None:
    live, desired = deployment(), deployment()
    desired["spec"]["replicas"] = 5
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = "repo/api-gateway@sha256:new"
    desired["metadata"]["labels"]["team"] = "platform"
    del desired["spec"]["revisionHistoryLimit"]
    changes = field_changes(normalized(live), normalized(desired))
    assert changes == [
        FieldChange(path="metadata.labels.team", op="add", desired="platform"),
        FieldChange(path="spec.replicas", op="replace", live=3, desired=5),
        FieldChange(path="spec.revisionHistoryLimit", op="remove", live=5),
        FieldChange(
            path="spec.template.spec.containers[name=api-gateway].image",
            op="replace",
            live=live["spec"]["template"]["spec"]["containers"][0]["image"],
            desired="repo/api-gateway@sha256:new",
        ),
    ]


def test_unnamed_lists_compare_by_index_or_whole() -> None:
    assert field_changes({"args": ["a", "b"]}, {"args": ["a", "c"]}) == [
        FieldChange(path="args[1]", op="replace", live="b", desired="c")
    ]
    assert field_changes({"args": ["a"]}, {"args": ["a", "c"]}) == [
        FieldChange(path="args", op="replace", live=["a"], desired=["a", "c"])
    ]


def test_named_list_items_added_and_removed() -> None:
    live = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    desired = {"env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]}
    assert [(c.path, c.op) for c in field_changes(live, desired)] == [("env[name=B]", "remove"), ("env[name=C]", "add")]
