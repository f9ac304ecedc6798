"""Server-side apply field sets, ownership, conflicts, pruning and the fieldsV1 encoding."""

from __future__ import annotations

import copy
import json

import pytest

from local.cluster import ssa

pytestmark = pytest.mark.unit

SCHEMA = ssa.Schema(kind="Deployment")


def config(replicas: int = 2, labels: dict[str, str] | None = None, image: str = "nginx:1") -> dict:
    meta: dict = {"name": "web", "namespace": "default"}
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def apply(live: dict, cfg: dict, managers: list[ssa.Manager], manager: str, *, force: bool = False):
    return ssa.apply(
        live,
        cfg,
        managers,
        manager=manager,
        api_version="apps/v1",
        now="2026-01-01T00:00:00Z",
        schema=SCHEMA,
        force=force,
    )


def test_apply_field_set_uses_the_real_fieldsv1_format() -> None:
    _, managers = apply({}, config(labels={"app": "web"}), [], "kubectl")
    [entry] = ssa.encode_managers(managers)
    assert entry["manager"] == "kubectl"
    assert entry["operation"] == "Apply"
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"nginx"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                        }
                    }
                },
            },
        },
    }


def test_fieldsv1_round_trips() -> None:
    _, managers = apply({}, config(labels={"a": "b"}), [], "kubectl")
    encoded = ssa.encode_managers(managers)
    assert ssa.encode_managers(ssa.decode_managers(json.loads(json.dumps(encoded)))) == encoded


def test_conflict_names_the_manager_and_field_and_force_moves_ownership() -> None:
    live, managers = apply({}, config(), [], "a")
    with pytest.raises(ssa.ConflictError) as info:
        apply(live, config(replicas=5), managers, "b")
    assert str(info.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    [conflict] = info.value.conflicts
    assert conflict.field() == ".spec.replicas"
    merged, managers = apply(live, config(replicas=5), managers, "b", force=True)
    assert merged["spec"]["replicas"] == 5
    owners = {m.manager: m.fields.has(("f:spec", "f:replicas")) for m in managers}
    assert owners == {"a": False, "b": True}


def test_same_value_is_shared_ownership_without_conflict() -> None:
    live, managers = apply({}, config(), [], "a")
    _, managers = apply(live, config(), managers, "b")
    assert {m.manager for m in managers if m.fields.has(("f:spec", "f:replicas"))} == {"a", "b"}


def test_update_managers_are_named_with_their_api_version_in_conflicts() -> None:
    live, managers = apply({}, config(), [], "kubectl")
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 7
    managers = ssa.update(
        live, edited, managers, manager="kubectl-client-side-apply", api_version="apps/v1", now="t", schema=SCHEMA
    )
    with pytest.raises(
        ssa.ConflictError,
        match=r'conflict with "kubectl-client-side-apply" using apps/v1: '
        r"\.spec\.replicas",
    ):
        apply(edited, config(replicas=3), managers, "kubectl")


def test_dropped_fields_are_removed_unless_someone_else_owns_them() -> None:
    live, managers = apply({}, config(labels={"app": "web", "team": "x"}), [], "a")
    pruned, managers = apply(live, config(labels={"app": "web"}), managers, "a")
    assert pruned["metadata"]["labels"] == {"app": "web"}
    # b shares "team": when a drops it, it stays
    live, managers = apply({}, config(labels={"team": "x"}), [], "a")
    cfg_b = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "x"}}}
    live, managers = apply(live, cfg_b, managers, "b")
    kept, _ = apply(live, config(), managers, "a")
    assert kept["metadata"]["labels"] == {"team": "x"}


def test_multiple_conflicts_message() -> None:
    live, managers = apply({}, config(), [], "a")
    with pytest.raises(ssa.ConflictError) as info:
        apply(live, config(replicas=4, image="nginx:2"), managers, "b")
    assert str(info.value) == (
        'Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n'
        '- .spec.template.spec.containers[name="nginx"].image'
    )


def test_update_records_added_maps_with_dot_membership() -> None:
    new = {"metadata": {"name": "x", "labels": {"app": "web"}}, "data": {"k": "v"}}
    managers = ssa.update({}, new, [], manager="kubectl-create", api_version="v1", now="t", schema=ssa.Schema())
    assert managers[0].fields.to_json() == {
        "f:data": {".": {}, "f:k": {}},
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    }


def test_associative_list_merge_keeps_live_only_items_in_place() -> None:
    merged = ssa.merge(
        {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
        {"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "d"}, {"name": "a"}]}},
        SCHEMA,
    )
    assert [c["name"] for c in merged["spec"]["containers"]] == ["b", "c", "d", "a"]


def test_paths_render_like_fieldpath_strings() -> None:
    path = ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:targetPort")
    assert ssa.path_string(path) == '.spec.ports[port=80,protocol="TCP"].targetPort'
    assert ssa.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'
