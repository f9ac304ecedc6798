"""Production promotion through the real ASL: staging health, approval (approve, reject, timeout) before any change,
and the platform stacks provisioned through change sets (create failure, update rollback, no change)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.aws.approval import Approvals

from local.aws.template import load_template
from local.pipeline import TEMPLATE, Pipeline, pipeline
from tests.eventually import eventually
from tests.stack_templates import ALARMS_TOPIC

pytestmark = pytest.mark.e2e


def changes(pipe: Pipeline) -> list[Any]:
    """Cluster writes that are not server-side dry runs (the approval's diff is one)."""
    return [w for w in pipe.writes() if w.query.get("dryRun") != "All"]


def pending_approval(pipe: Pipeline, arn: str) -> str:
    def requested() -> str | None:
        ended = pipe.cloud.describe_execution(arn)
        if ended["status"] != "RUNNING":
            pytest.fail(f"{arn} ended {ended['status']} before requesting an approval: {ended.get('cause')}")
        items = pipe.cloud.client("dynamodb").scan(
            TableName=str(pipe.cloud.ref("LedgerTable")),
            FilterExpression="#k = :k",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues={":k": {"S": "approval"}},
        )["Items"]
        return str(items[0]["release_id"]["S"]) if items else None

    return eventually(requested, what=f"{arn} to request an approval in the ledger")


@pytest.fixture
def approval_timeout_s() -> int:
    return 86_400


@pytest.fixture
def production(cluster: Any, approval_timeout_s: int) -> Iterator[tuple[Pipeline, dict[str, Any]]]:
    with pipeline(cluster, Environment="production", ApprovalTimeoutSeconds=approval_timeout_s) as pipe:
        images = {name: pipe.push(name, "v1.0.0") for name in platform.SERVICE_NAMES}
        pipe.healthy_in_staging(images)
        request = {"environment": "production", "services": images, "reason": "promote"}
        yield pipe, request


def request_through_the_operator_api(pipe: Pipeline, request: dict[str, Any], role: str = "developer") -> str:
    """``role`` asks for the deploy through the operator API; the execution it started."""
    status, answer = pipe.operator(role, session="bob").call({"action": "deploy", **request})
    assert status == 200, answer
    return str(answer["execution_arn"])


def test_an_approved_production_release_deploys_and_nothing_changed_before_the_approval(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    pipe, request = production
    arn = request_through_the_operator_api(pipe, request)
    release_id = pending_approval(pipe, arn)
    writes_while_waiting = len(changes(pipe))
    dry_runs = len(pipe.writes()) - writes_while_waiting
    item = Approvals(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").get(release_id)
    assert item is not None
    assert item["diff_uri"].startswith("s3://")

    carol = pipe.operator("release-approver", session="carol")
    status, decided = carol.call({"action": "approve", "release_id": release_id, "comment": "ok"})
    result = pipe.cloud.wait_execution(arn)

    assert status == 200, decided
    assert decided["principal"] == carol.session_arn
    assert writes_while_waiting == 0
    assert dry_runs > 0  # the diff the approver reads is the server's dry run
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["approval"]["status"] == "APPROVED"
    assert result.output["approval"]["approver"] == carol.session_arn
    assert result.output["plan"]["trigger"]["requested_by"].endswith(":assumed-role/developer/bob")
    entered = result.states_entered()
    assert entered.index("RequestApproval") < entered.index("VerifyApproval") < entered.index("PromoteImages")
    assert entered.index("PromoteImages") < entered.index("ApplyRelease")
    assert "VerifyStagingHealth" in entered


def test_a_rejected_production_release_ends_before_any_change(production: tuple[Pipeline, dict[str, Any]]) -> None:
    pipe, request = production
    arn = request_through_the_operator_api(pipe, request)
    release_id = pending_approval(pipe, arn)
    carol = pipe.operator("release-approver", session="carol")
    status, _ = carol.call({"action": "reject", "release_id": release_id, "comment": "not this week"})
    result = pipe.cloud.wait_execution(arn)
    again_status, again = pipe.operator("release-manager", session="dave").call(
        {"action": "approve", "release_id": release_id}
    )

    assert status == 200
    assert result.status == "FAILED"
    assert result.error == "ApprovalRejectedError"
    decided = Approvals(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").outcome(release_id)
    assert decided is not None
    assert decided.comment == "not this week"
    assert decided.approver == carol.session_arn
    assert changes(pipe) == []
    assert again_status == 409  # a second decision is refused
    assert again["error"] == "ApprovalStateError"


@pytest.mark.parametrize("approval_timeout_s", [2])
def test_an_approval_nobody_gives_times_out_and_is_recorded(production: tuple[Pipeline, dict[str, Any]]) -> None:
    pipe, request = production
    arn = request_through_the_operator_api(pipe, request)
    release_id = pending_approval(pipe, arn)

    result = pipe.cloud.wait_execution(arn)  # ApprovalTimeoutSeconds=2 (real seconds: moto's callbacks)

    status = Approvals(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").outcome(release_id)
    assert result.status == "FAILED"
    assert result.error == "ApprovalTimedOutError"
    assert release_id in str(result.cause)
    assert "RecordApprovalTimeout" in result.states_entered()
    assert status is not None
    assert status.status.value == "TIMED_OUT"
    assert changes(pipe) == []


@pytest.mark.parametrize("approval_timeout_s", [6])
def test_an_approval_timeout_after_the_lock_was_taken_writes_nothing_and_ends_lock_lost(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    """RecordApprovalTimeout is fenced by the lease like every other write of the holder: an execution whose lease
    moved on while it waited for a decision leaves the approval PENDING and ends LockLost."""
    pipe, request = production
    arn = request_through_the_operator_api(pipe, request)
    release_id = pending_approval(pipe, arn)
    pipe.cloud.client("dynamodb").update_item(
        TableName=str(pipe.cloud.ref("LedgerTable")),
        Key={"pk": {"S": "ENV#production"}, "sk": {"S": "LOCK"}},
        UpdateExpression="ADD #lease :one",
        ExpressionAttributeNames={"#lease": "lease"},
        ExpressionAttributeValues={":one": {"N": "1"}},
    )  # the lease moved on while the execution waited (ApprovalTimeoutSeconds=6, real seconds: moto's callbacks)

    result = pipe.cloud.wait_execution(arn)

    status = Approvals(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").outcome(release_id)
    entered = result.states_entered()
    assert (result.status, result.error) == ("FAILED", "LockLostError"), result.cause
    assert "RecordApprovalTimeout" in entered
    assert "RecordRefused" not in entered
    assert status is not None
    assert status.status.value == "PENDING"
    assert changes(pipe) == []


def test_production_reads_staging_health_from_staging_ledger_by_its_name_without_a_parameter(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    """The approved-release test above passes VerifyStagingHealth on exactly this: the staging control plane's ledger,
    found by its fixed name; the template has no parameter to set for it."""
    pipe, _ = production
    function = pipe.cloud.client("lambda").get_function_configuration(
        FunctionName=pipe.cloud.ref("VerifyStagingHealthFunction")
    )
    variables = function["Environment"]["Variables"]

    assert variables["STAGING_LEDGER_TABLE_NAME"] == "synthetictrialstudio-staging-ledger"
    assert pipe.ledger.table_name == "synthetictrialstudio-production-ledger"
    assert pipe.staging_ledger.last_known_good("staging") is not None  # what the fixture's staging release left
    assert pipe.ledger.last_known_good("staging") is None  # production's own ledger knows nothing of staging
    assert not [p for p in load_template(TEMPLATE)["Parameters"] if "Staging" in p]


def test_a_digest_never_healthy_in_staging_is_refused(production: tuple[Pipeline, dict[str, Any]]) -> None:
    pipe, request = production
    fresh = pipe.push("edc-service", "v1.0.1")
    result = pipe.deploy({**request, "services": {**request["services"], "edc-service": fresh}})

    assert result.status == "FAILED"
    assert result.error == "NotHealthyInStagingError"
    assert "RequestApproval" not in result.states_entered()
    assert pipe.writes() == []


# ---- platform stacks -----------------------------------------------------------------------------------------------

CLUSTER = """AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Environment: {Type: String}
  ClusterName: {Type: String}
  TopicArn: {Type: String}
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub "/synthetictrialstudio/${Environment}/${ClusterName}"}
  Cluster:
    Type: AWS::EKS::Cluster
    Properties:
      Name: !Ref ClusterName
      RoleArn: arn:aws:iam::123456789012:role/synthetictrialstudio-staging-eks-cluster
      ResourcesVpcConfig: {SubnetIds: [subnet-1]}
Outputs:
  ClusterName: {Value: !Ref Cluster}
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    (tmp_path / "cloudformation").mkdir()
    (tmp_path / "cloudformation" / "base.yaml").write_text(ALARMS_TOPIC)
    (tmp_path / "cloudformation" / "eks.yaml").write_text(CLUSTER)
    (tmp_path / "stacks.yaml").write_text(
        "template_dir: cloudformation\nstacks:\n"
        "  - {suffix: base, template: base.yaml}\n"
        "  - {suffix: eks, template: eks.yaml, inputs: [ClusterName], wiring: {TopicArn: base.TopicArn}}\n"
    )
    return tmp_path / "stacks.yaml"


@pytest.fixture
def stacks(cluster: Any, catalog: Path) -> Iterator[Pipeline]:
    with pipeline(cluster, ProvisionStacks="true", StacksFile=str(catalog)) as pipe:
        yield pipe


def test_stacks_are_created_then_skipped_when_unchanged(stacks: Pipeline) -> None:
    first = stacks.first_release()
    second = stacks.push_and_deploy("edc-service", "main-2")
    cfn = stacks.cloud.client("cloudformation")
    described = cfn.describe_stacks(StackName="synthetictrialstudio-staging-eks")["Stacks"][0]

    assert [s["phase"] for s in first.output["stacks"]["stacks"]] == ["DONE", "DONE"]
    assert first.output["stacks"]["stacks"][1]["outputs"] == {"ClusterName": "sts-staging"}
    assert described["EnableTerminationProtection"] is True
    assert second.status == "SUCCEEDED", second.cause
    assert [s["phase"] for s in second.output["stacks"]["stacks"]] == ["SKIPPED", "SKIPPED"]


def test_a_stack_create_failure_ends_the_deploy_before_any_cluster_write(stacks: Pipeline) -> None:
    stacks.cloud.cfn_faults.fail_next(
        "synthetictrialstudio-staging-eks", "ROLLBACK_COMPLETE", reason="Cluster quota exceeded", resource="Cluster"
    )
    images = {name: stacks.push(name, "main-1") for name in platform.SERVICE_NAMES}
    result = stacks.deploy({"environment": "staging", "services": images, "reason": "first"})

    assert result.status == "FAILED"
    assert result.error == "StackFailedError"
    assert "Cluster quota exceeded" in str(result.cause)
    assert stacks.writes() == []


def test_a_stack_update_rolled_back_ends_the_deploy_before_any_cluster_write(stacks: Pipeline, catalog: Path) -> None:
    stacks.first_release()
    writes = len(stacks.writes())
    (catalog.parent / "cloudformation" / "base.yaml").write_text(ALARMS_TOPIC.replace("-alarms", "-alerts"))
    stacks.cloud.cfn_faults.fail_next(
        "synthetictrialstudio-staging-base", "UPDATE_ROLLBACK_COMPLETE", reason="Topic name in use"
    )

    result = stacks.push_and_deploy("edc-service", "main-2")

    assert result.status == "FAILED"
    assert result.error == "StackFailedError"
    assert "UPDATE_ROLLBACK_COMPLETE" in str(result.cause)
    assert len(stacks.writes()) == writes
