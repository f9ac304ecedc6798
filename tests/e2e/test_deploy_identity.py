"""The control plane deploys as its deploy role, with exactly the Kubernetes permissions the project ships.

``LocalCloud.register_cluster`` gives the deploy role the eks stack's access entry (group
``clinical-trials-platform``, no EKS access policy) and applies ``manifests/cluster-bootstrap`` as the cluster
creator, as a cluster administrator does once at bootstrap. Every request of the control plane then goes through
RBAC.
"""

from __future__ import annotations

import pytest
from controlplane import platform

from local.aws.eks_access import bootstrap_documents, session_arn
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


def test_removing_verbs_from_the_shipped_rbac_fails_the_preflight_naming_each_before_any_write(pipe: Pipeline) -> None:
    documents = bootstrap_documents()
    (role,) = [d for d in documents if d["kind"] == "Role" and d["metadata"]["name"] == "clinical-trials-deploy"]
    for rule in role["rules"]:
        if "deployments" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    (cluster_role,) = [
        d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "clinical-trials-deploy-cluster"
    ]
    for rule in cluster_role["rules"]:
        if rule["resources"] == ["clusterroles"] and rule.get("resourceNames"):
            rule["resourceNames"] = [n for n in rule["resourceNames"] if n != "cluster-autoscaler"]
    (addon_role,) = [
        d
        for d in documents
        if d["kind"] == "Role" and d["metadata"] == {"name": "clinical-trials-deploy-addon", "namespace": "kube-system"}
    ]
    for rule in addon_role["rules"]:
        if rule["resources"] == ["secrets"]:  # the load balancer controller's webhook certificate
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    (health_role,) = [
        d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "clinical-trials-health"
    ]
    for rule in health_role["rules"]:
        if "pods" in rule["resources"]:  # CheckHealth and Bake watch pods and their events
            rule["verbs"] = [v for v in rule["verbs"] if v != "watch"]
    pipe.cluster.bootstrap([role, cluster_role, addon_role, health_role])  # the administrator's change

    result = pipe.cloud.wait_execution(pipe.start_first_release(), timeout=60.0)

    assert result.status == "FAILED"
    assert result.error == "PreflightForbiddenError", result.cause
    cause = str(result.cause)
    services = sorted(s.name for s in platform.SERVICES)
    expected = [f"create deployments.apps/{name} in namespace {platform.NAMESPACE}" for name in services]
    # A first release prunes (nothing to compare with), so it needs delete too.
    verbs = ("create", "patch", "delete")
    expected += [f"{verb} clusterroles.rbac.authorization.k8s.io/cluster-autoscaler" for verb in verbs]
    expected.append("create secrets/aws-load-balancer-tls in namespace kube-system")
    # Every namespace with a workload (the release's and the add-ons'): the health step's watches.
    for namespace in sorted({platform.NAMESPACE, "external-secrets", "kube-system"}):
        expected += [f"watch {what} in namespace {namespace}" for what in ("events", "pods")]
    for permission in expected:
        assert permission in cause, (permission, cause)
    assert f"lacks {len(expected)} permission(s)" in cause
    assert pipe.writes() == []  # asked before the first write: nothing at all was written
    assert "ApplyRelease" not in result.states_entered()
    (release,) = pipe.releases("staging")
    assert release.status.value == "failed"
    assert pipe.ledger.quarantined(pipe.digests.values()) == {}


def test_a_redeploy_asks_only_for_what_it_sends_and_is_refused_before_any_write_when_that_is_denied(
    pipe: Pipeline,
) -> None:
    pipe.first_release()
    check = pipe.cloud.run("DriftStateMachine", {"environment": "staging"})  # clean: the deploy trusts the record
    assert check.status == "SUCCEEDED", check.cause
    documents = bootstrap_documents()
    # The administrator takes away writing the storage classes, which a 1-service redeploy does not send.
    (cluster_role,) = [
        d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "clinical-trials-deploy-cluster"
    ]
    for rule in cluster_role["rules"]:
        if rule["resources"] == ["storageclasses"] and rule.get("resourceNames"):
            rule["verbs"] = ["get"]
    pipe.cluster.bootstrap([cluster_role])
    redeployed = pipe.push_and_deploy("edc-service", "main-2")
    assert redeployed.status == "SUCCEEDED", redeployed.cause

    # Then patching Deployments, which it sends (the deploy role and off-hours' both grant it): refused by the
    # preflight, naming it, before any write.
    roles = [
        d
        for d in documents
        if (d["kind"], d["metadata"]["name"])
        in {("Role", "clinical-trials-deploy"), ("ClusterRole", "clinical-trials-offhours")}
    ]
    for rule in (r for role in roles for r in role["rules"]):
        if "deployments" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    pipe.cluster.bootstrap(roles)
    writes = len(pipe.writes())
    refused = pipe.push_and_deploy("edc-service", "main-3")
    assert refused.status == "FAILED"
    assert refused.error == "PreflightForbiddenError", refused.cause
    cause = str(refused.cause)
    assert f"patch deployments.apps/edc-service in namespace {platform.NAMESPACE}" in cause
    assert "storageclasses" not in cause  # not needed by this deploy, so not asked
    assert len(pipe.writes()) == writes
    assert "ApplyRelease" not in refused.states_entered()
