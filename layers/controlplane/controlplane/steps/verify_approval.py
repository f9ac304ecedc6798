"""VerifyApproval: after the ``waitForTaskToken`` callback, proceed only on a signed APPROVED decision for this plan.

Anyone who can read the execution history holds the task token, and ``SendTaskSuccess`` accepts any payload. So the
callback's payload is discarded (``ResultPath: null``) and this state re-reads the decision the operator API signed
(:mod:`controlplane.aws.decision`): it must verify, say APPROVED, and name this release, this execution, these
digests and this bundle hash, decided by an approver who is not the requester. Anything else ends the execution with
:class:`~controlplane.errors.ApprovalNotVerifiedError` before any change. The lock's lease is renewed first: an
execution whose lock was taken while it waited ends ``LockLostError`` before anything else.
"""

from __future__ import annotations

from controlplane.aws import lock, signing
from controlplane.aws.decision import Decisions
from controlplane.errors import ApprovalNotVerifiedError
from controlplane.models.approval import ApprovalOutcome, ApprovalStatus, VerifyApprovalInput
from controlplane.models.operator import DecisionRecord, DecisionStatus, is_one_of, principal_key
from controlplane.observability import correlate, logger, metrics
from controlplane.settings import Settings, get_settings


def problem_with(record: DecisionRecord, event: VerifyApprovalInput, settings: Settings) -> str | None:
    """Why a (verified) decision does not approve this execution's plan; ``None`` when it does."""
    release = event.release
    expected = {
        "release_id": release.release_id,
        "environment": release.environment,
        "execution_arn": event.execution_arn,
        "images": dict(release.images),
        "bundle_hash": release.bundle_hash,
        "requested_by": event.requested_by,
    }
    actual = record.model_dump(include=set(expected))
    wrong = [name for name, value in expected.items() if actual[name] != value]
    if wrong:
        return f"the decision is for another plan ({', '.join(wrong)} differ)"
    if record.status is not DecisionStatus.APPROVED:
        return f"the release was {record.status.value.lower()} by {record.approver}"
    if not is_one_of(record.approver, settings.approvers):
        return f"{record.approver} is not an approver of {settings.environment}"
    if record.requested_by and principal_key(record.requested_by) == principal_key(record.approver):
        return f"{record.approver} requested this release and cannot approve it"
    return None


def verify_approval(event: VerifyApprovalInput) -> ApprovalOutcome:
    """The signed decision for ``event.release`` in ``event.execution_arn``, or :class:`ApprovalNotVerifiedError`."""
    release = event.release
    correlate(execution_arn=event.execution_arn, release_id=release.release_id, environment=release.environment)
    settings = get_settings()
    # The approval wait may have been long: the lease is renewed first, and a holder that lost it goes no further.
    lock.renew(
        lock.LockTable(settings.ledger_table_name, region=settings.region),
        event.lease,
        now=event.now,
        ttl_s=settings.gates.lock_ttl_s,
    )
    signed = Decisions(settings.ledger_table_name, region=settings.region).get(release.release_id)
    if signed is None:
        problem: str | None = "no decision was recorded by the operator API (the callback alone proves nothing)"
    elif not signing.verify(
        settings.require("decision_key_id"), signed.record.material(), signed.mac, region=settings.region
    ):
        problem = "the recorded decision's signature does not verify"
    else:
        problem = problem_with(signed.record, event, settings)
    if signed is None or problem is not None:
        metrics.add_metric(name="ApprovalsNotVerified", unit="Count", value=1)
        logger.warning("approval not verified", extra={"problem": problem})
        raise ApprovalNotVerifiedError(f"release {release.release_id} is not approved: {problem}")
    logger.info("approval verified", extra={"approver": signed.record.approver})
    return ApprovalOutcome(
        release_id=release.release_id,
        status=ApprovalStatus.APPROVED,
        approver=signed.record.approver,
        comment=signed.record.comment,
        decided_at=signed.record.decided_at,
    )
