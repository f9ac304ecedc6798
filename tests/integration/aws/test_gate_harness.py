"""What the deploy gates need from the local cloud beyond moto: termination protection, outputs of stacks made by
change sets (also of resources moto skips), scripted scans and scan on push, and the seam canary covering them."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.aws import LocalCloud, SeamMovedError, check_seams
from tests.integration.aws.test_eks_ecr_cfn import StubCluster

pytestmark = pytest.mark.integration

_STACK = """
Parameters:
  ClusterName: {Type: String}
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/sts/${ClusterName}"}
  Cluster:
    Type: AWS::EKS::Cluster
    Properties:
      Name: !Ref ClusterName
      RoleArn: arn:aws:iam::123456789012:role/eks
      ResourcesVpcConfig: {SubnetIds: [subnet-1]}
Outputs:
  LogGroup: {Value: !Ref Logs}
  ClusterName: {Value: !Ref Cluster}
  ClusterArn: {Value: !GetAtt Cluster.Arn}
  ClusterSecurityGroupId: {Value: !GetAtt Cluster.ClusterSecurityGroupId}
"""


def _create_by_change_set(cloud: Any, name: str, cluster_name: str) -> dict[str, Any]:
    cfn = cloud.client("cloudformation")
    cfn.create_change_set(
        StackName=name,
        ChangeSetName="cs-1",
        ChangeSetType="CREATE",
        TemplateBody=_STACK,
        Parameters=[{"ParameterKey": "ClusterName", "ParameterValue": cluster_name}],
    )
    cfn.execute_change_set(ChangeSetName="cs-1", StackName=name)
    return dict(cfn.describe_stacks(StackName=name)["Stacks"][0])


def test_a_stack_made_by_a_change_set_has_outputs_also_of_the_skipped_eks_cluster() -> None:
    cluster = StubCluster()
    with LocalCloud(None, cluster=cluster) as cloud:
        stack = _create_by_change_set(cloud, "platform-eks", "sts-from-stack")
        described = cloud.client("eks").describe_cluster(name="sts-from-stack")["cluster"]

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs["LogGroup"] == "/sts/sts-from-stack"
    assert outputs["ClusterName"] == "sts-from-stack"
    assert outputs["ClusterArn"] == described["arn"]
    assert outputs["ClusterSecurityGroupId"].startswith("sg-")
    assert described["endpoint"] == cluster.endpoint


def test_termination_protection_is_settable_and_refuses_a_delete() -> None:
    with LocalCloud(None) as cloud:
        _create_by_change_set(cloud, "platform-eks", "sts-protected")
        cfn = cloud.client("cloudformation")
        cfn.update_termination_protection(EnableTerminationProtection=True, StackName="platform-eks")
        protected = cfn.describe_stacks(StackName="platform-eks")["Stacks"][0]["EnableTerminationProtection"]
        with pytest.raises(ClientError, match="TerminationProtection is enabled"):
            cfn.delete_stack(StackName="platform-eks")
        cfn.update_termination_protection(EnableTerminationProtection=False, StackName="platform-eks")
        cfn.delete_stack(StackName="platform-eks")
        remaining = [s["StackName"] for s in cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]]

    assert protected is True
    assert "platform-eks" not in remaining


def test_a_scripted_scan_is_in_progress_for_the_next_reads_then_complete() -> None:
    with LocalCloud(None) as cloud:
        digest = cloud.push_image("api", "v1", emit_event=False)
        cloud.set_scan_findings("api", digest, [{"name": "CVE-2024-9", "severity": "HIGH"}], in_progress_reads=2)
        ecr = cloud.client("ecr")
        statuses = [
            ecr.describe_image_scan_findings(repositoryName="api", imageId={"imageDigest": digest}) for _ in range(3)
        ]

    assert [s["imageScanStatus"]["status"] for s in statuses] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETE"]
    assert statuses[-1]["imageScanFindings"]["findings"][0]["name"] == "CVE-2024-9"


def test_a_repository_with_scan_on_push_has_a_clean_complete_scan_after_a_push() -> None:
    with LocalCloud(None) as cloud:
        ecr = cloud.client("ecr")
        ecr.create_repository(repositoryName="scanned", imageScanningConfiguration={"scanOnPush": True})
        scanned = cloud.push_image("scanned", "v1", emit_event=False)
        unscanned = cloud.push_image("plain", "v1", emit_event=False)
        found = ecr.describe_image_scan_findings(repositoryName="scanned", imageId={"imageDigest": scanned})
        with pytest.raises(ClientError, match="ScanNotFound"):
            ecr.describe_image_scan_findings(repositoryName="plain", imageId={"imageDigest": unscanned})

    assert found["imageScanStatus"]["status"] == "COMPLETE"
    assert found["imageScanFindings"]["findings"] == []


def test_the_canary_notices_when_moto_grows_its_own_update_termination_protection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.cloudformation import responses  # noqa: PLC0415 - moto is imported lazily everywhere in the harness

    monkeypatch.setattr(
        responses.CloudFormationResponse, "update_termination_protection", lambda self: None, raising=False
    )
    with pytest.raises(SeamMovedError, match="update_termination_protection"):
        check_seams()
