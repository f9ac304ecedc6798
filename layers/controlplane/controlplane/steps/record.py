"""RecordOutcome: write what happened to the ledger, move last-known-good, emit metrics, notify.

Every write is conditional or keyed by natural keys, so recording the same outcome twice changes nothing. The
returned ``message`` is the execution's Cause when it ends FAILED (the Fail state reads it with ``CausePath``).
"""

from __future__ import annotations

from typing import Any

from controlplane.aws import lock
from controlplane.aws.ledger import Ledger, degraded_cleared
from controlplane.aws.notify import notify_outcome
from controlplane.errors import InputValidationError
from controlplane.models.release import (
    Degraded,
    Outcome,
    PlanOutput,
    RecordInput,
    RecordOutput,
    ReleaseRef,
    ReleaseStatus,
    StepError,
)
from controlplane.observability import correlate, logger, metrics, tracer
from controlplane.settings import Settings, get_settings

# Failures the new images are to blame for: their digests are quarantined. An API server that stayed unavailable or
# a forbidden write says nothing about the images, and a rerun must be able to deploy them.
IMAGE_FAILURES = frozenset({"RolloutFailedError", "DeadlineExceededError", "SmokeTestFailedError"})

_STATUS = {
    Outcome.SUCCEEDED: ReleaseStatus.SUCCEEDED,
    Outcome.ROLLED_BACK: ReleaseStatus.ROLLED_BACK,
    Outcome.FAILED: ReleaseStatus.FAILED,
    Outcome.ROLLBACK_FAILED: ReleaseStatus.ROLLBACK_FAILED,
    Outcome.REFUSED: ReleaseStatus.REFUSED,
}


def _describe(error: StepError | None) -> str:
    return f"{error.Error}: {error.message()}" if error else "unknown error"


@tracer.capture_method
def record_outcome(event: RecordInput) -> RecordOutput:
    settings = get_settings()
    correlate(execution_arn=event.execution_arn, environment=settings.environment)
    # Fenced: every write carries the lease as a condition; a holder that lost it records nothing (LockLostError).
    ledger = Ledger(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease))
    if event.outcome is Outcome.RESTORED:
        return _record_restored(event, settings, ledger)
    if event.outcome is Outcome.RESTORE_UNRECORDED:
        return _record_restore_unrecorded(event, settings, ledger)
    plan = event.plan
    if plan is None or plan.release is None:
        if event.outcome is Outcome.ROLLBACK_FAILED:  # an operator rollback that failed: no release of ours
            return _record_operator_rollback_failed(event, settings)
        raise InputValidationError("plan: required to record the outcome of a deploy")
    release = plan.release
    correlate(release_id=release.release_id)
    target = event.rollback.release.release_id if event.rollback and event.rollback.release else None
    fields: dict[str, Any] = {"status": _STATUS[event.outcome], "finished_at": event.now}
    if event.apply is not None:
        fields["applied_objects"] = event.apply.applied

    if event.outcome is Outcome.REFUSED:
        return _record_refused(event, settings, ledger, release)
    if event.outcome is Outcome.SUCCEEDED:
        message = _record_success(event, plan, ledger, fields)
    else:
        message = _record_failure(event, plan, ledger, fields, target)
    _notify(settings, event.outcome, release.release_id, message, event.execution_arn)
    logger.info("release outcome recorded", extra={"outcome": event.outcome.value, "detail": message})
    return RecordOutput(release_id=release.release_id, outcome=event.outcome, message=message[:30000])


def _record_success(event: RecordInput, plan: PlanOutput, ledger: Ledger, fields: dict[str, Any]) -> str:
    """The release is healthy: it becomes the environment's last known-good."""
    release = plan.release
    assert release is not None  # the caller checked
    healthy_at = event.health.checked_at if event.health else event.now
    # One transaction: the release's status and the last-known-good pointer move together (behind the lease), or
    # neither does and the execution fails RecordingFailed naming the cause.
    ledger.promote(
        release.environment,
        release.release_id,
        expected_previous=plan.previous_release_id,
        execution_arn=event.execution_arn,
        now=event.now,
        release_fields={"healthy_at": healthy_at, **fields},
    )
    metrics.add_metric(name="DeploysSucceeded", unit="Count", value=1)
    metrics.add_metric(name="TimeToHealthy", unit="Seconds", value=(healthy_at - plan.started_at).total_seconds())
    message = f"release {release.release_id} is healthy on {release.environment} and is its last known-good"
    kept = event.apply.kept_changes if event.apply else []
    if kept:
        message += (
            f"; DRIFT KEPT: {len(kept)} change(s) made outside the release survived the deploy (a deploy never removes"
            " another manager's fields; put them in the release, or roll back to the release to remove them): "
            + "; ".join(kept)
        )
    return message


