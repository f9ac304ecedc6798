"""Drift's pure rules: managedFields paths, which foreign fields count, and the JSON pointers a heal removes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from controlplane.kube.apply import FIELD_MANAGER
from controlplane.kube.drift import field_path, foreign_fields, json_pointer, value_at
from controlplane.models.drift import DriftKind

pytestmark = pytest.mark.unit

CONTAINER = 'k:{"name":"app"}'
ENV_DEBUG = 'k:{"name":"DEBUG"}'
IMAGE = ("f:spec", "f:template", "f:spec", "f:containers", CONTAINER, "f:image")


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "annotations": {}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "repo@sha256:a"}]}}}
        | spec,
    }


def entry(manager: str, fields: dict[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
    return {"manager": manager, "operation": "Update", "fieldsV1": fields} | (
        {"subresource": subresource} if subresource else {}
    )


def live_with(desired: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    live = copy.deepcopy(desired)
    live["metadata"]["managedFields"] = [entry(FIELD_MANAGER, {"f:spec": {"f:replicas": {}}}), *entries]
    return live


def test_paths_and_values_follow_managed_fields_keys() -> None:
    obj = deployment()
    assert field_path(IMAGE) == "spec.template.spec.containers[name=app].image"
    assert value_at(obj, IMAGE) == (True, "repo@sha256:a")
    assert value_at(obj, (*IMAGE[:-1], "f:env")) == (False, None)
    assert json_pointer(obj, IMAGE) == "/spec/template/spec/containers/0/image"
    assert json_pointer({"metadata": {"labels": {"a/b": "1"}}}, ("f:metadata", "f:labels", "f:a/b")) == (
        "/metadata/labels/a~1b"
    )


def test_an_added_env_var_and_a_changed_image_count_with_their_manager() -> None:
    desired = deployment()
    live = live_with(
        desired,
        entry(
            "kubectl-edit",
            {
                "f:spec": {
                    "f:template": {
                        "f:spec": {
                            "f:containers": {CONTAINER: {"f:env": {ENV_DEBUG: {".": {}, "f:name": {}, "f:value": {}}}}}
                        }
                    }
                }
            },
        ),
        entry("kubectl-set", {"f:spec": {"f:template": {"f:spec": {"f:containers": {CONTAINER: {"f:image": {}}}}}}}),
    )
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DEBUG", "value": "1"}]
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx"
    found = {f.path: f for _, f in foreign_fields(live, desired, frozenset())}
    env = found["spec.template.spec.containers[name=app].env[name=DEBUG]"]
    assert (env.kind, env.manager, env.live, env.desired) == (
        DriftKind.ADDED,
        "kubectl-edit",
        {"name": "DEBUG", "value": "1"},
        None,
    )
    image = found["spec.template.spec.containers[name=app].image"]
    assert (image.kind, image.manager, image.live, image.desired) == (
        DriftKind.CHANGED,
        "kubectl-set",
        "nginx",
        "repo@sha256:a",
    )


def test_status_hpa_replicas_controller_annotations_and_the_release_value_do_not_count() -> None:
    desired = deployment()
    live = live_with(
        desired,
        entry("kube-controller-manager", {"f:status": {"f:replicas": {}}}, subresource="status"),
        entry("kube-controller-manager", {"f:spec": {"f:replicas": {}}}, subresource="scale"),
        entry(
            "kube-controller-manager", {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}
        ),
        entry("kubectl-edit", {"f:spec": {"f:template": {"f:spec": {"f:containers": {CONTAINER: {"f:image": {}}}}}}}),
    )
    live["spec"]["replicas"] = 5
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
    live["status"] = {"replicas": 5}
    hpa = frozenset({("ns", "Deployment", "web")})
    assert foreign_fields(live, desired, hpa) == []  # the image was re-written with the release's own value
    (scaled,) = [f for _, f in foreign_fields(live, desired, frozenset())]  # without an HPA the count is drift
    assert (scaled.path, scaled.live, scaled.desired) == ("spec.replicas", 5, 2)
