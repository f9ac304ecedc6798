"""JSON merge patch, JSON patch and the strategic merge patch subset Deployments and Services need."""

from __future__ import annotations

import pytest

from local.cluster.patching import PatchError, json_patch, merge_patch, strategic_merge_patch

pytestmark = pytest.mark.unit


def deployment() -> dict:
    return {
        "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:v1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                        },
                        {"name": "sidecar", "image": "side:v1"},
                    ],
                    "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
                }
            },
        },
    }


def test_merge_patch_merges_maps_replaces_lists_and_deletes_nulls() -> None:
    out = merge_patch(deployment(), {"metadata": {"labels": {"old": None, "new": "y"}}, "spec": {"replicas": 5}})
    assert out["metadata"]["labels"] == {"app": "web", "new": "y"}
    assert out["spec"]["replicas"] == 5
    replaced = merge_patch(deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}})
    assert replaced["spec"]["template"]["spec"]["containers"] == [{"name": "only"}]


def test_json_patch_operations() -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/new", "value": "y"},
        {"op": "remove", "path": "/metadata/labels/old"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "third"}},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/annotations", "path": "/metadata/generateName"},
    ]
    out = json_patch(deployment(), ops)
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["labels"] == {"app": "web", "new": "y"}
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["app", "sidecar", "third"]
    assert out["metadata"]["generateName"] == "web"
    assert "annotations" not in out["metadata"]


def test_json_patch_failures() -> None:
    with pytest.raises(PatchError, match="test failed"):
        json_patch(deployment(), [{"op": "test", "path": "/spec/replicas", "value": 9}])
    with pytest.raises(PatchError, match="missing"):
        json_patch(deployment(), [{"op": "replace", "path": "/spec/missing", "value": 1}])
    with pytest.raises(PatchError) as info:
        json_patch(deployment(), {"op": "add"})
    assert info.value.malformed


def test_strategic_merge_merges_containers_env_ports_and_mounts_by_key() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:v2",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 9090}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                }
            }
        }
    }
    out = strategic_merge_patch(deployment(), patch, kind="Deployment")
    app, sidecar = out["spec"]["template"]["spec"]["containers"]
    assert app["image"] == "app:v2"
    assert sidecar == {"name": "sidecar", "image": "side:v1"}
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert [p["containerPort"] for p in app["ports"]] == [80, 9090]
    assert [m["mountPath"] for m in app["volumeMounts"]] == ["/etc/cfg", "/data"]
    assert [v["name"] for v in out["spec"]["template"]["spec"]["volumes"]] == ["cfg", "data"]


def test_strategic_merge_directives() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "sidecar", "$patch": "delete"}],
                    "$setElementOrder/volumes": [{"name": "cfg"}],
                }
            }
        },
        "metadata": {"labels": {"$patch": "replace", "only": "this"}},
    }
    out = strategic_merge_patch(deployment(), patch, kind="Deployment")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert out["metadata"]["labels"] == {"only": "this"}
    retained = strategic_merge_patch(
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        kind="Deployment",
    )
    assert retained["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_merge_service_ports_merge_by_port_and_other_lists_replace() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}], "externalIPs": ["1.1.1.1"]}}
    out = strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 443, "name": "https"}], "externalIPs": ["2.2.2.2"]}}, kind="Service"
    )
    assert [p["port"] for p in out["spec"]["ports"]] == [80, 443]
    assert out["spec"]["externalIPs"] == ["2.2.2.2"]
