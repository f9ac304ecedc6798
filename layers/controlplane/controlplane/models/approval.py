"""RequestApproval / DecideApproval / ApprovalTimedOut: a person approves a production release."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from controlplane.models.base import StrictModel
from controlplane.models.images import Images
from controlplane.models.lease import Lease
from controlplane.models.release import Environment, ReleaseRef


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"


class ApprovalRequest(StrictModel):
    """Input of the ``waitForTaskToken`` task that asks for approval."""

    task_token: str = Field(min_length=1, repr=False)
    environment: Environment
    release_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    execution_arn: str
    images: Images
    bundle_hash: str = Field(min_length=1)
    requested_by: str | None = Field(default=None, description="the authenticated requester (operator API)")
    timeout_s: int = Field(default=86_400, gt=0)
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")
    lease: Lease = Field(description="$.lock.lease: renewed to outlast the approval wait")


class ApprovalNotice(StrictModel):
    release_id: str
    diff_uri: str
    message_id: str


class ApprovalOutcome(StrictModel):
    release_id: str
    status: ApprovalStatus
    approver: str | None = None
    comment: str = ""
    decided_at: datetime | None = None


class VerifyApprovalInput(StrictModel):
    """VerifyApproval: the execution's own plan, to compare with the signed decision (not the callback's payload)."""

    release: ReleaseRef
    execution_arn: str = Field(min_length=1, description="$$.Execution.Id")
    requested_by: str | None = Field(default=None, description="$.plan.trigger.requested_by (authenticated)")
    lease: Lease = Field(description="$.lock.lease: renewed first; a holder that lost it goes no further")
    now: datetime = Field(description="$$.State.EnteredTime (the clock the Wait states follow)")


class ApprovalTimeoutRequest(StrictModel):
    release_id: str
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")
    lease: Lease = Field(description="$.lock.lease: TIMED_OUT is written behind it (lost: nothing is written)")
