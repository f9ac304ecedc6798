"""EKS points at the Kubernetes emulator, ECR pushes emit real-shaped events, CloudFormation fails on demand.

The cluster here is a stub with the attributes of local.cluster.Cluster (endpoint, ca_data, clock, nodes): the
emulator is written concurrently; the harness only reads those attributes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from local.aws import LocalCloud, NodegroupSpec
from local.cluster.clock import SimClock
from tests.conftest import HARNESS_TEMPLATE
from tests.eventually import eventually

pytestmark = pytest.mark.integration


@dataclass
class StubNodes:
    groups: dict[str, tuple[int, str]] = field(default_factory=dict)
    configs: dict[str, tuple[Any, Any, Any]] = field(default_factory=dict)
    bounds: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def set_group(
        self,
        name: str,
        desired: int,
        instance_type: str,
        *,
        labels: Any = None,
        taints: Any = None,
        capacity_type: Any = None,
        min_size: int | None = None,
        max_size: int | None = None,
    ) -> None:
        self.groups[name] = (desired, instance_type)
        self.bounds[name] = (min_size, max_size)
        self.configs[name] = (labels, taints, capacity_type)


@dataclass
class StubCluster:
    endpoint: str = "https://127.0.0.1:6443"
    ca_data: str = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nstub\n-----END CERTIFICATE-----\n").decode()
    clock: SimClock = field(default_factory=SimClock)
    nodes: StubNodes = field(default_factory=StubNodes)


def test_describe_cluster_returns_the_emulator_endpoint_and_ca_and_nodegroups_drive_the_node_pool() -> None:
    cluster = StubCluster()
    with LocalCloud(None, cluster=cluster) as cloud:
        cloud.register_cluster("sts-dev", cluster, nodegroups={"system": NodegroupSpec("m6i.large", desired=2)})
        eks = cloud.client("eks")

        described = eks.describe_cluster(name="sts-dev")["cluster"]
        eks.update_nodegroup_config(
            clusterName="sts-dev", nodegroupName="system", scalingConfig={"desiredSize": 5, "maxSize": 10}
        )

    assert described["endpoint"] == cluster.endpoint
    assert described["certificateAuthority"]["data"] == cluster.ca_data
    assert cluster.nodes.groups["system"] == (5, "m6i.large")
    assert cloud.clock is cluster.clock


def test_push_image_returns_the_manifest_digest_and_emits_the_ecr_image_action_event() -> None:
    with LocalCloud(None) as cloud:
        events = cloud.client("events")
        events.put_rule(
            Name="pushes", EventPattern=json.dumps({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"]})
        )
        queue_url = cloud.client("sqs").create_queue(QueueName="pushes")["QueueUrl"]
        queue_arn = f"arn:aws:sqs:us-east-1:{cloud.account_id}:pushes"
        events.put_targets(Rule="pushes", Targets=[{"Id": "q", "Arn": queue_arn, "InputPath": "$.detail"}])
        sfn_arn = cloud.client("stepfunctions").create_state_machine(
            name="on-push",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
            roleArn=f"arn:aws:iam::{cloud.account_id}:role/x",
        )["stateMachineArn"]
        # EventBridge starts a state machine with the target's role, which must allow states:StartExecution.
        iam = cloud.client("iam")
        trust = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ]
        }
        role_arn = iam.create_role(RoleName="pushes-to-sfn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        start = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "states:StartExecution", "Resource": sfn_arn}],
        }
        iam.put_role_policy(RoleName="pushes-to-sfn", PolicyName="start", PolicyDocument=json.dumps(start))
        events.put_targets(
            Rule="pushes", Targets=[{"Id": "sm", "Arn": sfn_arn, "InputPath": "$.detail", "RoleArn": role_arn}]
        )

        digest = cloud.push_image("web", "v1.2.3")

        image = cloud.client("ecr").describe_images(repositoryName="web", imageIds=[{"imageTag": "v1.2.3"}])
        executions = cloud.client("stepfunctions").list_executions(stateMachineArn=sfn_arn)["executions"]
        result = cloud.wait_execution(executions[0]["executionArn"])

    assert digest.startswith("sha256:")
    assert len(digest) == 71
    assert image["imageDetails"][0]["imageDigest"] == digest
    assert result.output == {
        "result": "SUCCESS",
        "repository-name": "web",
        "image-digest": digest,
        "action-type": "PUSH",
        "image-tag": "v1.2.3",
    }
    assert queue_url


def test_scan_findings_are_settable_per_digest() -> None:
    with LocalCloud(None) as cloud:
        digest = cloud.push_image("api", "v1", emit_event=False)
        cloud.set_scan_findings("api", digest, [{"name": "CVE-2024-1", "severity": "CRITICAL"}])

        found = cloud.client("ecr").describe_image_scan_findings(repositoryName="api", imageId={"imageTag": "v1"})

        cloud.set_scan_findings("api", digest, status="IN_PROGRESS")
        pending = cloud.client("ecr").describe_image_scan_findings(
            repositoryName="api", imageId={"imageDigest": digest}
        )

    assert found["imageScanStatus"]["status"] == "COMPLETE"
    assert found["imageScanFindings"]["findingSeverityCounts"] == {"CRITICAL": 1}
    assert found["imageScanFindings"]["findings"][0]["name"] == "CVE-2024-1"
    assert pending["imageScanStatus"]["status"] == "IN_PROGRESS"


_STACK = """
Parameters:
  ClusterName: {Type: String, Default: sts-stack}
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: /sts/cluster}
  Cluster:
    Type: AWS::EKS::Cluster
    Properties:
      Name: !Ref ClusterName
      RoleArn: arn:aws:iam::123456789012:role/eks
      ResourcesVpcConfig: {SubnetIds: [subnet-1, subnet-2]}
  Workers:
    Type: AWS::EKS::Nodegroup
    Properties:
      ClusterName: !Ref Cluster
      NodegroupName: workers
      ScalingConfig: {MinSize: 1, MaxSize: 6, DesiredSize: 3}
      InstanceTypes: [m6i.xlarge]
      NodeRole: arn:aws:iam::123456789012:role/nodes
      Subnets: [subnet-1]
      CapacityType: SPOT
      Labels: {workload-class: spot}
      Taints:
        - {Key: capacity-type, Value: spot, Effect: NO_SCHEDULE}
