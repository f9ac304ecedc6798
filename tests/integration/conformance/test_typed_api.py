"""Every resource the emulator claims (``local.cluster`` docstring), through the official client's typed APIs:
create, read, list (namespaced and across namespaces), patch, replace, delete, each answer deserialised into the
client's models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from local.cluster import Cluster

from .conftest import NAMESPACE

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
LABELS = {"app": "conformance"}


def _pod_template() -> Obj:
    return {
        "metadata": {"labels": dict(LABELS)},
        "spec": {"containers": [{"name": "app", "image": "repo/app:v1", "ports": [{"containerPort": 8080}]}]},
    }


def _meta(name: str, namespaced: bool) -> Obj:
    return {"name": name, **({"namespace": NAMESPACE} if namespaced else {})}


@dataclass(frozen=True)
class Case:
    api: Callable[[client.ApiClient], Any]
    kind: str  # the client's snake_case kind: create_namespaced_<kind> / create_<kind>
    api_version: str
    kind_name: str
    namespaced: bool
    body: Callable[[], Obj]
    all_namespaces: bool = True  # has list_<kind>_for_all_namespaces

    def call(self, kube: client.ApiClient, verb: str, **kwargs: Any) -> Any:
        api = self.api(kube)
        scope = "namespaced_" if self.namespaced and verb != "list_all" else ""
        if verb == "list_all":
            return getattr(api, f"list_{self.kind}_for_all_namespaces")(**kwargs)
        if self.namespaced:
            kwargs["namespace"] = NAMESPACE
        return getattr(api, f"{verb}_{scope}{self.kind}")(**kwargs)

    def manifest(self, name: str) -> Obj:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind_name,
            "metadata": _meta(name, self.namespaced),
            **self.body(),
        }


def _crd() -> Obj:
    return {
        "spec": {
            "group": "conformance.example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        }
    }


NAMESPACED, CLUSTER = True, False
CASES = [
    Case(client.CoreV1Api, "namespace", "v1", "Namespace", CLUSTER, dict, all_namespaces=False),
    Case(client.CoreV1Api, "config_map", "v1", "ConfigMap", NAMESPACED, lambda: {"data": {"k": "v"}}),
    Case(client.CoreV1Api, "secret", "v1", "Secret", NAMESPACED, lambda: {"stringData": {"k": "v"}}),
    Case(client.CoreV1Api, "service_account", "v1", "ServiceAccount", NAMESPACED, dict),
    Case(
        client.CoreV1Api,
        "service",
        "v1",
        "Service",
        NAMESPACED,
        lambda: {"spec": {"selector": dict(LABELS), "ports": [{"port": 80, "targetPort": 8080}]}},
    ),
    Case(
        client.CoreV1Api,
        "endpoints",
        "v1",
        "Endpoints",
        NAMESPACED,
        lambda: {"subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 8080}]}]},
    ),
    Case(
        client.CoreV1Api,
        "persistent_volume_claim",
        "v1",
        "PersistentVolumeClaim",
        NAMESPACED,
        lambda: {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    ),
    Case(client.CoreV1Api, "pod", "v1", "Pod", NAMESPACED, lambda: {"spec": _pod_template()["spec"]}),
    Case(
        client.CoreV1Api,
        "event",
        "v1",
        "Event",
        NAMESPACED,
        lambda: {
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": NAMESPACE},
            "reason": "Test",
            "message": "m",
        },
    ),
    Case(
        client.CoreV1Api,
        "node",
        "v1",
        "Node",
        CLUSTER,
        lambda: {"spec": {"taints": [{"key": "conformance", "effect": "NoSchedule"}]}},
        all_namespaces=False,
    ),
    Case(
        client.AppsV1Api,
        "deployment",
        "apps/v1",
        "Deployment",
        NAMESPACED,
        lambda: {"spec": {"replicas": 1, "selector": {"matchLabels": dict(LABELS)}, "template": _pod_template()}},
    ),
    Case(
        client.AppsV1Api,
        "replica_set",
        "apps/v1",
        "ReplicaSet",
        NAMESPACED,
        lambda: {"spec": {"replicas": 1, "selector": {"matchLabels": dict(LABELS)}, "template": _pod_template()}},
    ),
    Case(
        client.AppsV1Api,
        "stateful_set",
        "apps/v1",
        "StatefulSet",
        NAMESPACED,
        lambda: {
            "spec": {
                "replicas": 1,
                "serviceName": "db",
                "selector": {"matchLabels": dict(LABELS)},
                "template": _pod_template(),
            }
        },
    ),
    Case(
        client.AppsV1Api,
        "daemon_set",
        "apps/v1",
        "DaemonSet",
        NAMESPACED,
        lambda: {"spec": {"selector": {"matchLabels": dict(LABELS)}, "template": _pod_template()}},
    ),
    Case(
        client.AppsV1Api,
        "controller_revision",
        "apps/v1",
        "ControllerRevision",
        NAMESPACED,
        lambda: {"revision": 1, "data": {"spec": {}}},
    ),
    Case(
        client.BatchV1Api,
        "job",
        "batch/v1",
        "Job",
        NAMESPACED,
        lambda: {
            "spec": {"template": {**_pod_template(), "spec": {**_pod_template()["spec"], "restartPolicy": "Never"}}}
        },
    ),
    Case(
        client.BatchV1Api,
        "cron_job",
        "batch/v1",
        "CronJob",
        NAMESPACED,
        lambda: {
            "spec": {
                "schedule": "0 3 * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {**_pod_template(), "spec": {**_pod_template()["spec"], "restartPolicy": "Never"}}
                    }
                },
            }
        },
    ),
    Case(
        client.AutoscalingV2Api,
        "horizontal_pod_autoscaler",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        NAMESPACED,
        lambda: {
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "absent"},
                "minReplicas": 1,
                "maxReplicas": 3,
            }
        },
    ),
    Case(
        client.PolicyV1Api,
        "pod_disruption_budget",
        "policy/v1",
        "PodDisruptionBudget",
        NAMESPACED,
        lambda: {"spec": {"minAvailable": 1, "selector": {"matchLabels": dict(LABELS)}}},
    ),
    Case(
        client.NetworkingV1Api,
        "ingress",
        "networking.k8s.io/v1",
        "Ingress",
        NAMESPACED,
        lambda: {"spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}},
    ),
    Case(
        client.NetworkingV1Api,
        "ingress_class",
        "networking.k8s.io/v1",
        "IngressClass",
        CLUSTER,
        lambda: {"spec": {"controller": "example.com/ingress"}},
        all_namespaces=False,
    ),
    Case(
        client.NetworkingV1Api,
        "network_policy",
        "networking.k8s.io/v1",
        "NetworkPolicy",
        NAMESPACED,
        lambda: {"spec": {"podSelector": {"matchLabels": dict(LABELS)}, "policyTypes": ["Ingress"]}},
    ),
    Case(
        client.StorageV1Api,
        "storage_class",
        "storage.k8s.io/v1",
        "StorageClass",
        CLUSTER,
        lambda: {"provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}},
        all_namespaces=False,
    ),
    Case(
        client.RbacAuthorizationV1Api,
        "role",
        "rbac.authorization.k8s.io/v1",
        "Role",
        NAMESPACED,
        lambda: {"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]},
    ),
    Case(
        client.RbacAuthorizationV1Api,
        "role_binding",
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        NAMESPACED,
        lambda: {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    ),
    Case(
        client.RbacAuthorizationV1Api,
        "cluster_role",
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        CLUSTER,
        lambda: {"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]},
        all_namespaces=False,
    ),
    Case(
        client.RbacAuthorizationV1Api,
        "cluster_role_binding",
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        CLUSTER,
        lambda: {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "auditors", "apiGroup": "rbac.authorization.k8s.io"}],
        },
        all_namespaces=False,
    ),
    Case(
        client.ApiextensionsV1Api,
        "custom_resource_definition",
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        CLUSTER,
        _crd,
        all_namespaces=False,
    ),
]


def _name(case: Case) -> str:
    if case.kind == "custom_resource_definition":
        return "widgets.conformance.example.com"
    return f"conf-{case.kind.replace('_', '-')}"


def _labels(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.labels or {})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
def test_typed_api_create_read_list_patch_replace_delete(api: client.ApiClient, case: Case) -> None:
    name = _name(case)

    created = case.call(api, "create", body=case.manifest(name))
    assert created.metadata.name == name
    assert created.metadata.uid
    assert created.metadata.resource_version

    read = case.call(api, "read", name=name)
    assert read.metadata.uid == created.metadata.uid
    listed = case.call(api, "list")
    assert name in {item.metadata.name for item in listed.items}
    assert listed.metadata.resource_version
    if case.all_namespaces:
        assert name in {item.metadata.name for item in case.call(api, "list_all").items}

    patched = case.call(api, "patch", name=name, body={"metadata": {"labels": {"conformance": "patched"}}})
    assert _labels(patched)["conformance"] == "patched"

    current = case.call(api, "read", name=name)
    current.metadata.labels = {**_labels(current), "conformance": "replaced"}
    replaced = case.call(api, "replace", name=name, body=current)
    assert _labels(replaced)["conformance"] == "replaced"
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    stale = case.call(api, "read", name=name)
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        case.call(api, "replace", name=name, body=stale)
    assert conflict.value.status == 409

    case.call(api, "delete", name=name)
    with pytest.raises(ApiException) as gone:
        case.call(api, "read", name=name)
    assert gone.value.status == 404


def test_custom_objects_through_the_crd_they_belong_to(api: client.ApiClient) -> None:
    crd = _crd()
    crd["spec"]["names"] = {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"}
    client.ApiextensionsV1Api(api).create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            **crd,
            "metadata": {"name": "gadgets.conformance.example.com"},
        }
    )
    objects = client.CustomObjectsApi(api)
    group, version, plural = "conformance.example.com", "v1", "gadgets"
    body = {"apiVersion": f"{group}/{version}", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}

    objects.create_namespaced_custom_object(group, version, NAMESPACE, plural, body)
    objects.patch_namespaced_custom_object(group, version, NAMESPACE, plural, "g1", {"spec": {"size": 2}})
    got = objects.get_namespaced_custom_object(group, version, NAMESPACE, plural, "g1")
    listed = objects.list_namespaced_custom_object(group, version, NAMESPACE, plural)
    objects.delete_namespaced_custom_object(group, version, NAMESPACE, plural, "g1")

    assert got["spec"] == {"size": 2}
    assert [item["metadata"]["name"] for item in listed["items"]] == ["g1"]
    with pytest.raises(ApiException) as gone:
        objects.get_namespaced_custom_object(group, version, NAMESPACE, plural, "g1")
    assert gone.value.status == 404


def test_scale_and_status_subresources_through_typed_apis(api: client.ApiClient, shared_cluster: Cluster) -> None:
    apps = client.AppsV1Api(api)
    for kind in ("deployment", "stateful_set"):
        case = next(c for c in CASES if c.kind == kind)
        name = f"sub-{kind.replace('_', '-')}"
        case.call(api, "create", body=case.manifest(name))
        scale = getattr(apps, f"read_namespaced_{kind}_scale")(name, NAMESPACE)
        assert scale.spec.replicas == 1
        scale.spec.replicas = 2
        getattr(apps, f"replace_namespaced_{kind}_scale")(name, NAMESPACE, scale)
        getattr(apps, f"patch_namespaced_{kind}_scale")(name, NAMESPACE, {"spec": {"replicas": 3}})
        shared_cluster.advance(30)
        status = getattr(apps, f"read_namespaced_{kind}_status")(name, NAMESPACE).status
        assert (status.replicas, status.ready_replicas, status.available_replicas) == (3, 3, 3)
        assert (
            status.observed_generation == getattr(apps, f"read_namespaced_{kind}")(name, NAMESPACE).metadata.generation
        )


def test_workload_status_fields_after_the_controllers_settle(api: client.ApiClient, shared_cluster: Cluster) -> None:
    apps, policy, autoscaling = client.AppsV1Api(api), client.PolicyV1Api(api), client.AutoscalingV2Api(api)
    deployment = next(c for c in CASES if c.kind == "deployment").manifest("settled")
    deployment["spec"]["replicas"] = 3
    deployment["spec"]["selector"] = {"matchLabels": {"app": "settled"}}
    deployment["spec"]["template"]["metadata"]["labels"] = {"app": "settled"}
    apps.create_namespaced_deployment(NAMESPACE, deployment)
    daemonset = next(c for c in CASES if c.kind == "daemon_set").manifest("settled-agent")
    apps.create_namespaced_daemon_set(NAMESPACE, daemonset)
    policy.create_namespaced_pod_disruption_budget(
        NAMESPACE,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "settled"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "settled"}}},
        },
    )
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        NAMESPACE,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "settled"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "settled"},
                "minReplicas": 2,
                "maxReplicas": 5,
            },
        },
    )

    shared_cluster.advance(30)

    [rs] = apps.list_namespaced_replica_set(NAMESPACE, label_selector="app=settled").items
    assert (rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas) == (3, 3, 3)
    ds = apps.read_namespaced_daemon_set_status("settled-agent", NAMESPACE).status
    nodes = len(client.CoreV1Api(api).list_node(label_selector="eks.amazonaws.com/nodegroup").items)
    assert (ds.desired_number_scheduled, ds.current_number_scheduled, ds.number_ready) == (nodes, nodes, nodes)
    assert ds.number_misscheduled == 0
    pdb = policy.read_namespaced_pod_disruption_budget_status("settled", NAMESPACE).status
    assert (pdb.current_healthy, pdb.desired_healthy, pdb.expected_pods, pdb.disruptions_allowed) == (3, 2, 3, 1)
    assert [(c.type, c.status, c.reason) for c in pdb.conditions] == [("DisruptionAllowed", "True", "SufficientPods")]
    hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler_status("settled", NAMESPACE).status
    assert (hpa.current_replicas, hpa.desired_replicas) == (3, 3)


def test_every_namespace_has_the_root_ca_configmap(api: client.ApiClient, shared_cluster: Cluster) -> None:
    core = client.CoreV1Api(api)
    for namespace in core.list_namespace().items:
        cm = core.read_namespaced_config_map("kube-root-ca.crt", namespace.metadata.name)
        assert cm.data == {"ca.crt": shared_cluster.ca_pem.decode()}
