"""Server-side apply through ``kubernetes.dynamic.DynamicClient`` and custom resources from a CRD."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from local.cluster import Cluster

pytestmark = pytest.mark.integration


def deployment(replicas: int = 2, image: str = "nginx:1.27", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


EXTERNAL_SECRETS_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "externalsecrets.external-secrets.io"},
    "spec": {
        "group": "external-secrets.io",
        "scope": "Namespaced",
        "names": {
            "plural": "externalsecrets",
            "singular": "externalsecret",
            "kind": "ExternalSecret",
            "listKind": "ExternalSecretList",
            "shortNames": ["es"],
            "categories": ["external-secrets"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
STORE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clustersecretstores.external-secrets.io"},
    "spec": {
        "group": "external-secrets.io",
        "scope": "Cluster",
        "names": {
            "plural": "clustersecretstores",
            "singular": "clustersecretstore",
            "kind": "ClusterSecretStore",
            "shortNames": ["css"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    },
}


def external_secret(key: str = "prod/db") -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "aws"},
            "target": {"name": "db"},
            "data": [{"secretKey": "password", "remoteRef": {"key": key}}],
        },
    }


def body_of(exc: Exception) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(exc.body)  # type: ignore[attr-defined]
    return out


def replica_owners(obj: dict[str, Any]) -> list[str]:
    return [m["manager"] for m in obj["metadata"]["managedFields"] if "f:replicas" in m["fieldsV1"].get("f:spec", {})]


def raw(kube: client.ApiClient, method: str, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    """A request with exactly these bytes (the generated client would re-encode a string body)."""
    config = kube.configuration
    resp = kube.rest_client.pool_manager.request(
        method,
        config.host + path,
        body=body,
        headers={"Content-Type": content_type, "Authorization": config.get_api_key_with_prefix("authorization")},
    )
    return resp.status, json.loads(resp.data)


@pytest.fixture
def dyn(kube: client.ApiClient) -> DynamicClient:
    return DynamicClient(kube)


def test_apply_creates_then_updates_with_apply_managed_fields(dyn: DynamicClient) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    created = deployments.server_side_apply(body=deployment(), field_manager="release")
    assert created.metadata.generation == 1
    [entry] = created.to_dict()["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("release", "Apply", "apps/v1")
    assert entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']["f:ports"] == {
        'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
    }
    before = deployments.get(name="web", namespace="default")  # the controllers have written status since
    again = deployments.server_side_apply(body=deployment(), field_manager="release")
    assert again.metadata.resourceVersion == before.metadata.resourceVersion  # a no-op apply writes nothing
    changed = deployments.server_side_apply(body=deployment(replicas=5), field_manager="release")
    assert changed.spec.replicas == 5
    assert changed.metadata.generation == 2


def test_apply_conflict_lists_causes_and_force_takes_ownership(dyn: DynamicClient, kube: client.ApiClient) -> None:
    client.AppsV1Api(kube).create_namespaced_deployment(
        "default", deployment(), field_manager="kubectl-client-side-apply"
    )
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    with pytest.raises(ConflictError) as info:
        deployments.server_side_apply(body=deployment(replicas=3), field_manager="release")
    status = body_of(info.value)
    assert status["reason"] == "Conflict"
    assert status["code"] == 409
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    # the same value is not a conflict: ownership is shared
    shared = deployments.server_side_apply(body=deployment(replicas=2), field_manager="release")
    assert sorted(replica_owners(shared.to_dict())) == ["kubectl-client-side-apply", "release"]
    forced = deployments.server_side_apply(body=deployment(replicas=3), field_manager="release", force_conflicts=True)
    assert forced.spec.replicas == 3
    assert replica_owners(forced.to_dict()) == ["release"]


def test_fields_dropped_from_the_applied_config_are_removed(dyn: DynamicClient) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(body=deployment(team="a", tier="web"), field_manager="release")
    dropped = deployments.server_side_apply(body=deployment(team="a"), field_manager="release")
    assert dict(dropped.metadata.labels) == {"app": "web", "team": "a"}


def test_apply_requires_a_field_manager_and_accepts_yaml(kube: client.ApiClient) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    apply = "application/apply-patch+yaml"
    code, status = raw(kube, "PATCH", path, json.dumps(deployment()).encode(), apply)
    assert code == 422
    assert status["details"]["causes"][0]["field"] == "fieldManager"
    code, created = raw(kube, "PATCH", path + "?fieldManager=yaml-user", yaml.safe_dump(deployment()).encode(), apply)
    assert code == 201
    assert created["metadata"]["managedFields"][0]["manager"] == "yaml-user"
    wrong = json.dumps({**deployment(), "apiVersion": "apps/v1beta1"}).encode()
    code, status = raw(kube, "PATCH", path + "?fieldManager=x", wrong, apply)
    assert (code, status["reason"]) == (400, "BadRequest")
    code, status = raw(kube, "PATCH", path, b"{}", "application/x-unknown")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


def test_dry_run_apply_does_not_store(dyn: DynamicClient) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    result = deployments.server_side_apply(body=deployment(), field_manager="release", dry_run="All")
    assert result.metadata.name == "web"
    with pytest.raises(NotFoundError):
        deployments.get(name="web", namespace="default")


def test_crd_serves_custom_resources(dyn: DynamicClient, kube: client.ApiClient) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    created = crds.create(body=EXTERNAL_SECRETS_CRD)
    conditions = {c["type"]: c["status"] for c in created.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    crds.server_side_apply(body=STORE_CRD, field_manager="platform")

    groups = {g.name for g in client.ApisApi(kube).get_api_versions().groups}
    assert "external-secrets.io" in groups
    secrets = dyn.resources.get(api_version="external-secrets.io/v1", kind="ExternalSecret")
    assert secrets.namespaced
    applied = secrets.server_side_apply(body=external_secret(), field_manager="release")
    assert applied.metadata.generation == 1
    assert applied.spec.data[0].remoteRef.key == "prod/db"
    updated = secrets.server_side_apply(body=external_secret("prod/db2"), field_manager="release")
    assert updated.metadata.generation == 2
    listed = secrets.get(namespace="default")
    assert listed.kind == "ExternalSecretList"
    assert [i.kind for i in listed.items] == ["ExternalSecret"]  # custom resource items keep kind/apiVersion

    stores = dyn.resources.get(api_version="external-secrets.io/v1", kind="ClusterSecretStore")
    assert not stores.namespaced
    stores.server_side_apply(
        body={
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": "aws"},
            "spec": {"provider": {"aws": {}}},
        },
        field_manager="platform",
    )
    assert [s.metadata.name for s in stores.get().items] == ["aws"]

    with pytest.raises(ApiException) as smp:
        secrets.patch(
            name="db",
            namespace="default",
            body={"spec": {"target": {"name": "x"}}},
            content_type="application/strategic-merge-patch+json",
        )
    assert smp.value.status == 415
    merged = secrets.patch(
        name="db",
        namespace="default",
        body={"spec": {"target": {"name": "x"}}},
        content_type="application/merge-patch+json",
    )
    assert merged.spec.target.name == "x"

    crds.delete(name="externalsecrets.external-secrets.io")
    stores_still = dyn.resources.get(api_version="external-secrets.io/v1", kind="ClusterSecretStore")
    assert [s.metadata.name for s in stores_still.get().items] == ["aws"]


def test_custom_resources_disappear_with_their_crd(kube: client.ApiClient, dyn: DynamicClient) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body=EXTERNAL_SECRETS_CRD)
    dyn.resources.get(api_version="external-secrets.io/v1", kind="ExternalSecret").create(body=external_secret())
    crds.delete(name="externalsecrets.external-secrets.io")
    with pytest.raises(ApiException) as gone:
        kube.call_api(
            "/apis/external-secrets.io/v1/namespaces/default/externalsecrets",
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
    assert gone.value.status == 404
    crds.create(body=EXTERNAL_SECRETS_CRD)
    again = dyn.resources.get(api_version="external-secrets.io/v1", kind="ExternalSecret")
    assert again.get(namespace="default").items == []


def test_reapplying_an_unchanged_crd_after_time_passes_is_a_no_op(dyn: DynamicClient, cluster: Cluster) -> None:
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    first = crds.server_side_apply(body=EXTERNAL_SECRETS_CRD, field_manager="platform")
    cluster.advance(120)

    again = crds.server_side_apply(body=EXTERNAL_SECRETS_CRD, field_manager="platform")

    assert again.metadata.resourceVersion == first.metadata.resourceVersion
    assert [c["lastTransitionTime"] for c in again.status.conditions] == [
        c["lastTransitionTime"] for c in first.status.conditions
    ]