"""


def test_stack_creates_the_eks_cluster_moto_skips_and_registers_it_with_the_emulator() -> None:
    cluster = StubCluster()
    with LocalCloud(None, cluster=cluster) as cloud:
        cloud.client("cloudformation").create_stack(StackName="platform", TemplateBody=_STACK)

        described = cloud.client("eks").describe_cluster(name="sts-stack")["cluster"]
        group = cloud.client("eks").describe_nodegroup(clusterName="sts-stack", nodegroupName="workers")["nodegroup"]
        events = cloud.client("cloudformation").describe_stack_events(StackName="platform")["StackEvents"]

    assert described["endpoint"] == cluster.endpoint
    assert cluster.nodes.groups["workers"] == (3, "m6i.xlarge")
    taint = {"key": "capacity-type", "value": "spot", "effect": "NO_SCHEDULE"}
    assert cluster.nodes.configs["workers"] == ({"workload-class": "spot"}, [taint], "SPOT")
    assert (group["labels"], group["taints"], group["capacityType"]) == ({"workload-class": "spot"}, [taint], "SPOT")
    assert {"Cluster", "Workers"} <= {
        e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "CREATE_COMPLETE"
    }


@pytest.mark.parametrize("state", ["CREATE_FAILED", "ROLLBACK_COMPLETE"])
def test_fault_switch_drives_a_stack_create_into_the_failure_state_with_reasons(state: str) -> None:
    with LocalCloud(None) as cloud:
        cloud.cfn_faults.fail_next("platform", state=state, reason="Nodegroup health issue", resource="Workers")
        cfn = cloud.client("cloudformation")
        cfn.create_stack(StackName="platform", TemplateBody=_STACK)

        stack = cfn.describe_stacks(StackName="platform")["Stacks"][0]
        events = cfn.describe_stack_events(StackName="platform")["StackEvents"]

    assert stack["StackStatus"] == state
    failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED" and e["LogicalResourceId"] == "Workers"]
    assert failed[0]["ResourceStatusReason"] == "Nodegroup health issue"


def test_fault_switch_rolls_an_update_back_and_keeps_the_previous_template() -> None:
    with LocalCloud(None) as cloud:
        cfn = cloud.client("cloudformation")
        cfn.create_stack(StackName="platform", TemplateBody=_STACK)
        cloud.cfn_faults.fail_next("platform", state="UPDATE_ROLLBACK_COMPLETE", reason="bad update")

        cfn.update_stack(StackName="platform", TemplateBody=_STACK.replace("/sts/cluster", "/sts/cluster2"))

        stack = cfn.describe_stacks(StackName="platform")["Stacks"][0]
        template = cfn.get_template(StackName="platform")["TemplateBody"]
        reasons = [
            e.get("ResourceStatusReason") for e in cfn.describe_stack_events(StackName="platform")["StackEvents"]
        ]

    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert "/sts/cluster2" not in json.dumps(template)
    assert "bad update" in reasons


def test_realtime_mode_waits_on_an_accelerated_clock() -> None:
    with LocalCloud(HARNESS_TEMPLATE, stack_name="harness", time_mode="realtime", acceleration=300.0) as cloud:
        start = cloud.clock.now()
        arn = cloud.start_execution("Pipeline", {"n": 1, "items": []}, name="rt")
        # The 30 s Wait passes on the accelerated clock (about 0.1 s of wall time on an idle machine); the execution
        # then parks on the callback after the retries, so it is still running when FanOut has been entered.
        eventually(
            lambda: "FanOut" in [e.state_name for e in cloud.history(arn)],
            what="the execution to pass the 30 s Wait and enter FanOut",
        )
        status = cloud.describe_execution(arn)["status"]

    assert status == "RUNNING"
    assert cloud.clock.now() - start >= 30


_ACCESS_STACK = """
Parameters:
  DeployRoleArn: {Type: String}
  AdminRoleArn: {Type: String, Default: ""}
