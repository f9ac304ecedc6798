"""Approval decisions: the signed record the operator API writes and VerifyApproval re-reads.

``DECISION#<release id>`` / ``DECISION`` holds the :class:`~controlplane.models.operator.DecisionRecord` (JSON) and
its HMAC by the decision key. It is written in one transaction with the approval item's move out of PENDING, and only
if no decision exists yet, so a release has at most one decision and a timed-out approval none. The signature, not
IAM on the table, is what makes it trustworthy: only the operator API's role may sign.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.approval import approval_key
from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import ApprovalStateError
from controlplane.models.gates import ApprovalStatus
from controlplane.models.operator import DecisionRecord, SignedDecision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def decision_key(release_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"DECISION#{release_id}"}, "sk": {"S": "DECISION"}}


class Decisions:
    """The decision items of the ledger table ``table_name``."""

    def __init__(self, table_name: str, *, region: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", region_name=region)

    def record(self, decision: SignedDecision) -> None:
        """Settle the pending approval and store the signed decision, both or neither."""
        record = decision.record
        try:
            with translate_aws_errors("dynamodb:TransactWriteItems"):
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.table_name,
                                "Key": approval_key(record.release_id),
                                "UpdateExpression": "SET #status = :status, #approver = :approver, "
                                "#comment = :comment, #at = :at",
                                "ConditionExpression": "#status = :pending AND #execution = :execution",
                                "ExpressionAttributeNames": {
                                    "#status": "status",
                                    "#approver": "approver",
                                    "#comment": "comment",
                                    "#at": "decided_at",
                                    "#execution": "execution_arn",
                                },
                                "ExpressionAttributeValues": {
                                    ":status": {"S": record.status.value},
                                    ":pending": {"S": ApprovalStatus.PENDING.value},
                                    ":approver": {"S": record.approver},
                                    ":comment": {"S": record.comment},
                                    ":at": {"S": record.decided_at.isoformat()},
                                    ":execution": {"S": record.execution_arn},
                                },
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.table_name,
                                "Item": decision_key(record.release_id)
                                | {
                                    "kind": {"S": "approval_decision"},
                                    "record": {"S": record.model_dump_json()},
                                    "mac": {"S": decision.mac},
                                },
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
        except ClientError as exc:
            if error_code(exc) in {"TransactionCanceledException", "ConditionalCheckFailedException"}:
                raise ApprovalStateError(
                    f"release {record.release_id} is not awaiting approval (decided, timed out, or re-planned)"
                ) from None
            raise

    def get(self, release_id: str) -> SignedDecision | None:
        with translate_aws_errors("dynamodb:GetItem"):
            item = self._client.get_item(TableName=self.table_name, Key=decision_key(release_id), ConsistentRead=True)
        if "Item" not in item:
            return None
        data = item["Item"]
        record = DecisionRecord.model_validate_json(str(data.get("record", {}).get("S", "{}")))
        return SignedDecision(record=record, mac=str(data.get("mac", {}).get("S", "")))
