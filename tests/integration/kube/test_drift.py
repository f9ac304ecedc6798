"""Drift detection and reclaiming against the API emulator: what other managers did to a release, and undoing it.

The release is the rendered bundle with one workload (quality-service) left without its HPA, so a scaled Deployment
without an HPA and HPA-owned replica counts can both be seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.kube.apply import apply_objects
from controlplane.kube.client import ApiClient, ClusterAccess, build_api_client
from controlplane.kube.drift import detect, detect_addons, field_path, reclaim
from controlplane.models.drift import DriftFinding
from controlplane.models.kube import ObjectRef
from controlplane.render import addon_objects, load_bundle, render_release, without_addons
from kubernetes.client import AppsV1Api, CoreV1Api

from local.cluster import Cluster, api_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NS = platform.NAMESPACE
SYSTEM = "kube-system"
NO_HPA = "quality-service"
RELEASE = "rel-00000000000000000001"


def release() -> list[dict[str, Any]]:
    images = dict.fromkeys(platform.SERVICE_NAMES, "sha256:" + "a" * 64)
    objects = render_release(
        load_bundle(REPO / "manifests" / "kubernetes"),
        "staging",
        images,
        account_id="123456789012",
        region="us-east-1",
        cluster_name="drift",
    )
    kept = [o for o in objects if not (o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == NO_HPA)]
    for obj in kept:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == NO_HPA:
            obj["spec"]["replicas"] = 2
    return kept


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Cluster, ApiClient, list[dict[str, Any]]]]:
    with Cluster("drift") as cluster:
        api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
        objects = release()
        apply_objects(api, objects, release_id=RELEASE)
        cluster.advance(30)
        try:
            yield cluster, api, without_addons(objects)  # what DetectDrift compares: the release's own objects
        finally:
            api.close()


def by_path(findings: list[DriftFinding]) -> dict[tuple[str, str | None], DriftFinding]:
    return {(f.ref.name, f.path): f for f in findings}


def test_field_paths_read_like_the_diff() -> None:
    keys = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}', "f:image")
    assert field_path(keys) == "spec.template.spec.containers[name=app].image"
    assert field_path(("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}')) == "spec.ports[port=80,protocol=TCP]"


def test_a_fresh_release_has_no_drift_and_controllers_do_not_count(world: Any) -> None:
    cluster, api, objects = world
    cluster.advance(60)  # controllers write status, the HPAs scale their workloads (spec.replicas via /scale)
    assert detect(api, objects) == []


def test_other_managers_edits_are_reported_with_paths_and_managers_and_reclaim_restores(world: Any) -> None:
    cluster, api, objects = world
    official = api_client(cluster)  # someone editing by hand, with the official client
    apps, core = AppsV1Api(official), CoreV1Api(official)
    # kubectl edit: a PUT adding an env var to edc-service; another edit changes analytics-service's image
    edc = official.sanitize_for_serialization(apps.read_namespaced_deployment("edc-service", NS))
    edc["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append({"name": "DEBUG", "value": "1"})
    apps.replace_namespaced_deployment("edc-service", NS, edc, field_manager="kubectl-edit")
    analytics = official.sanitize_for_serialization(apps.read_namespaced_deployment("analytics-service", NS))
    analytics["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    apps.replace_namespaced_deployment("analytics-service", NS, analytics, field_manager="kubectl-edit")
    # kubectl scale of a workload without an HPA, and of one with an HPA (the HPA owns its count: not drift)
    apps.patch_namespaced_deployment_scale(NO_HPA, NS, {"spec": {"replicas": 5}}, field_manager="kubectl")
    apps.patch_namespaced_deployment_scale("api-gateway", NS, {"spec": {"replicas": 4}}, field_manager="kubectl")
    # kubectl delete of a Service; kubectl create of a ConfigMap nobody deploys
    core.delete_namespaced_service("edc-service", NS)
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "hotfix"}, "data": {"K": "V"}}, field_manager="kubectl-create"
    )
    cluster.advance(30)

    found = by_path(detect(api, objects))
    env = found["edc-service", "spec.template.spec.containers[name=edc-service].env[name=DEBUG]"]
    assert (env.kind, env.manager, env.live, env.desired) == (
        "added",
        "kubectl-edit",
        {"name": "DEBUG", "value": "1"},
        None,
    )
    image = found["analytics-service", "spec.template.spec.containers[name=analytics-service].image"]
    assert (image.kind, image.manager, image.live) == ("changed", "kubectl-edit", "nginx:1.27")
    assert str(image.desired).endswith("@sha256:" + "a" * 64)
    scaled = found[NO_HPA, "spec.replicas"]
    assert (scaled.kind, scaled.manager, scaled.live, scaled.desired) == ("changed", "kubectl", 5, 2)
    deleted = found["edc-service", None]
    assert (deleted.ref.kind, deleted.kind, deleted.manager) == ("Service", "deleted", None)
    added = found["hotfix", None]
    assert (added.ref.kind, added.kind, added.manager) == ("ConfigMap", "added", "kubectl-create")
    assert ("api-gateway", "spec.replicas") not in found  # HPA-owned
    assert not [f for f in found.values() if f.path and f.path.startswith("status")]
    assert len(found) == 5, sorted(found)

    # heal: reclaim what others added, then the release's forced apply restores the rest
    assert [r.name for r in reclaim(api, objects)] == ["edc-service"]
    apply_objects(api, objects, release_id=RELEASE)
    core.delete_namespaced_config_map("hotfix", NS)  # an added object is reported, never deleted by a heal
    cluster.advance(30)
    assert detect(api, objects) == []
    live = official.sanitize_for_serialization(apps.read_namespaced_deployment("edc-service", NS))
    assert "env" not in live["spec"]["template"]["spec"]["containers"][0] or not [
        e for e in live["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "DEBUG"
    ]
    assert "kubectl-edit" not in {m["manager"] for m in live["metadata"]["managedFields"]}


def test_addons_are_compared_by_listing_with_the_record_of_the_last_apply_and_a_forced_apply_restores(
    world: Any,
) -> None:
    cluster, api, _ = world
    addons = addon_objects(release())
    record = {o.ref.key: o for o in apply_objects(api, addons, release_id=RELEASE).objects}
    cluster.advance(30)  # controllers write the add-on workloads' status: not drift
    assert detect_addons(api, addons, record) == []

    official = api_client(cluster)
    apps, core = AppsV1Api(official), CoreV1Api(official)
    # kubectl edit of the autoscaler's command in kube-system (a field of ours: the ownership view names it)
    autoscaler = official.sanitize_for_serialization(apps.read_namespaced_deployment("cluster-autoscaler", SYSTEM))
    container = autoscaler["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [("--v=9" if arg == "--v=4" else arg) for arg in container["command"]]
    apps.replace_namespaced_deployment("cluster-autoscaler", SYSTEM, autoscaler, field_manager="kubectl-edit")
    # a JSON patch removing a field of ours (nobody owns a removed field: only the record shows the change)
    apps.patch_namespaced_deployment(
        "external-secrets",
        "external-secrets",
        [{"op": "remove", "path": "/spec/template/spec/containers/0/args"}],
        field_manager="kubectl-patch",
    )
    # kubectl delete of the webhook's Service
    core.delete_namespaced_service("aws-load-balancer-webhook-service", SYSTEM)
    cluster.advance(30)

    found = by_path(detect_addons(api, addons, record))
    command = found["cluster-autoscaler", "spec.template.spec.containers[name=cluster-autoscaler].command"]
    assert (command.ref.namespace, command.kind, command.manager, command.found_by) == (
        SYSTEM,
        "changed",
        "kubectl-edit",
        "ownership",
    )
    assert "--v=9" in command.live
    moved = found["external-secrets", "metadata.generation"]
    # (a write that only removed fields owns nothing: nobody can name its manager)
    assert (moved.kind, moved.found_by, moved.manager) == ("changed", "record", None)
    assert moved.live == record[ObjectRef.of(_named(addons, "Deployment", "external-secrets")).key].generation + 1
    deleted = found["aws-load-balancer-webhook-service", None]
    assert (deleted.ref.kind, deleted.kind, deleted.found_by) == ("Service", "deleted", "listing")
    assert len(found) == 3, sorted(found)
    # without a record of the last apply, only what listing and ownership show
    assert {(f.ref.name, f.path) for f in detect_addons(api, addons, {})} == {
        ("cluster-autoscaler", command.path),
        ("aws-load-balancer-webhook-service", None),
    }

    # the next release's forced apply of what was found restores them; its record is the new baseline
    record |= {o.ref.key: o for o in apply_objects(api, addons, release_id=RELEASE, last_applied=record).objects}
    cluster.advance(30)
    assert detect_addons(api, addons, record) == []


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
