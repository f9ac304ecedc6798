"""CheckFreeze: refuse inside a freeze window unless forced by someone who takes responsibility."""

from __future__ import annotations

from controlplane.aws import freeze
from controlplane.errors import (
    FreezeWindowError,
)
from controlplane.models.base import at
from controlplane.models.freeze import FreezeCheckRequest, FreezeDecision
from controlplane.observability import logger, metrics
from controlplane.settings import get_settings


def check_freeze(event: FreezeCheckRequest) -> FreezeDecision:
    """CheckFreeze: refuse inside a freeze window unless forced; a forced deploy records who forced it."""
    settings = get_settings()
    gates = settings.gates
    now = at(event.now)
    window = gates.freeze_calendar.active(event.environment, now)
    if window is None:
        return FreezeDecision(environment=event.environment, release_id=event.release_id, frozen=False)
    if not event.forced_by_someone:
        raise FreezeWindowError(
            f"{event.environment} is frozen ({window.reason}); to override, deploy from the console with "
            '"force": true through the operator API (the authenticated caller takes responsibility)'
        )
    decision = FreezeDecision(
        environment=event.environment,
        release_id=event.release_id,
        frozen=True,
        forced=True,
        forced_by=event.forced_by,
        window_reason=window.reason,
    )
    freeze.record_override(
        settings.ledger_table_name,
        decision,
        execution_arn=event.execution_arn,
        reason=event.force_reason,
        now=now,
        region=settings.region,
    )
    logger.warning("freeze window forced", extra={"forced_by": event.forced_by, "window": window.reason})
    metrics.add_metric(name="FreezeOverrides", unit="Count", value=1)
    return decision
