"""ScanImages: the ECR scan gate (the state machine waits and calls again while scans are in progress)."""

from __future__ import annotations

from datetime import timedelta

from controlplane.aws import lock, scan
from controlplane.errors import (
    ScanBlockedError,
    ScanFailedError,
)
from controlplane.models.base import at
from controlplane.models.scan import ScanReport, ScanRequest, ScanStatus
from controlplane.observability import logger, metrics
from controlplane.settings import get_settings


def check_image_scans(event: ScanRequest) -> ScanReport:
    """ScanImages: PASSED, IN_PROGRESS (the ASL waits and calls again), or ScanBlockedError naming the findings."""
    settings = get_settings()
    gates = settings.gates
    policy = gates.scan_policy
    now = at(event.now)
    # The scan wait renews the lease: a holder that lost it stops here (LockLostError).
    lock.renew(
        lock.LockTable(settings.ledger_table_name, region=settings.region), event.lease, now=now, ttl_s=gates.lock_ttl_s
    )
    deadline = event.deadline or now + timedelta(seconds=policy.timeout_s)
    scans = [scan.scan_image(image, policy, region=settings.region) for image in event.images]
    blocked = [s for s in scans if s.blocking]
    if blocked:
        metrics.add_metric(name="ScanBlocked", unit="Count", value=1)
        raise ScanBlockedError(
            f"findings at or above {policy.block_at.value} (not allowlisted): {scan.blocking_summary(blocked)}"
        )
    report = ScanReport(
        status=ScanStatus.PASSED if all(s.status == "COMPLETE" for s in scans) else ScanStatus.IN_PROGRESS,
        environment=event.environment,
        images=event.images,
        deadline=deadline,
        scans=scans,
    )
    if report.status is ScanStatus.IN_PROGRESS and now >= deadline:
        raise ScanFailedError(f"scans of {', '.join(report.waiting_for)} did not complete by {deadline.isoformat()}")
    logger.info("scan gate", extra={"status": report.status.value, "waiting_for": report.waiting_for})
    return report
