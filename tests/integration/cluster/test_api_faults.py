"""Authentication, deny rules, injected faults and the request log, as the official client sees them."""

from __future__ import annotations

import json
import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from local.cluster import Cluster, api_client

pytestmark = pytest.mark.integration

ADMIN = "arn:aws:sts::123456789012:assumed-role/cluster-creator/local-harness"  # the creator's username


def cm(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def no_retries(kube: client.ApiClient) -> client.ApiClient:
    kube.rest_client.pool_manager.connection_pool_kw["retries"] = False
    kube.rest_client.pool_manager.clear()
    return kube


def test_requests_need_a_valid_eks_token(cluster: Cluster) -> None:
    kube = api_client(cluster)
    kube.configuration.api_key["authorization"] = "k8s-aws-v1.bm90LWEtcmVhbC10b2tlbg"
    with pytest.raises(ApiException) as bad:
        client.CoreV1Api(kube).list_namespace()
    assert (bad.value.status, json.loads(bad.value.body)["reason"]) == (401, "Unauthorized")
    kube.configuration.api_key = {}
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(kube).list_namespace()
    assert missing.value.status == 401
    assert client.VersionApi(kube).get_code().major == "1"  # /version is public, as on EKS
    kube.close()


def test_deny_rules_answer_forbidden_with_rbac_message(cluster: Cluster, kube: client.ApiClient) -> None:
    cluster.deny(verb="delete", resource="configmaps", namespace="default")
    v1 = client.CoreV1Api(kube)
    v1.create_namespaced_config_map("default", cm("keep"))
    with pytest.raises(ApiException) as denied:
        v1.delete_namespaced_config_map("keep", "default")
    status = json.loads(denied.value.body)
    assert (denied.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        f'configmaps "keep" is forbidden: User "{ADMIN}" cannot delete resource "configmaps" '
        'in API group "" in the namespace "default"'
    )
    assert status["details"] == {"name": "keep", "kind": "configmaps"}
    cluster.allow_all()
    v1.delete_namespaced_config_map("keep", "default")


@pytest.mark.parametrize(
    ("code", "reason"),
    [(429, "TooManyRequests"), (500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout")],
)
def test_injected_status_faults(cluster: Cluster, kube: client.ApiClient, code: int, reason: str) -> None:
    v1 = client.CoreV1Api(kube)
    cluster.faults.add(verb="create", resource="configmaps", status=code, retry_after=3, times=1)
    with pytest.raises(ApiException) as fault:
        v1.create_namespaced_config_map("default", cm("x"))
    assert fault.value.status == code
    assert json.loads(fault.value.body)["reason"] == reason
    assert fault.value.headers["Retry-After"] == "3"
    v1.create_namespaced_config_map("default", cm("x"))  # times=1: the next one goes through


def test_fault_matching_probability_and_latency(cluster: Cluster, kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    cluster.faults.add(verb="get", resource="configmaps", name="other", status=500, times=None)
    v1.create_namespaced_config_map("default", cm("a"))
    v1.read_namespaced_config_map("a", "default")  # a different name: not faulted
    for _ in range(2):
        with pytest.raises(ApiException):
            v1.read_namespaced_config_map("other", "default")
    cluster.faults.clear()
    cluster.faults.add(verb="list", probability=0.0, status=500, times=None)
    v1.list_namespaced_config_map("default")
    cluster.faults.add(verb="list", resource="configmaps", latency=0.3)
    started = time.monotonic()
    v1.list_namespaced_config_map("default")
    assert time.monotonic() - started >= 0.3


def test_reset_closes_the_connection_without_an_answer(cluster: Cluster, kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(no_retries(kube))
    cluster.faults.add(verb="list", resource="pods", reset=True, times=1)
    with pytest.raises(urllib3.exceptions.HTTPError):
        v1.list_namespaced_pod("default")
    assert v1.list_namespaced_pod("default").items is not None


def test_request_log_records_each_request(cluster: Cluster, kube: client.ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    cluster.requests.clear()
    v1.create_namespaced_config_map("default", cm("logged"), field_manager="me")
    with pytest.raises(ApiException):
        v1.read_namespaced_config_map("missing", "default")
    client.AppsV1Api(kube).list_deployment_for_all_namespaces(label_selector="app=x")
    first, second, third = cluster.requests
    assert (first.method, first.verb, first.resource, first.namespace, first.status) == (
        "POST",
        "create",
        "configmaps",
        "default",
        201,
    )
    assert first.query == {"fieldManager": "me"}
    assert first.content_type == "application/json"
    assert (second.verb, second.name, second.status) == ("get", "missing", 404)
    assert (third.verb, third.resource, third.namespace, third.query) == (
        "list",
        "deployments",
        "",
        {"labelSelector": "app=x"},
    )
    assert third.path == "/apis/apps/v1/deployments"


def test_unknown_paths_and_methods(kube: client.ApiClient) -> None:
    with pytest.raises(ApiException) as unknown:
        kube.call_api(
            "/apis/apps/v1/namespaces/default/widgets", "GET", auth_settings=["BearerToken"], _preload_content=False
        )
    assert unknown.value.status == 404
    with pytest.raises(ApiException) as method:
        kube.call_api(
            "/apis/apps/v1/namespaces/default/deployments",
            "PUT",
            auth_settings=["BearerToken"],
            body={},
            _preload_content=False,
        )
    assert method.value.status in (404, 405)
