"""Approval decisions: the signed record the operator API writes and VerifyApproval re-reads.

``DECISION#<release id>`` / ``DECISION`` holds the :class:`~controlplane.models.operator.DecisionRecord` (JSON) and
its HMAC by the decision key. It is written in one transaction with the approval item's move out of PENDING, and only
if no decision exists yet, so a release has at most one decision and a timed-out approval none. The signature, not
IAM on the table, is what makes it trustworthy: only the operator API's role may sign.
"""

from __future__ import annotations

from controlplane.aws.table import Condition, ConditionFailedError, Items, Key, Put, Update, approval_key
from controlplane.errors import ApprovalStateError
from controlplane.models.approval import ApprovalStatus
from controlplane.models.operator import DecisionRecord, SignedDecision


def decision_key(release_id: str) -> Key:
    return Key(f"DECISION#{release_id}", "DECISION")


class Decisions(Items):
    """The decision items of the ledger table ``table_name``."""

    def record(self, decision: SignedDecision) -> None:
        """Settle the pending approval and store the signed decision, both or neither."""
        record = decision.record
        settle = Update(
            approval_key(record.release_id),
            Condition(
                "SET #status = :status, #approver = :approver, #comment = :comment, #at = :at",
                {"#status": "status", "#approver": "approver", "#comment": "comment", "#at": "decided_at"},
                {
                    ":status": record.status.value,
                    ":approver": record.approver,
                    ":comment": record.comment,
                    ":at": record.decided_at.isoformat(),
                },
            ),
            condition=Condition(
                "#status = :pending AND #execution = :execution",
                {"#execution": "execution_arn"},
                {":pending": ApprovalStatus.PENDING.value, ":execution": record.execution_arn},
            ),
        )
        signed = Put(
            decision_key(record.release_id),
            {"kind": "approval_decision", "record": record.model_dump_json(), "mac": decision.mac},
            condition=Condition("attribute_not_exists(pk)"),
        )
        try:
            self.table.transact([settle, signed])
        except ConditionFailedError:
            raise ApprovalStateError(
                f"release {record.release_id} is not awaiting approval (decided, timed out, or re-planned)"
            ) from None

    def get(self, release_id: str) -> SignedDecision | None:
        data = self.table.get(decision_key(release_id))
        if data is None:
            return None
        record = DecisionRecord.model_validate_json(str(data.get("record") or "{}"))
        return SignedDecision(record=record, mac=str(data.get("mac", "")))
