"""Production approval: diff stored outside the state, SNS request, the token kept encrypted, decisions taken
through the operator API's handler as the authenticated caller, signed, and verified after the callback (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from controlplane.aws import approval as approvals
from controlplane.aws.decision import decision_key
from controlplane.aws.ledger import Ledger
from controlplane.aws.lock import LockTable, fence, lock_key
from controlplane.aws.table import Condition
from controlplane.errors import ApprovalNotVerifiedError, ApprovalStateError, LockLostError, NotHealthyInStagingError
from controlplane.models.approval import (
    ApprovalRequest,
    ApprovalStatus,
    ApprovalTimeoutRequest,
    Decision,
    VerifyApprovalInput,
)
from controlplane.models.images import ImageRef
from controlplane.models.kube import ObjectDiff
from controlplane.models.lease import Lease
from controlplane.models.release import ReleaseRecord, ReleaseRef, ReleaseStatus, Trigger, TriggerKind
from controlplane.models.staging_health import StagingHealthInput
from controlplane.steps.approval import record_approval_timeout, request_approval
from controlplane.steps.operator import handle
from controlplane.steps.staging_health import verify_staging_health
from controlplane.steps.verify_approval import verify_approval

from .conftest import ACCOUNT, REGION, TABLE, hold_lock

pytestmark = pytest.mark.integration

NOW = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)
TOKEN = "AQCEAAAAKgAAAAMAAAAA-secret-task-token"
D1, D2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMAGES = [ImageRef(service="edc-service", digest=D1)]
REL = "rel-" + "1" * 20
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sts-deploy:op-deploy-1"
APPROVER = f"arn:aws:sts::{ACCOUNT}:assumed-role/release-approver/carol"
REQUESTER = f"arn:aws:sts::{ACCOUNT}:assumed-role/release-manager/bob"
OUTSIDER = f"arn:aws:sts::{ACCOUNT}:assumed-role/developer/eve"
RELEASE = ReleaseRef(release_id=REL, environment="production", images={"edc-service": D1}, bundle_hash="bundle-1")


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
    kms = boto3.client("kms", region_name=REGION)
    token_key = kms.create_key()["KeyMetadata"]["Arn"]
    decision_key_arn = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    for key, value in {
        "ENVIRONMENT": "production",
        "APPROVAL_BUCKET": "approvals",
        "APPROVAL_TOPIC_ARN": topic,
        "APPROVAL_TOKEN_KEY_ID": token_key,
        "DECISION_KEY_ID": decision_key_arn,
        "APPROVERS": f"arn:aws:iam::{ACCOUNT}:role/release-approver,arn:aws:iam::{ACCOUNT}:role/release-manager",
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


def ask(release_id: str = REL, requested_by: str | None = REQUESTER) -> Any:
    return request_approval(
        ApprovalRequest(
            task_token=TOKEN,
            environment="production",
            release_id=release_id,
            execution_arn=EXECUTION,
            images=IMAGES,
            bundle_hash="bundle-1",
            requested_by=requested_by,
            now=NOW,
            lease=hold_lock("production", EXECUTION),
        ),
        diff=diff,
    )


def url_event(principal: str | None, body: Any) -> dict[str, Any]:
    """A function URL request (payload format 2.0) as AWS delivers it after SigV4 authentication."""
    context: dict[str, Any] = {"requestId": "r-1", "http": {"method": "POST", "path": "/"}}
    if principal is not None:
        context["authorizer"] = {
            "iam": {"accessKey": "ASIA0000", "accountId": ACCOUNT, "callerId": "AROA:x", "userArn": principal}
        }
    return {"version": "2.0", "requestContext": context, "body": json.dumps(body), "isBase64Encoded": False}


def call(principal: str | None, body: Any) -> tuple[int, dict[str, Any]]:
    response = handle(url_event(principal, body), now=NOW)
    return int(response["statusCode"]), json.loads(response["body"])


def verify(execution_arn: str = EXECUTION, requested_by: str | None = REQUESTER, lease: Lease | None = None) -> Any:
    return verify_approval(
        VerifyApprovalInput(
            release=RELEASE,
            execution_arn=execution_arn,
            requested_by=requested_by,
            lease=lease or hold_lock("production", EXECUTION),
            now=NOW,
        )
    )


def test_the_request_stores_the_diff_outside_the_state_and_the_token_only_encrypted(production: dict[str, Any]) -> None:
    notice = ask()

    assert notice.diff_uri == f"s3://approvals/approvals/production/{REL}/diff.json"
    stored = json.loads(
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket="approvals", Key=f"approvals/production/{REL}/diff.json")["Body"]
        .read()
    )
    assert stored["objects"][0]["changes"][0]["path"] == "spec.template.spec.containers[name=app].image"
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=production["queue"])["Messages"]
    body = messages[0]["Body"]
    assert f"Release {REL} to production is waiting for approval." in body
    assert f"Requested by: {REQUESTER}" in body
    assert f"edc-service: {D1}" in body
    assert "Objects that change: 1 of 2" in body
    assert notice.diff_uri in body
    assert TOKEN not in body
    ledger = json.dumps(boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"])
    assert TOKEN not in ledger
    assert "task_token_ciphertext" in ledger


def test_an_approver_answers_the_task_and_the_signed_decision_verifies(production: dict[str, Any]) -> None:
    ask()

    status, answer = call(APPROVER, {"action": "approve", "release_id": REL, "comment": "lgtm"})

    assert (status, answer["status"], answer["principal"]) == (200, "APPROVED", APPROVER)
    token, sent = production["sent"][0]
    assert token == TOKEN  # decrypted for the callback only
    assert sent["decision"] == "approve"
    recorded = approvals.Approvals(TABLE, region=REGION).outcome(REL)
    assert recorded is not None
    assert (recorded.status, recorded.approver, recorded.comment) == (ApprovalStatus.APPROVED, APPROVER, "lgtm")
    verified = verify()
    assert (verified.status, verified.approver) == (ApprovalStatus.APPROVED, APPROVER)


def test_a_rejection_fails_the_task_and_never_verifies(production: dict[str, Any]) -> None:
    ask()

    status, _ = call(APPROVER, {"action": "reject", "release_id": REL, "comment": "not on a Friday"})

    assert status == 200
    _, sent = production["sent"][0]
    assert sent["decision"] == "reject"
    assert sent["cause"] == f"ApprovalRejectedError: rejected by {APPROVER}: not on a Friday"
    with pytest.raises(ApprovalNotVerifiedError, match="rejected"):
        verify()


@pytest.mark.parametrize(
    ("principal", "body", "status", "field"),
    [
        (None, {"action": "approve", "release_id": REL}, 403, "no authenticated AWS identity"),
        (OUTSIDER, {"action": "approve", "release_id": REL}, 403, "not an approver"),
        (REQUESTER, {"action": "approve", "release_id": REL}, 403, "separation of duties"),
        (REQUESTER.replace("/bob", "/bob-2"), {"action": "approve", "release_id": REL}, 403, "separation of duties"),
        (APPROVER, {"action": "approve", "release_id": REL, "approver": "security-team"}, 400, "approver"),
        (APPROVER, {"action": "approve", "release_id": "rel-1"}, 400, "release_id"),
        (APPROVER, {"action": "approve", "release_id": REL, "comment": "ok\nApproved-by: ciso"}, 400, "comment"),
        (APPROVER, {"action": "approve", "release_id": REL, "comment": "ok \u202e"}, 400, "comment"),
        (APPROVER, [{"action": "approve"}], 400, "body: a JSON object is required"),
        (APPROVER, {"action": "deploy", "environment": "production", "services": {}, "reason": "x"}, 400, "services"),
        (
            APPROVER,
            {
                "action": "deploy",
                "environment": "production",
                "services": {"edc-service": D1},
                "reason": "x",
                "force": "yes",
            },
            400,
            "force",
        ),
        (
            APPROVER,
            {"action": "deploy", "environment": "staging", "services": {"edc-service": D1}, "reason": "x"},
            400,
            "environment",
        ),
        (APPROVER, {"action": "destroy"}, 400, "action"),
    ],
)
def test_the_operator_api_refuses_by_name_and_nothing_is_decided(
    production: dict[str, Any], principal: str | None, body: Any, status: int, field: str
) -> None:
    ask()

    answer = call(principal, body)

    assert answer[0] == status, answer
    assert field in answer[1]["message"]
    assert production["sent"] == []
    assert approvals.Approvals(TABLE, region=REGION).outcome(REL).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


def test_a_second_decision_is_refused_and_the_first_stands(production: dict[str, Any]) -> None:
    ask()
    call(APPROVER, {"action": "approve", "release_id": REL})

    status, answer = call(APPROVER, {"action": "reject", "release_id": REL})

    assert (status, answer["error"]) == (409, "ApprovalStateError")
    assert len(production["sent"]) == 1


def test_a_timeout_is_recorded_and_a_late_decision_is_refused(production: dict[str, Any]) -> None:
    ask()

    outcome = record_approval_timeout(
        ApprovalTimeoutRequest(release_id=REL, now=NOW, lease=hold_lock("production", EXECUTION))
    )

    assert outcome.status is ApprovalStatus.TIMED_OUT
    status, answer = call(APPROVER, {"action": "approve", "release_id": REL})
    assert status == 409
    assert "TIMED_OUT" in answer["message"]
    assert production["sent"] == []


def test_a_timeout_whose_lock_was_taken_during_the_wait_writes_nothing(production: dict[str, Any]) -> None:
    """RecordApprovalTimeout writes TIMED_OUT behind the lease: a holder that lost it ends LockLostError and the
    approval stays as it was."""
    lease = hold_lock("production", EXECUTION)
    ask()
    LockTable(TABLE, region=REGION).table.update(
        lock_key("production"), Condition("SET #lease = :next", {"#lease": "lease"}, {":next": lease.token + 1})
    )  # taken over: the token moved on

    with pytest.raises(LockLostError, match="no longer holds"):
        record_approval_timeout(ApprovalTimeoutRequest(release_id=REL, now=NOW, lease=lease))

    assert approvals.Approvals(TABLE, region=REGION).outcome(REL).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


def test_a_pending_approval_is_written_behind_the_lease(production: dict[str, Any]) -> None:
    """RequestApproval renews the lease, then registers the pending approval behind it: a holder whose lock changed
    hands in between writes no approval (LockLostError)."""
    lease = hold_lock("production", EXECUTION)
    LockTable(TABLE, region=REGION).table.update(
        lock_key("production"), Condition("SET #lease = :next", {"#lease": "lease"}, {":next": lease.token + 1})
    )
    pending = approvals.Approvals(TABLE, region=REGION, fence=fence(lease))

    with pytest.raises(LockLostError, match="no longer holds"):
        pending.register(
            release_id=REL,
            environment="production",
            task_token_ciphertext="Y2lwaGVy",
            execution_arn=EXECUTION,
            images={"edc-service": D1},
            bundle_hash="bundle-1",
            requested_by=REQUESTER,
            diff_uri="s3://approvals/diff.json",
            summary="",
            now=NOW,
        )

    assert pending.get(REL) is None


def test_asking_again_after_a_decision_is_refused(production: dict[str, Any]) -> None:
    ask()
    call(APPROVER, {"action": "reject", "release_id": REL})

    with pytest.raises(ApprovalStateError, match="already decided"):
        ask()


def test_a_decision_verifies_only_for_its_own_execution_and_untampered(production: dict[str, Any]) -> None:
    ask()
    call(APPROVER, {"action": "approve", "release_id": REL})

    with pytest.raises(ApprovalNotVerifiedError, match="execution_arn"):
        verify(execution_arn=EXECUTION.replace("op-deploy-1", "op-deploy-2"))
    with pytest.raises(ApprovalNotVerifiedError, match="requested_by"):
        verify(requested_by=None)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    item = dynamodb.get_item(TableName=TABLE, Key=decision_key(REL).encoded())["Item"]
    record = json.loads(item["record"]["S"])
    record["images"] = {"edc-service": D2}  # a ledger writer edits what was approved
    item["record"] = {"S": json.dumps(record)}
    dynamodb.put_item(TableName=TABLE, Item=item)
    with pytest.raises(ApprovalNotVerifiedError, match="signature does not verify"):
        verify()


def test_an_approved_release_whose_lock_was_taken_during_the_wait_goes_no_further(production: dict[str, Any]) -> None:
    """VerifyApproval renews the lease first: a holder whose lock changed hands while it waited ends LockLostError,
    however good its decision (the lock's new owner is the only one that may write)."""
    lease = hold_lock("production", EXECUTION)
    ask()
    call(APPROVER, {"action": "approve", "release_id": REL})
    assert verify(lease=lease).status.value == "APPROVED"
    LockTable(TABLE, region=REGION).table.update(
        lock_key("production"), Condition("SET #lease = :next", {"#lease": "lease"}, {":next": lease.token + 1})
    )  # taken over: the token moved on

    with pytest.raises(LockLostError, match="no longer holds"):
        verify(lease=lease)


def test_without_any_decision_the_callback_is_not_enough(production: dict[str, Any]) -> None:
    ask()
    with pytest.raises(ApprovalNotVerifiedError, match="no decision was recorded"):
        verify()


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
