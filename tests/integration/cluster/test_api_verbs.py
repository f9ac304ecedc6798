"""Conformance by verb with the official python client's typed APIs: what EKS would answer, the emulator answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from local.cluster import Cluster

pytestmark = pytest.mark.integration


def deployment(
    name: str = "web", *, replicas: int = 2, image: str = "nginx:1.27", ns: str = "default"
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def config_map(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}, **meta}, "data": {"k": "v"}}


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_version_and_discovery(kube: client.ApiClient) -> None:
    info = client.VersionApi(kube).get_code()
    assert info.git_version.startswith("v1.32.")
    groups = {g.name: g for g in client.ApisApi(kube).get_api_versions().groups}
    assert {
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "storage.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
    } <= set(groups)
    assert groups["autoscaling"].preferred_version.version == "v2"
    resources = {r.name: r for r in client.AppsV1Api(kube).get_api_resources().resources}
    assert resources["deployments"].short_names == ["deploy"]
    assert resources["deployments"].namespaced
    assert resources["deployments/scale"].kind == "Scale"
    assert resources["deployments/scale"].group == "autoscaling"
    assert resources["deployments/status"].verbs == ["get", "patch", "update"]
    core = {r.name: r for r in client.CoreV1Api(kube).get_api_resources().resources}
    assert not core["namespaces"].namespaced
    assert "services/proxy" in core


def test_create_get_update_delete_with_real_metadata(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    created = v1.create_namespaced_config_map("default", config_map("cm", {"app": "x"}))
    meta = created.metadata
    assert meta.uid
    assert meta.resource_version
    assert meta.creation_timestamp
    assert meta.generation is None  # ConfigMaps have no generation
    [entry] = meta.managed_fields
    assert (entry.manager, entry.operation, entry.api_version) == ("OpenAPI-Generator", "Update", "v1")
    assert entry.fields_v1 == {"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}

    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_config_map("default", config_map("cm"))
    assert (exists.value.status, exists.value.reason) == (409, "Conflict")
    assert status_of(exists.value)["reason"] == "AlreadyExists"
    assert status_of(exists.value)["message"] == 'configmaps "cm" already exists'

    fetched = v1.read_namespaced_config_map("cm", "default")
    fetched.data["k"] = "v2"
    updated = v1.replace_namespaced_config_map("cm", "default", fetched, field_manager="editor")
    assert int(updated.metadata.resource_version) > int(meta.resource_version)
    assert {m.manager for m in updated.metadata.managed_fields} == {"OpenAPI-Generator", "editor"}

    fetched.data["k"] = "stale"  # fetched still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        v1.replace_namespaced_config_map("cm", "default", fetched)
    assert stale.value.status == 409
    assert status_of(stale.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(stale.value)["message"]

    v1.delete_namespaced_config_map("cm", "default")
    with pytest.raises(ApiException) as gone:
        v1.read_namespaced_config_map("cm", "default")
    assert gone.value.status == 404
    assert status_of(gone.value)["details"] == {"name": "cm", "kind": "configmaps"}


def test_unchanged_update_does_not_bump_the_resource_version(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    created = v1.create_namespaced_config_map("default", config_map("same"))
    again = v1.replace_namespaced_config_map("same", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version


def test_list_selectors_kind_and_pagination(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    for i, tier in enumerate(["web", "web", "db", "cache"]):
        v1.create_namespaced_config_map("default", config_map(f"cm-{i}", {"tier": tier, "n": str(i)}))
    raw = json.loads(v1.list_namespaced_config_map("default", _preload_content=False).data)
    assert raw["kind"] == "ConfigMapList"
    assert raw["apiVersion"] == "v1"
    assert raw["metadata"]["resourceVersion"]

    def names(**kw: Any) -> list[str]:
        return [c.metadata.name for c in v1.list_namespaced_config_map("default", **kw).items]

    assert names(label_selector="tier=web") == ["cm-0", "cm-1"]
    assert names(label_selector="tier!=web,tier") == ["cm-2", "cm-3"]
    assert names(label_selector="tier in (db, cache)") == ["cm-2", "cm-3"]
    assert names(label_selector="tier notin (db)") == ["cm-0", "cm-1", "cm-3", "kube-root-ca.crt"]  # no tier label
    assert names(label_selector="!tier") == ["kube-root-ca.crt"]  # the root CA publisher's ConfigMap
    assert names(field_selector="metadata.name=cm-2") == ["cm-2"]
    assert names(field_selector="metadata.name!=cm-2", label_selector="tier") == ["cm-0", "cm-1", "cm-3"]
    page = v1.list_namespaced_config_map("default", limit=3, label_selector="tier")
    assert [c.metadata.name for c in page.items] == ["cm-0", "cm-1", "cm-2"]
    assert page.metadata.remaining_item_count == 1
    rest = v1.list_namespaced_config_map("default", limit=3, label_selector="tier", _continue=page.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-3"]
    with pytest.raises(ApiException) as bad:
        v1.list_namespaced_config_map("default", label_selector="tier in web")
    assert bad.value.status == 400
    everywhere = v1.list_config_map_for_all_namespaces(label_selector="tier=db")
    assert [c.metadata.namespace for c in everywhere.items] == ["default"]


def test_validation_answers_invalid_with_causes(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    apps = client.AppsV1Api(kube)
    with pytest.raises(ApiException) as bad_name:
        v1.create_namespaced_config_map("default", config_map("Bad_Name"))
    body = status_of(bad_name.value)
    assert (bad_name.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ')
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"

    no_selector = deployment()
    del no_selector["spec"]["selector"]
    with pytest.raises(ApiException) as missing:
        apps.create_namespaced_deployment("default", no_selector)
    causes = status_of(missing.value)["details"]["causes"]
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"} in causes
    assert status_of(missing.value)["details"]["kind"] == "Deployment"
    assert status_of(missing.value)["details"]["group"] == "apps"

    mismatch = deployment()
    mismatch["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as wrong:
        apps.create_namespaced_deployment("default", mismatch)
    assert "`selector` does not match template `labels`" in status_of(wrong.value)["message"]

    no_image = deployment()
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    with pytest.raises(ApiException) as image:
        apps.create_namespaced_deployment("default", no_image)
    assert status_of(image.value)["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].image"

    svc = {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 70000}]}}
    with pytest.raises(ApiException) as port:
        v1.create_namespaced_service("default", svc)
    assert status_of(port.value)["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: 70000: must be between 1 and 65535, inclusive",
        "field": "spec.ports[0].port",
    }
    with pytest.raises(ApiException) as ns_label:
        v1.create_namespace({"metadata": {"name": "a.b"}})
    assert "RFC 1123 label" in status_of(ns_label.value)["message"]


def test_namespace_mismatch_is_bad_request_and_missing_namespace_not_found(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    with pytest.raises(ApiException) as mismatch:
        v1.create_namespaced_config_map("default", config_map("cm", namespace="other"))
    assert (mismatch.value.status, status_of(mismatch.value)["reason"]) == (400, "BadRequest")
    assert "does not match the namespace" in status_of(mismatch.value)["message"]
    with pytest.raises(ApiException) as missing:
        v1.create_namespaced_config_map("nowhere", config_map("cm"))
    assert missing.value.status == 404
    assert status_of(missing.value)["message"] == 'namespaces "nowhere" not found'


def test_generation_status_and_status_subresource(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    body = deployment()
    body["status"] = {"replicas": 99}
    created = apps.create_namespaced_deployment("default", body)
    assert created.metadata.generation == 1
    assert created.status.replicas != 99  # status is not writable through the main resource
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1  # metadata changes do not bump generation
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    ignored = apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 42}})
    assert ignored.status.replicas != 42
    assert ignored.metadata.resource_version == scaled.metadata.resource_version or ignored.status.replicas != 42
    written = apps.patch_namespaced_deployment_status("web", "default", {"status": {"observedGeneration": 7}})
    assert written.status.observed_generation == 7
    assert written.metadata.generation == 2
    assert written.spec.replicas == 3
    status_managers = [m for m in written.metadata.managed_fields if m.subresource == "status"]
    assert status_managers
    assert status_managers[0].operation == "Update"


def test_patch_types(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment("default", deployment())
    # strategic merge (the typed client's default for dict bodies): containers merge by name
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}
    merged = apps.patch_namespaced_deployment("web", "default", patch)
    assert [c.name for c in merged.spec.template.spec.containers] == ["app", "side"]
    # JSON patch
    ops = [{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "busybox:2"}]
    patched = apps.patch_namespaced_deployment("web", "default", ops)
    assert patched.spec.template.spec.containers[1].image == "busybox:2"
    # merge patch replaces lists
    resource = DynamicClient(kube).resources.get(api_version="apps/v1", kind="Deployment")
    replaced = resource.patch(
        name="web",
        namespace="default",
        body={"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}},
        content_type="application/merge-patch+json",
    )
    assert [c["image"] for c in replaced.spec.template.spec.containers] == ["nginx:2"]
    with pytest.raises(ApiException) as failed_test:
        apps.patch_namespaced_deployment("web", "default", [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert failed_test.value.status == 422
    with pytest.raises(ApiException) as stale:
        apps.patch_namespaced_deployment("web", "default", {"metadata": {"resourceVersion": "1"}})
    assert stale.value.status == 409


def test_scale_subresource(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.kind, scale.api_version, scale.spec.replicas) == ("Scale", "autoscaling/v1", 2)
    assert scale.status.selector == "app=web"
    scale.spec.replicas = 4
    assert apps.replace_namespaced_deployment_scale("web", "default", scale).spec.replicas == 4
    patched = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    assert patched.spec.replicas == 1
    d = apps.read_namespaced_deployment("web", "default")
    assert d.spec.replicas == 1
    assert d.metadata.generation == 3
    assert any(m.subresource == "scale" for m in d.metadata.managed_fields)
    with pytest.raises(ApiException) as negative:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -1}})
    assert negative.value.status == 422


def test_watch_streams_added_modified_deleted(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    start = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", config_map("w", {"watch": "me"}))
    v1.patch_namespaced_config_map("w", "default", {"data": {"k": "2"}})
    v1.create_namespaced_config_map("default", config_map("unrelated"))
    v1.delete_namespaced_config_map("w", "default")
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            v1.list_namespaced_config_map,
            "default",
            label_selector="watch=me",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_resource_version_lists_first_then_follows(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    v1.create_namespaced_config_map("default", config_map("existing"))
    w = watch.Watch()
    seen = []
    for event in w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=5):
        if event["object"].metadata.name == "kube-root-ca.crt":
            continue  # every namespace has it (the root CA publisher)
        seen.append((event["type"], event["object"].metadata.name))
        if event["object"].metadata.name == "existing" and len(seen) == 1:
            v1.create_namespaced_config_map("default", config_map("later"))
        if event["object"].metadata.name == "later":
            w.stop()
    assert seen == [("ADDED", "existing"), ("ADDED", "later")]


def test_watch_from_a_compacted_resource_version_gets_410(monkeypatch: pytest.MonkeyPatch) -> None:
    import local.cluster.store as store_module  # noqa: PLC0415
    from local.cluster import api_client  # noqa: PLC0415

    monkeypatch.setattr(store_module, "HISTORY", 5)
    with Cluster() as small:
        api = api_client(small)
        v1 = client.CoreV1Api(api)
        for i in range(10):
            v1.create_namespaced_config_map("default", config_map(f"c{i}"))
        resp = v1.list_namespaced_config_map(
            "default", watch=True, resource_version="2", timeout_seconds=1, _preload_content=False
        )
        first = json.loads(resp.data.decode().splitlines()[0])
        api.close()
    assert first["type"] == "ERROR"
    assert first["object"]["code"] == 410
    assert first["object"]["reason"] == "Expired"
    assert first["object"]["message"].startswith("too old resource version: 2")


def test_delete_propagation_and_garbage_collection(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    owner = v1.create_namespaced_config_map("default", config_map("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    v1.create_namespaced_config_map("default", config_map("child", ownerReferences=[ref]))
    v1.create_namespaced_config_map(
        "default",
        config_map(
            "grandchild",
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "child",
                    "uid": v1.read_namespaced_config_map("child", "default").metadata.uid,
                }
            ],
        ),
    )
    result = v1.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    assert result.status == "Success"
    remaining = {c.metadata.name for c in v1.list_namespaced_config_map("default").items}
    assert not remaining & {"owner", "child", "grandchild"}

    owner = v1.create_namespaced_config_map("default", config_map("owner2"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.metadata.uid}
    v1.create_namespaced_config_map("default", config_map("orphan", ownerReferences=[ref]))
    v1.delete_namespaced_config_map("owner2", "default", propagation_policy="Orphan")
    orphan = v1.read_namespaced_config_map("orphan", "default")
    assert not orphan.metadata.owner_references


def test_deleting_a_namespace_deletes_its_objects(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    v1.create_namespace({"metadata": {"name": "temp"}})
    assert [sa.metadata.name for sa in v1.list_namespaced_service_account("temp").items] == ["default"]
    v1.create_namespaced_config_map("temp", config_map("cm"))
    client.AppsV1Api(kube).create_namespaced_deployment("temp", deployment(ns="temp"))
    v1.delete_namespace("temp")
    assert v1.list_namespaced_config_map("temp").items == []
    assert client.AppsV1Api(kube).list_namespaced_deployment("temp").items == []
    with pytest.raises(ApiException) as protected:
        v1.delete_namespace("default")
    assert protected.value.status == 403


def test_dry_run_validates_without_storing(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    dry = v1.create_namespaced_config_map("default", config_map("dry"), dry_run="All")
    assert dry.metadata.uid
    with pytest.raises(ApiException):
        v1.read_namespaced_config_map("dry", "default")
    with pytest.raises(ApiException) as invalid:
        v1.create_namespaced_config_map("default", config_map("Dry!"), dry_run="All")
    assert invalid.value.status == 422
    v1.create_namespaced_config_map("default", config_map("real"))
    patched = v1.patch_namespaced_config_map("real", "default", {"data": {"k": "dry"}}, dry_run="All")
    assert patched.data["k"] == "dry"
    assert v1.read_namespaced_config_map("real", "default").data["k"] == "v"
    v1.delete_namespaced_config_map("real", "default", dry_run="All")
    assert v1.read_namespaced_config_map("real", "default").metadata.name == "real"


def test_services_get_cluster_ips_and_defaults(kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    svc = v1.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "api"},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "name": "http"}]},
        },
    )
    assert svc.spec.cluster_ip.startswith("10.100.")
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.ports[0].protocol == "TCP"
    assert svc.spec.ports[0].target_port == 80
    replaced = v1.replace_namespaced_service(
        "api",
        "default",
        {
            "metadata": {"name": "api", "resourceVersion": svc.metadata.resource_version},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 81, "name": "http"}]},
        },
    )
    assert replaced.spec.cluster_ip == svc.spec.cluster_ip
