"""ResolveRollbackTarget: which release a rollback re-applies.

* Automatic (the deploy failed after its first cluster write): the environment's last known-good release, or, when
  the failed release *is* that release (a redeploy of it failed), the one before it. None on an environment's first
  release: there is nothing to go back to.
* Operator (``{environment, release_id?}``): the named release, which must have succeeded once; by default the
  release before the current last known-good one.
* Acknowledgement (``{environment, acknowledge: true}``): clears the environment's degraded mark; nothing re-applied.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controlplane.aws import lock, signing
from controlplane.aws.ledger import Ledger
from controlplane.errors import PlanError
from controlplane.models.release import (
    LastKnownGood,
    OperatorRollbackRequest,
    ReleaseRecord,
    ReleaseStatus,
    RollbackTarget,
    RollbackTargetInput,
)
from controlplane.observability import correlate, logger
from controlplane.settings import get_settings


def by(requester: str | None) -> str:
    """`` (by <principal>)`` for the recorded reason, or nothing when nobody authenticated asked."""
    return f" (by {requester})" if requester else ""


def resolve_rollback_target(event: RollbackTargetInput) -> RollbackTarget:
    environment = event.request.environment if event.request else event.automatic.environment  # type: ignore[union-attr]
    correlate(execution_arn=event.execution_arn, environment=environment)
    settings = get_settings()
    settings.require_environment(environment)
    # Fenced: the acknowledgement's write (the degraded mark's removal) is conditional on the lease.
    ledger = Ledger(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease))
    timing: dict[str, Any] = {
        "started_at": event.now,
        "deadline_at": event.now + timedelta(seconds=settings.deploy.deadline_seconds),
    }
    lkg = ledger.last_known_good(environment)
    current = lkg.release_id if lkg else None

    if event.automatic is not None:
        return _automatic_target(
            event.automatic.failed_release_id, environment=environment, ledger=ledger, lkg=lkg, timing=timing
        )
    request = event.request
    assert request is not None
    requester = signing.rollback_requester(request, execution_arn=event.execution_arn, settings=settings)
    if requester is None:  # the drift heal: the last known-good release, nothing else
        if lkg is None or request.release_id not in (None, lkg.release_id):
            raise PlanError(
                f"release_id: a drift heal re-applies only the last known-good release ({current}), "
                f"not {request.release_id}"
            )
        request = request.model_copy(update={"release_id": lkg.release_id})
    elif request.acknowledge:
        return _acknowledge(request, requester, environment=environment, ledger=ledger, lkg=lkg, timing=timing)
    record = _operator_target(request, environment=environment, ledger=ledger, lkg=lkg)
    correlate(release_id=record.release_id)
    return RollbackTarget(
        found=True,
        reason=f"{request.reason}{by(requester)}: {current} -> {record.release_id}",
        release=record.ref(),
        replaces_release_id=current,
        **timing,
    )


def _automatic_target(
    failed: str, *, environment: str, ledger: Ledger, lkg: LastKnownGood | None, timing: dict[str, Any]
) -> RollbackTarget:
    """After a failed deploy: the last known-good (or the one before it, when the failed release is it); nothing to
    do when the failed release never wrote to the cluster."""
    current = lkg.release_id if lkg else None
    failed_record = ledger.get_release(failed)
    if failed_record is not None and failed_record.cluster_untouched:
        reason = (
            f"release {failed} never wrote to the cluster: failed, nothing changed; {environment} still runs "
            f"{current or 'what it ran before'}"
        )
        logger.warning(reason)
        return RollbackTarget(found=False, nothing_written=True, reason=reason, replaces_release_id=failed, **timing)
    target_id = current if current != failed else (lkg.previous_release_id if lkg else None)
    if target_id is None:
        reason = f"{environment} has no last known-good release to roll back to"
        logger.warning(reason)
        return RollbackTarget(found=False, reason=reason, replaces_release_id=failed, **timing)
    record = ledger.require_release(target_id)
    reason = f"roll back failed release {failed} to last known-good {target_id}"
    return RollbackTarget(found=True, reason=reason, release=record.ref(), replaces_release_id=failed, **timing)


def _operator_target(
    request: OperatorRollbackRequest, *, environment: str, ledger: Ledger, lkg: LastKnownGood | None
) -> ReleaseRecord:
    """The release an operator asked for (``release_id``, healthy once), or the one before the last known-good."""
    current = lkg.release_id if lkg else None
    if request.release_id is not None:
        record = ledger.require_release(request.release_id)
        if record.environment != environment:
            raise PlanError(f"release {record.release_id} belongs to {record.environment}, not {environment}")
        if record.status is not ReleaseStatus.SUCCEEDED and record.release_id != current:
            raise PlanError(
                f"release {record.release_id} is {record.status.value}: only a release that was healthy can be "
                "rolled back to"
            )
        return record
    previous = lkg.previous_release_id if lkg else None
    if previous is None:
        raise PlanError(f"{environment} has no previous good release to roll back to; name release_id")
    return ledger.require_release(previous)


def _acknowledge(
    request: OperatorRollbackRequest,
    requester: str,
    *,
    environment: str,
    ledger: Ledger,
    lkg: LastKnownGood | None,
    timing: dict[str, Any],
) -> RollbackTarget:
    """Clear the degraded mark; nothing is re-applied (the cluster was repaired by hand)."""
    cleared = ledger.clear_degraded(environment)
    state = f" (degraded since {cleared.since.isoformat()}: {cleared.cause[:300]})" if cleared else " (not degraded)"
    who = requester
    reason = f"{who} acknowledged {environment}{state}: {request.reason}; nothing re-applied, queued pushes go on"
    logger.warning(reason)
    current = lkg.release_id if lkg else None
    return RollbackTarget(found=False, acknowledged=True, reason=reason, replaces_release_id=current, **timing)
