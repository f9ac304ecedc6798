"""README "Deploying on AWS" -> "Bootstrap from an empty account", step by step, on an empty local account and an
empty cluster, with IAM and Kubernetes RBAC enforced, to the first healthy release.

Each step below is the README's step of the same number. Where the local cloud cannot do what AWS does, the test
says so: moto cannot create the eks and data stacks' resources (an EKS cluster, RDS, ElastiCache), so provisioning
runs the real ecr and storage templates (the network one is created by hand in step 1 and left alone: moto cannot
execute a change set on it) and stand-ins for eks and data that create what the stack role may create and give the
outputs the real ones give; the emulator is then registered as the cluster the eks stack names (what EKS would
answer to DescribeCluster).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import platform
from kubernetes.client import AppsV1Api

from local.aws import LocalCloud
from local.cluster import Cluster, api_client
from local.cluster.rbac import CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS
from local.pipeline import CLUSTER_NAME, TEMPLATE, Pipeline, parameters

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CFN = REPO / "manifests" / "cloudformation"
RBAC = REPO / "manifests" / "cluster-bootstrap" / "rbac.yaml"
NETWORK = "synthetictrialstudio-staging-network"

# Stand-ins for what moto cannot create: the outputs the real stacks give, made of resources the stack role may make.
EKS_STANDIN = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ProjectName: {Type: String}
  ClusterName: {Type: String}
Resources:
  ClusterLogs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/aws/eks/${ClusterName}/cluster"}
Outputs:
  ClusterName: {Value: !Ref ClusterName}
"""
DATA_STANDIN = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ProjectName: {Type: String}
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties: {TopicName: !Sub "${ProjectName}-${Environment}-data-events"}
"""


def _catalog(folder: Path) -> Path:
    """manifests/stacks.yaml with its real network, ecr and storage templates and the eks/data stand-ins."""
    (folder / "cloudformation").mkdir()
    for name in ("network.yaml", "ecr.yaml", "storage.yaml"):
        shutil.copy(CFN / name, folder / "cloudformation" / name)
    (folder / "cloudformation" / "eks.yaml").write_text(EKS_STANDIN)
    (folder / "cloudformation" / "data.yaml").write_text(DATA_STANDIN)
    catalog = yaml.safe_load((REPO / "manifests" / "stacks.yaml").read_text())
    # The network stack stays as step 1 made it: moto cannot execute a change set on network.yaml (it resolves
    # Fn::GetAtt of the NAT resources the staging condition leaves out), which CloudFormation does.
    catalog["stacks"] = [s for s in catalog["stacks"] if s["suffix"] != "network"]
    for stack in catalog["stacks"]:
        if stack["suffix"] in {"eks", "data"}:
            stack["inputs"] = ["ClusterName"] if stack["suffix"] == "eks" else []
            stack["wiring"] = {}
    (folder / "stacks.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    return folder / "stacks.yaml"


def _bindings_of(cluster: Any, group: str) -> list[str]:
    """The RoleBindings and ClusterRoleBindings naming ``group``."""
    bindings = [*cluster.store.list(CLUSTER_ROLE_BINDINGS), *cluster.store.list(ROLE_BINDINGS)]
    return [
        b["metadata"]["name"]
        for b in bindings
        if any(s.get("kind") == "Group" and s.get("name") == group for s in b.get("subjects") or [])
    ]


def _outputs(cfn: Any, stack: str) -> dict[str, str]:
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described["StackStatus"]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}


def test_the_readme_runbook_takes_an_empty_account_to_the_first_healthy_release(tmp_path: Path) -> None:
    with Cluster(CLUSTER_NAME) as cluster, LocalCloud(None, cluster=cluster) as cloud:
        cfn = cloud.client("cloudformation")
        assert cfn.describe_stacks()["Stacks"] == []  # an empty account

        # 1. The network stack, once, by hand (small enough to go inline).
        cfn.create_stack(
            StackName=NETWORK,
            TemplateBody=(CFN / "network.yaml").read_text(),
            Parameters=[{"ParameterKey": "Environment", "ParameterValue": "staging"}],
        )
        network = _outputs(cfn, NETWORK)

        # 2. Its PrivateSubnetIds and ControlPlaneSecurityGroupId into SubnetIds / SecurityGroupIds; sam deploy.
        cloud.deploy(
            TEMPLATE,
            parameters(
                SubnetIds=network["PrivateSubnetIds"],
                SecurityGroupIds=network["ControlPlaneSecurityGroupId"],
                ProvisionStacks="true",
                StacksFile=str(_catalog(tmp_path)),
                AlertEmail="platform@example.com",
            ),
        )

        # 3. The provisioning state machine: ecr, storage, eks, data in stacks.yaml order, as the stack role.
        provisioned = cloud.run("ProvisionStateMachine", {"environment": "staging"})
        assert provisioned.status == "SUCCEEDED", (provisioned.error, provisioned.cause)
        phases = {s["suffix"]: s["phase"] for s in provisioned.output["stacks"]["stacks"]}
        assert phases == {"ecr": "DONE", "storage": "DONE", "eks": "DONE", "data": "DONE"}
        repositories = cloud.client("ecr").describe_repositories()["repositories"]
        assert {r["repositoryName"] for r in repositories} == {s.repository for s in platform.SERVICES}
        # What EKS answers for the eks stack's cluster, with its access entries (groups only, no access policy).
        cloud.register_cluster(CLUSTER_NAME, cluster, rbac=False)
        deploy_group = "clinical-trials-platform"
        assert not _bindings_of(cluster, deploy_group)  # no Kubernetes permission yet

        # 4. A cluster admin applies manifests/cluster-bootstrap/rbac.yaml once.
        cluster.bootstrap([d for d in yaml.safe_load_all(RBAC.read_text()) if d])
        assert _bindings_of(cluster, deploy_group)

        # 5. The first release (the operator API's deploy): add-ons first, then the platform, healthy.
        pipe = Pipeline(cloud, cluster)
        images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
        release = cloud.wait_execution(
            pipe.start_as_operator(
                {"action": "deploy", "environment": "staging", "services": images, "reason": "first release"}
            )
        )

        assert release.status == "SUCCEEDED", (release.error, release.cause)
        entered = release.states_entered()
        assert entered.index("InstallAddons") < entered.index("CheckAddons") < entered.index("ApplyRelease")
        apps = AppsV1Api(api_client(cluster))
        for name in platform.SERVICE_NAMES:
            deployment = apps.read_namespaced_deployment(name, platform.NAMESPACE)
            assert deployment.status.ready_replicas == deployment.spec.replicas, name
            assert deployment.spec.template.spec.containers[0].image.endswith(images[name]), name
        lkg = pipe.ledger.last_known_good("staging")
        assert lkg is not None
        assert lkg.execution_arn == release.arn  # baked: the environment's last known-good release
