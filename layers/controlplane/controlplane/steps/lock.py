"""AcquireLock / ReleaseLock of the deploy (and rollback) state machines, and the lock release after an execution
that ended without reaching ReleaseLock or whose hand-off still owes a follow-up (the "Execution Status Change"
event, every end)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from controlplane.aws import ecr, lock, signing
from controlplane.aws.ledger import Ledger
from controlplane.errors import InputValidationError, PlanError
from controlplane.models.base import at
from controlplane.models.lock import (
    AcquireLockInput,
    LockOutcome,
    LockPurpose,
    LockRequest,
    LockResult,
    Push,
    ReleaseLockInput,
    ReleaseLockResult,
)
from controlplane.models.release import ConsoleRequest, OperatorRollbackRequest, parse, parse_request
from controlplane.observability import correlate, logger, metrics
from controlplane.settings import get_settings


def pushes_of(
    raw: Any, *, execution_arn: str, started_at: datetime, sequence: Callable[[str, datetime], int]
) -> tuple[str, list[Push]]:
    """The environment and pushes an execution input asks for; ``sequence(request id, at)`` numbers them (called
    once, only when there is something of ours to order): an ECR event by its id and time, a console request by
    its execution and the execution's start.

    Everything PlanRelease would refuse about the input itself is refused here, before the lock is written: the
    grammar, another environment, an unsigned ``force``, an ECR event whose digest is not in ECR.
    """
    settings = get_settings()
    request = parse_request(raw)
    environment = settings.target_environment(request)
    if isinstance(request, ConsoleRequest):
        settings.require_environment(environment)  # the same refusal as PlanRelease's, before anything is locked
        signing.requester_of(
            raw,
            force=request.force,
            execution_arn=execution_arn,
            key_id=settings.decision_key_id,
            region=settings.region,
        )
        number = sequence(execution_arn, started_at)
        return environment, [Push(service=s, reference=r, sequence=number) for s, r in request.services.items()]
    if environment != settings.environment:
        return environment, []  # another environment's push: skipped, whatever its repository
    service = request.service_name()
    try:
        ecr.resolve_image(
            request.detail.repository_name,
            request.detail.image_digest,
            region=settings.region,
            registry_id=settings.account_id,
        )
    except PlanError as exc:
        raise InputValidationError(f"detail.image-digest: {exc}") from None
    number = sequence(request.id, request.time)
    return environment, [Push(service=service, reference=request.detail.image_digest, sequence=number)]


def rollback_signed(raw: Any, *, execution_arn: str) -> str | None:
    """A rollback's input, checked before the lock is written: its grammar and who asked (the same refusals as
    ResolveRollbackTarget's, so an unsigned rollback never holds the environment)."""
    settings = get_settings()
    request = parse(OperatorRollbackRequest, raw, what="rollback")
    settings.require_environment(request.environment)
    return signing.rollback_requester(request, execution_arn=execution_arn, settings=settings)


def acquire_lock(event: AcquireLockInput) -> LockResult:
    """AcquireLock: own the environment, or queue this execution's pushes behind the owner (QUEUED: end cleanly)."""
    correlate(execution_arn=event.execution_arn)
    settings = get_settings()
    gates = settings.gates
    owner = event.owner or event.execution_arn
    if event.purpose is LockPurpose.DEPLOY:
        table = lock.LockTable(settings.ledger_table_name, region=settings.region)
        environment, pushes = pushes_of(
            event.input,
            execution_arn=event.execution_arn,
            started_at=event.started_at,
            sequence=lambda request_id, at_: table.sequence_for(
                settings.environment, request_id=request_id, at_s=int(at_.timestamp())
            ),
        )
        if environment != settings.environment:
            return LockResult(outcome=LockOutcome.SKIPPED, environment=settings.environment, owner=owner)
    else:
        environment, pushes = event.environment or settings.environment, []
        if event.purpose is LockPurpose.ROLLBACK and event.owner is None:
            rollback_signed(event.input, execution_arn=event.execution_arn)
    request = LockRequest(environment=environment, owner=owner, purpose=event.purpose, pushes=pushes)
    degraded = Ledger(settings.ledger_table_name, region=settings.region).degraded(environment)
    if degraded is not None:
        logger.warning(
            "environment is degraded: pushes are queued until an operator rollback or acknowledgement",
            extra={"since": degraded.since.isoformat(), "cause": degraded.cause[:300]},
        )
    result = lock.take(
        request,
        table_name=settings.ledger_table_name,
        region=settings.region,
        now=at(event.now),
        ttl_s=gates.lock_ttl_s,
        grace_s=gates.handoff_grace_s,
        degraded=degraded is not None,
    )
    if result.outcome is LockOutcome.QUEUED:
        metrics.add_metric(name="PushesQueued", unit="Count", value=len(result.queued))
    logger.info("lock", extra={"outcome": result.outcome.value, "holder": result.holder, "queued": result.queued})
    return result


def release_lock(event: ReleaseLockInput) -> ReleaseLockResult:
    """ReleaseLock (every exit path): release, or hand over to a follow-up deploy of the queued pushes."""
    correlate(execution_arn=event.owner)
    settings = get_settings()
    gates = settings.gates
    return lock.give_back(
        event.environment,
        event.owner,
        outcome=event.outcome,
        table_name=settings.ledger_table_name,
        region=settings.region,
        now=at(event.now),
        ttl_s=gates.lock_ttl_s,
        state_machine_arn=gates.deploy_state_machine_arn,
        # from the execution-status rule: the execution ended without its own ReleaseLock (aborted, timed out,
        # crashed), so what it carried was never deployed or recorded; or its outcome could not be recorded (the
        # ledger may not name what the cluster runs): a follow-up deploys and records it again
        requeue_carried=event.outcome in ("ABORTED", "TIMED_OUT", "FAILED") or event.record_error is not None,
    )


def release_lock_after_execution(event: Mapping[str, Any]) -> ReleaseLockResult | None:
    """EventBridge "Step Functions Execution Status Change" (every end: SUCCEEDED, FAILED, TIMED_OUT, ABORTED):
    release what the execution still held, or start the follow-up its hand-off promised."""
    detail = event.get("detail") or {}
    arn, status = str(detail.get("executionArn", "")), str(detail.get("status", ""))
    if not arn or status == "RUNNING":
        return None
    settings = get_settings()
    return release_lock(ReleaseLockInput(environment=settings.environment, owner=arn, outcome=status))