Conditions:
  HasAdmin: !Not [!Equals [!Ref AdminRoleArn, ""]]
Resources:
  Cluster:
    Type: AWS::EKS::Cluster
    Properties:
      Name: sts-access
      RoleArn: arn:aws:iam::123456789012:role/eks
      ResourcesVpcConfig: {SubnetIds: [subnet-1, subnet-2]}
  Deploy:
    Type: AWS::EKS::AccessEntry
    Properties:
      ClusterName: !Ref Cluster
      PrincipalArn: !Ref DeployRoleArn
      KubernetesGroups: [platform]
      AccessPolicies:
        - PolicyArn: !Sub arn:${AWS::Partition}:eks::aws:cluster-access-policy/AmazonEKSViewPolicy
          AccessScope: {Type: namespace, Namespaces: [apps]}
  Admin:
    Type: AWS::EKS::AccessEntry
    Condition: HasAdmin
    Properties:
      ClusterName: !Ref Cluster
      PrincipalArn: !Ref AdminRoleArn
"""


def test_stack_access_entries_map_principals_in_the_emulator() -> None:
    from local.cluster import AccessPolicy, Cluster  # noqa: PLC0415

    role = "arn:aws:iam::123456789012:role/deployer"
    with Cluster("sts-access") as cluster, LocalCloud(None, cluster=cluster) as cloud:
        cloud.client("cloudformation").create_stack(
            StackName="access",
            TemplateBody=_ACCESS_STACK,
            Parameters=[{"ParameterKey": "DeployRoleArn", "ParameterValue": role}],
        )
        entry = cluster.access_entries.get(role)

    assert entry is not None
    assert entry.kubernetes_groups == ("platform",)
    assert entry.username == "arn:aws:sts::123456789012:assumed-role/deployer/{{SessionName}}"
    assert entry.policies == (
        AccessPolicy("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy", namespaces=("apps",)),
    )