def _record_failure(
    event: RecordInput, plan: PlanOutput, ledger: Ledger, fields: dict[str, Any], target: str | None
) -> str:
    """The release failed: record why, quarantine the new digests when they are to blame, point last-known-good at
    what the cluster runs, mark a failed rollback degraded: one transaction (all of it or none), then say what
    happened next."""
    release = plan.release
    assert release is not None  # the caller checked
    cause = _describe(event.error)
    suspects = plan.changed if event.error and event.error.Error in IMAGE_FAILURES else {}
    failed_rollback = event.outcome is Outcome.ROLLBACK_FAILED
    moved = ledger.record_failure(
        release.environment,
        release.release_id,
        release_fields={"cause": cause[:2000], "rolled_back_to": target, **fields},
        quarantine=suspects,
        cause=cause[:500],
        rolled_back_to=target if event.outcome is Outcome.ROLLED_BACK else None,
        degraded=_degraded(event, release.environment, release.release_id, cause) if failed_rollback else None,
        execution_arn=event.execution_arn,
        now=event.now,
    )
    metrics.add_metric(name="DeploysFailed", unit="Count", value=1)
    quarantined = ", ".join(f"{s}@{d[:19]}" for s, d in sorted(suspects.items())) or "none"
    if moved is not None:
        logger.warning(
            "last known-good moved back to the release the cluster runs",
            extra={"from": moved.replaced, "to": moved.pointer.release_id},
        )
    if event.outcome is Outcome.ROLLED_BACK:
        metrics.add_metric(name="DeploysRolledBack", unit="Count", value=1)
        return (
            f"release {release.release_id} failed ({cause}); rollback to {target} succeeded: "
            f"{release.environment} is healthy on its last known-good release; quarantined: {quarantined}"
        )
    if failed_rollback:
        metrics.add_metric(name="RollbacksFailed", unit="Count", value=1)
        _degraded_metric(release.environment, release.release_id)
        return (
            f"release {release.release_id} failed ({cause}); ROLLBACK to {target} FAILED "
            f"({_describe(event.rollback_error)}): operators must act; quarantined: {quarantined}. "
            + what_to_do(release.environment, target)
        )
    if event.rollback is not None and event.rollback.nothing_written:
        return f"release {release.release_id} failed ({cause}); {event.rollback.reason}"
    reason = event.rollback.reason if event.rollback else "no rollback"
    return (
        f"release {release.release_id} failed ({cause}); not rolled back: {reason}; the cluster keeps the "
        f"failed release's objects; quarantined: {quarantined}"
    )


def _record_refused(event: RecordInput, settings: Settings, ledger: Ledger, release: ReleaseRef) -> RecordOutput:
    """A gate refused the planned release before any cluster write: the ledger says so, with the gate's cause."""
    cause = _describe(event.error)
    ledger.update_release(release.release_id, status=ReleaseStatus.REFUSED, finished_at=event.now, cause=cause[:2000])
    metrics.add_metric(name="DeploysRefused", unit="Count", value=1)
    message = f"release {release.release_id} refused before any change to {release.environment}: {cause}"
    _notify(settings, event.outcome, release.release_id, message, event.execution_arn)
    logger.info("release refused", extra={"detail": message})
    return RecordOutput(release_id=release.release_id, outcome=event.outcome, message=message[:30000])


def _record_restored(event: RecordInput, settings: Settings, ledger: Ledger) -> RecordOutput:
    rollback = event.rollback
    if rollback is None or rollback.release is None:
        raise InputValidationError("rollback.release: required to record a restored release")
    release = rollback.release
    correlate(release_id=release.release_id)
    was_degraded = ledger.degraded(release.environment)
    # One transaction: the pointer moves to the restored release and the degraded mark goes with it.
    ledger.promote(
        release.environment,
        release.release_id,
        expected_previous=rollback.replaces_release_id,
        execution_arn=event.execution_arn,
        now=event.now,
        also=[degraded_cleared(release.environment)] if was_degraded is not None else [],
    )
    metrics.add_metric(name="RollbacksSucceeded", unit="Count", value=1)
    message = f"{release.environment} rolled back to release {release.release_id} ({rollback.reason}); healthy"
    if was_degraded is not None:
        message += "; no longer degraded: the pushes queued meanwhile are deployed next"
    _notify(settings, event.outcome, release.release_id, message, event.execution_arn)
    return RecordOutput(release_id=release.release_id, outcome=event.outcome, message=message)


