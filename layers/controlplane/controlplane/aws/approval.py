"""Production approval: the dry-run diff in S3, the pending approval in the ledger, the SNS request, the decision.

Items (ledger table, through :mod:`controlplane.aws.table`):

* ``RELEASE#<release id>`` / ``APPROVAL`` — status (PENDING, APPROVED, REJECTED, TIMED_OUT), what is to be approved
  (execution, digests, bundle hash, the authenticated requester), the task token **encrypted** by KMS (only the
  operator API's role may decrypt it; the encryption context binds it to the release and execution), the diff
  location, who decided, when, and their comment. Decisions are conditional on PENDING: a second decision, or one
  after the timeout, is refused instead of overwriting the first.
* ``DECISION#<release id>`` / ``DECISION`` — the signed decision (:mod:`controlplane.aws.decision`): what
  VerifyApproval trusts, never this item's status.

The token itself is never stored in plaintext, logged, put in a message or an exception.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.aws.table import Condition, ConditionFailedError, Items, Put, Update, approval_key
from controlplane.errors import ApprovalStateError
from controlplane.models.approval import ApprovalOutcome, ApprovalStatus, Decision

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

SUBJECT_LIMIT = 100


def diff_key(environment: str, release_id: str) -> str:
    return f"approvals/{environment}/{release_id}/diff.json"


def store_diff(
    bucket: str, key: str, document: dict[str, Any], *, region: str | None = None, client: S3Client | None = None
) -> str:
    """Write the diff document (JSON) and return its ``s3://`` URI (no presigned URL: readers use their own IAM)."""
    s3: S3Client = client or boto3.client("s3", region_name=region)
    with translate_aws_errors("s3:PutObject"):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(document, indent=2, sort_keys=True, default=str).encode(),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
        )
    return f"s3://{bucket}/{key}"


class Approvals(Items):
    """The approval items of the ledger table ``table_name``."""

    def register(
        self,
        *,
        release_id: str,
        environment: str,
        task_token_ciphertext: str,
        execution_arn: str,
        images: dict[str, str],
        bundle_hash: str,
        requested_by: str | None,
        diff_uri: str,
        summary: str,
        now: datetime,
    ) -> None:
        """Record the pending approval (a retried task with a new token replaces the pending one, not a decided one),
        behind the adapter's fence when it has one (``LockLostError``: nothing written)."""
        approval = {
            "kind": "approval",
            "release_id": release_id,
            "environment": environment,
            "status": ApprovalStatus.PENDING.value,
            "task_token_ciphertext": task_token_ciphertext,
            "execution_arn": execution_arn,
            "images": json.dumps(images, sort_keys=True),
            "bundle_hash": bundle_hash,
            "requested_by": requested_by or "",
            "diff_uri": diff_uri,
            "summary": summary[:4000],
            "requested_at": now.isoformat(),
        }
        still_pending = Condition(
            "attribute_not_exists(pk) OR #status = :pending",
            {"#status": "status"},
            {":pending": ApprovalStatus.PENDING.value},
        )
        try:
            self.write(Put(approval_key(release_id), approval, still_pending))
        except ConditionFailedError:
            raise ApprovalStateError(f"release {release_id} was already decided; not asking again") from None

    def get(self, release_id: str) -> dict[str, str] | None:
        data = self.table.get(approval_key(release_id))
        return {k: str(v) for k, v in data.items()} if data is not None else None

    def outcome(self, release_id: str) -> ApprovalOutcome | None:
        data = self.get(release_id)
        if data is None:
            return None
        return ApprovalOutcome(
            release_id=release_id,
            status=ApprovalStatus(data["status"]),
            approver=data.get("approver") or None,
            comment=data.get("comment", ""),
            decided_at=datetime.fromisoformat(data["decided_at"]) if data.get("decided_at") else None,
        )

    def settle(
        self, release_id: str, status: ApprovalStatus, *, approver: str | None, comment: str, now: datetime
    ) -> None:
        """Move PENDING -> ``status`` (the timeout's path; decisions go through :mod:`controlplane.aws.decision`),
        behind the adapter's fence when it has one (``LockLostError``: nothing written)."""
        update = Condition(
            "SET #status = :status, #approver = :approver, #comment = :comment, #at = :at",
            {"#status": "status", "#approver": "approver", "#comment": "comment", "#at": "decided_at"},
            {":status": status.value, ":approver": approver or "", ":comment": comment[:1000], ":at": now.isoformat()},
        )
        pending = Condition("#status = :pending", {"#status": "status"}, {":pending": ApprovalStatus.PENDING.value})
        try:
            self.write(Update(approval_key(release_id), update, pending))
        except ConditionFailedError:
            current = self.get(release_id)
            state = current["status"] if current else "unknown"
            raise ApprovalStateError(f"release {release_id} is not awaiting approval (status: {state})") from None


def publish_request(
    topic_arn: str, *, subject: str, message: str, region: str | None = None, client: SNSClient | None = None
) -> str:
    """Publish the approval request; returns the SNS message id."""
    sns: SNSClient = client or boto3.client("sns", region_name=region)
    with translate_aws_errors("sns:Publish"):
        response = sns.publish(TopicArn=topic_arn, Subject=subject[:SUBJECT_LIMIT], Message=message)
    return str(response["MessageId"])


def send_decision(
    task_token: str,
    decision: Decision,
    *,
    output: dict[str, Any],
    cause: str,
    region: str | None = None,
    client: SFNClient | None = None,
) -> None:
    """SendTaskSuccess (approve) or SendTaskFailure with ``ApprovalRejectedError`` (reject).

    A token whose task already ended (timed out, execution stopped) raises :class:`ApprovalStateError`.
    """
    sfn: SFNClient = client or boto3.client("stepfunctions", region_name=region)
    try:
        with translate_aws_errors("states:SendTask"):
            if decision is Decision.APPROVE:
                sfn.send_task_success(taskToken=task_token, output=json.dumps(output, sort_keys=True, default=str))
            else:
                sfn.send_task_failure(taskToken=task_token, error="ApprovalRejectedError", cause=cause[:32_000])
    except ClientError as exc:
        if error_code(exc) in {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}:
            raise ApprovalStateError(f"the approval task is no longer waiting ({error_code(exc)})") from None
        raise
