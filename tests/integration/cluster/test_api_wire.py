"""Wire details clients rely on: JSON bodies end with a newline, OpenAPI v3 schemas for ``kubectl explain``, and
the 415 answer to a protobuf body names what is accepted."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from local.cluster import Cluster
from tests.integration.cluster.conftest import Kubectl


def test_json_bodies_and_errors_end_with_a_newline(cluster: Cluster, kube: client.ApiClient) -> None:
    ok = kube.call_api("/api/v1/namespaces/default", "GET", auth_settings=["BearerToken"], _preload_content=False)
    assert ok[0].data.endswith(b"}\n")
    with pytest.raises(ApiException) as missing:
        kube.call_api("/api/v1/namespaces/nope", "GET", auth_settings=["BearerToken"], _preload_content=False)
    assert missing.value.body.endswith(b"}\n")
    assert json.loads(missing.value.body)["reason"] == "NotFound"


def test_openapi_v3_serves_schemas_kubectl_explain_reads(kubectl: Kubectl) -> None:
    spec = kubectl("explain", "deployment.spec")
    assert spec.returncode == 0, spec.stderr
    assert "FIELD: spec <DeploymentSpec>" in spec.stdout
    assert "replicas\t<integer>" in spec.stdout
    assert "template\t<PodTemplateSpec> -required-" in spec.stdout
    nested = kubectl("explain", "pods.spec.containers.resources.limits")
    assert nested.returncode == 0, nested.stderr
    assert "map[string]Quantity" in nested.stdout


def test_a_protobuf_body_is_415_naming_the_accepted_types(cluster: Cluster, kube: client.ApiClient) -> None:
    with pytest.raises(ApiException) as refused:
        kube.call_api(
            "/api/v1/namespaces",
            "POST",
            header_params={"Content-Type": "application/vnd.kubernetes.protobuf"},
            body="k8s\x00",
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
    assert refused.value.status == 415
    message = json.loads(refused.value.body)["message"]
    assert message.endswith("accepted media types include: application/json, application/yaml")