def _record_restore_unrecorded(event: RecordInput, settings: Settings, ledger: Ledger) -> RecordOutput:
    """RecordRestored failed through its retries: the cluster runs the rollback's target, but the pointer still names
    what ran before. The compensation: the environment is marked degraded with that cause (automatic deploys are
    queued, never planned from the stale pointer), so the ledger never claims a release the cluster does not run
    without saying so. The execution still ends failed (RecordingFailed), naming both."""
    rollback = event.rollback
    if rollback is None or rollback.release is None:
        raise InputValidationError("rollback.release: required to record an unrecorded restore")
    release = rollback.release
    correlate(release_id=release.release_id)
    pointer = ledger.last_known_good(release.environment)
    named = pointer.release_id if pointer else None
    cause = (
        f"the operator rollback to release {release.release_id} was applied and is healthy, but recording it failed "
        f"({_describe(event.error)}): the ledger's last known-good pointer names {named}, not what the cluster runs"
    )
    ledger.mark_degraded(_degraded(event, release.environment, release.release_id, cause))
    _degraded_metric(release.environment, release.release_id)
    metrics.add_metric(name="RecordingsFailed", unit="Count", value=1)
    message = f"{cause}. {what_to_do(release.environment, release.release_id)}"
    _notify(settings, event.outcome, release.release_id, message, event.execution_arn)
    return RecordOutput(release_id=release.release_id, outcome=event.outcome, message=message[:30000])


def _record_operator_rollback_failed(event: RecordInput, settings: Settings) -> RecordOutput:
    target = event.rollback.release.release_id if event.rollback and event.rollback.release else None
    metrics.add_metric(name="RollbacksFailed", unit="Count", value=1)
    ledger = Ledger(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease))
    ledger.mark_degraded(_degraded(event, settings.environment, target, _describe(event.rollback_error)))
    _degraded_metric(settings.environment, target)
    message = (
        f"rollback of {settings.environment} to {target} FAILED ({_describe(event.rollback_error)}): operators must "
        f"act. {what_to_do(settings.environment, target)}"
    )
    _notify(settings, event.outcome, target, message, event.execution_arn)
    return RecordOutput(release_id=target, outcome=event.outcome, message=message)


def what_to_do(environment: str, target: str | None) -> str:
    """The runbook line of a failed rollback (the alarm's notification and the execution's cause carry it)."""
    release = f', "release_id": "{target}"' if target else ""
    return (
        f"{environment} is marked DEGRADED: automatic deploys are queued, not applied. Fix the cause, then either "
        f'start the rollback state machine with {{"environment": "{environment}"{release}}} or, if the cluster was '
        f'repaired by hand, acknowledge with {{"environment": "{environment}", "acknowledge": true}} (through the '
        "operator API: signed as you); the queued pushes are deployed after either."
    )


def _degraded(event: RecordInput, environment: str, release_id: str | None, cause: str) -> Degraded:
    return Degraded(
        environment=environment,  # type: ignore[arg-type]
        since=event.now,
        release_id=release_id,
        cause=cause[:2000],
        execution_arn=event.execution_arn,
    )


def _degraded_metric(environment: str, release_id: str | None) -> None:
    metrics.add_metric(name="EnvironmentsDegraded", unit="Count", value=1)
    logger.error("environment marked degraded", extra={"environment": environment, "release_id": release_id})


def _notify(settings: Settings, outcome: Outcome, release_id: str | None, message: str, execution_arn: str) -> None:
    notify_outcome(
        settings.require_topic(),
        subject=f"[{settings.environment}] release {release_id or '-'} {outcome.value}",
        outcome=outcome.value,
        environment=settings.environment,
        body={"release_id": release_id, "outcome": outcome.value, "message": message, "execution_arn": execution_arn},
        region=settings.region,
    )
