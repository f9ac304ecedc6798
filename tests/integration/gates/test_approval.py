"""Production approval: diff stored outside the state, SNS request, approve/reject/timeout recorded (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from controlplane.aws import approval as approvals
from controlplane.aws.ledger import Ledger
from controlplane.errors import ApprovalStateError, InputValidationError, NotHealthyInStagingError
from controlplane.models.gates import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalTimeoutRequest,
    Decision,
    ImageRef,
    StagingHealthInput,
)
from controlplane.models.kube import ObjectDiff
from controlplane.models.release import ReleaseRecord, ReleaseStatus, Trigger, TriggerKind
from controlplane.steps.gates import decide_approval, record_approval_timeout, request_approval, verify_staging_health

from .conftest import REGION, TABLE

pytestmark = pytest.mark.integration

NOW = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)
TOKEN = "AQCEAAAAKgAAAAMAAAAA-secret-task-token"
D1, D2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMAGES = [ImageRef(service="edc-service", digest=D1)]


@pytest.fixture
def production(gate_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="approvals")
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    for key, value in {
        "ENVIRONMENT": "production",
        "APPROVAL_BUCKET": "approvals",
        "APPROVAL_TOPIC_ARN": topic,
    }.items():
        monkeypatch.setenv(key, value)
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(
        token: str, decision: Decision, *, output: dict[str, Any], cause: str, region: str | None = None
    ) -> None:
        sent.append((token, {"decision": decision.value, "output": output, "cause": cause}))

    monkeypatch.setattr(approvals, "send_decision", record)
    return {"queue": queue, "sent": sent}


def diff(_request: ApprovalRequest) -> list[ObjectDiff]:
    return [
        ObjectDiff.model_validate(
            {
                "ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "namespace": "clinical-trials",
                    "name": "edc-service",
                },
                "action": "configured",
                "changes": [
                    {
                        "path": "spec.template.spec.containers[name=app].image",
                        "op": "replace",
                        "live": "old",
                        "desired": "new",
                    }
                ],
            }
        ),
        ObjectDiff.model_validate(
            {
                "ref": {"api_version": "v1", "kind": "Service", "namespace": "clinical-trials", "name": "edc-service"},
                "action": "unchanged",
            }
        ),
    ]


def ask(release_id: str = "rel-1") -> Any:
    return request_approval(
        ApprovalRequest(
            task_token=TOKEN,
            environment="production",
            release_id=release_id,
            execution_arn="arn:exec",
            images=IMAGES,
            now=NOW,
        ),
        diff=diff,
    )


def test_the_request_stores_the_diff_outside_the_state_and_links_it_in_the_message(production: dict[str, Any]) -> None:
    notice = ask()

    assert notice.diff_uri == "s3://approvals/approvals/production/rel-1/diff.json"
    stored = json.loads(
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket="approvals", Key="approvals/production/rel-1/diff.json")["Body"]
        .read()
    )
    assert stored["objects"][0]["changes"][0]["path"] == "spec.template.spec.containers[name=app].image"
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=production["queue"])["Messages"]
    body = messages[0]["Body"]
    assert "Release rel-1 to production is waiting for approval." in body
    assert f"edc-service: {D1}" in body
    assert "Objects that change: 1 of 2" in body
    assert notice.diff_uri in body
    assert TOKEN not in body  # the token never leaves the ledger


def test_approval_by_release_id_answers_the_task_and_is_recorded(production: dict[str, Any]) -> None:
    ask()

    outcome = decide_approval(
        ApprovalDecision(release_id="rel-1", decision=Decision.APPROVE, approver="alice", comment="lgtm")
    )

    assert outcome.status is ApprovalStatus.APPROVED
    token, sent = production["sent"][0]
    assert token == TOKEN
    assert sent["decision"] == "approve"
    assert sent["output"]["approver"] == "alice"
    recorded = approvals.Approvals(TABLE, region=REGION).outcome("rel-1")
    assert recorded is not None
    assert (recorded.status, recorded.approver, recorded.comment) == (ApprovalStatus.APPROVED, "alice", "lgtm")


def test_rejection_by_token_fails_the_task_with_the_rejection_error(production: dict[str, Any]) -> None:
    ask()

    outcome = decide_approval(
        ApprovalDecision(task_token=TOKEN, decision=Decision.REJECT, approver="bob", comment="not on a Friday")
    )

    assert outcome.status is ApprovalStatus.REJECTED
    _, sent = production["sent"][0]
    assert sent["decision"] == "reject"
    assert sent["cause"] == "ApprovalRejectedError: rejected by bob: not on a Friday"


def test_a_second_decision_is_refused_and_the_first_stands(production: dict[str, Any]) -> None:
    ask()
    decide_approval(ApprovalDecision(release_id="rel-1", decision=Decision.APPROVE, approver="alice"))

    with pytest.raises(ApprovalStateError, match="not awaiting approval \\(status: APPROVED\\)"):
        decide_approval(ApprovalDecision(release_id="rel-1", decision=Decision.REJECT, approver="mallory"))
    assert len(production["sent"]) == 1


def test_a_token_and_release_id_that_disagree_are_refused(production: dict[str, Any]) -> None:
    ask("rel-1")
    with pytest.raises(InputValidationError, match="different approvals"):
        decide_approval(ApprovalDecision(task_token=TOKEN, release_id="rel-2", decision=Decision.APPROVE, approver="a"))


def test_a_timeout_is_recorded_and_a_late_decision_is_refused(production: dict[str, Any]) -> None:
    ask()

    outcome = record_approval_timeout(ApprovalTimeoutRequest(release_id="rel-1", now=NOW))

    assert outcome.status is ApprovalStatus.TIMED_OUT
    with pytest.raises(ApprovalStateError, match="TIMED_OUT"):
        decide_approval(ApprovalDecision(release_id="rel-1", decision=Decision.APPROVE, approver="late"))
    assert production["sent"] == []


def test_asking_again_after_a_decision_is_refused(production: dict[str, Any]) -> None:
    ask()
    decide_approval(ApprovalDecision(release_id="rel-1", decision=Decision.REJECT, approver="bob"))

    with pytest.raises(ApprovalStateError, match="already decided"):
        ask()


def test_the_sfn_adapter_maps_a_closed_task_to_an_approval_state_error(gate_env: dict[str, str]) -> None:
    class Closed:
        def send_task_success(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "Task Timed Out"}}, "SendTaskSuccess")

    with pytest.raises(ApprovalStateError, match="TaskTimedOut"):
        approvals.send_decision(TOKEN, Decision.APPROVE, output={}, cause="", client=Closed())  # type: ignore[arg-type]


# ---- staging health --------------------------------------------------------------------------------------------
def seed_staging(status: str = "succeeded", healthy: bool = True) -> None:
    ledger = Ledger(TABLE, region=REGION)
    record = ReleaseRecord(
        release_id="rel-s1",
        environment="staging",
        images={"edc-service": D1},
        bundle_hash="h",
        status=ReleaseStatus.PLANNED,
        trigger=Trigger(kind=TriggerKind.ECR_PUSH, reason="push"),
        execution_arn="arn:exec:staging",
        started_at=NOW,
    )
    ledger.put_planned(record)
    ledger.update_release("rel-s1", status=ReleaseStatus(status), healthy_at=NOW if healthy else None)
    ledger.promote("staging", "rel-s1", expected_previous=None, execution_arn="arn:exec:staging", now=NOW)


def test_production_accepts_digests_healthy_in_staging_and_refuses_others(gate_env: dict[str, str]) -> None:
    seed_staging()

    assert verify_staging_health(StagingHealthInput(images=IMAGES)).staging_release_ids == ["rel-s1"]
    with pytest.raises(NotHealthyInStagingError, match=D2):
        verify_staging_health(StagingHealthInput(images=[ImageRef(service="edc-service", digest=D2)]))


def test_a_staging_release_that_never_became_healthy_does_not_count(gate_env: dict[str, str]) -> None:
    seed_staging(status="failed", healthy=False)
    with pytest.raises(NotHealthyInStagingError):
        verify_staging_health(StagingHealthInput(images=IMAGES))
