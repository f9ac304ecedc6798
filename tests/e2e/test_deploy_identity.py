"""The control plane deploys as its deploy role, with exactly the Kubernetes permissions the project ships.

``LocalCloud.register_cluster`` gives the deploy role the eks stack's access entry (group
``clinical-trials-platform``, no EKS access policy) and applies ``manifests/cluster-bootstrap`` as the cluster
creator, as a cluster administrator does once at bootstrap. Every request of the control plane then goes through
RBAC.
"""

from __future__ import annotations

import pytest
from controlplane import platform
from kubernetes import client

from local.aws.eks_access import bootstrap_documents, session_arn
from local.cluster import api_client
from local.pipeline import Pipeline

pytestmark = pytest.mark.e2e


def deploy_user(pipe: Pipeline, function: str = "ApplyFunction") -> str:
    """The function's session of the deploy role: Lambda names the session after the function, the token carries
    it and EKS maps the role through its access entry."""
    return session_arn(pipe.cloud.arn("ClusterDeployRole"), pipe.cloud.ref(function))


def test_the_first_release_is_written_by_the_deploy_role_alone(pipe: Pipeline) -> None:
    pipe.first_release()
    writers = {r.user for r in pipe.writes()}
    assert writers == {deploy_user(pipe)}
    denied = [r for r in pipe.cluster.requests if r.status in (401, 403)]
    assert denied == []


def test_removing_one_verb_from_the_shipped_rbac_fails_the_deploy_naming_it(pipe: Pipeline) -> None:
    (role,) = [
        d for d in bootstrap_documents() if d["kind"] == "Role" and d["metadata"]["name"] == "clinical-trials-deploy"
    ]
    for rule in role["rules"]:
        if "deployments" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    pipe.cluster.bootstrap([role])  # the administrator's change, as the cluster creator

    result = pipe.cloud.wait_execution(pipe.start_first_release(), timeout=60.0)

    assert result.status == "FAILED"
    expected = (
        f'User "{deploy_user(pipe)}" cannot create resource "deployments" in API group "apps" in the namespace '
        f'"{platform.NAMESPACE}"'
    )
    assert expected in str(result.cause), result.cause
    api = api_client(pipe.cluster)
    try:
        assert client.AppsV1Api(api).list_namespaced_deployment(platform.NAMESPACE).items == []
    finally:
        api.close()
