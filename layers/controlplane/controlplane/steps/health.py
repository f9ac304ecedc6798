"""CheckHealth: watch the release's workloads until the verdict is known, for a bounded budget per invocation.

One invocation lists the workloads, ReplicaSets and Pods, then watches them (:mod:`controlplane.kube.watch`) for up
to ``WATCH_BUDGET_SECONDS`` (90 s), never past the invocation's remaining time less :data:`LAMBDA_MARGIN_S` nor past
the release's deadline, and returns as soon as the release is healthy or fails; the state machine loops only when
the budget ends without a verdict (``wait_seconds`` 0). With a budget of 0 it is one look, and the state machine
waits :data:`POLL_INTERVAL_S` before the next. The bake period is watched the same way, up to the bake's end: a
regression (a workload no longer ready, a crash loop) fails it as soon as the API server reports it (with a budget
of 0, one look every :data:`BAKE_POLL_INTERVAL_S`).

Time comes from the state machine (``$$.State.EnteredTime`` as ``now``, the release's deadline computed from
``$$.Execution.StartTime``) and, while watching, from the API server's answers; never from this function's clock.
"""

from __future__ import annotations

from datetime import timedelta

from controlplane.aws import lock
from controlplane.aws.ledger import Ledger
from controlplane.cluster import connect
from controlplane.errors import AddonNotReadyError, DeadlineExceededError, PlatformNotReadyError, RolloutFailedError
from controlplane.kube.client import ApiClient
from controlplane.kube.health import Judge, check_workloads
from controlplane.kube.watch import regressed, settled, watch_workloads
from controlplane.models.kube import HealthReport, ObjectRef
from controlplane.models.release import HealthInput, HealthOutput
from controlplane.observability import correlate, logger, metrics, tracer
from controlplane.settings import Settings, get_settings

POLL_INTERVAL_S = 10
"""The state machine's wait between two looks when the health step does not watch (budget 0)."""
BAKE_POLL_INTERVAL_S = 30
"""The same during the bake period."""
LAMBDA_MARGIN_S = 20.0
"""Time an invocation keeps after its watch for the verdict, the lease and the answer (Lambda's timeout is 150 s)."""


@tracer.capture_method
def check_health(event: HealthInput, *, remaining_s: float | None = None) -> HealthOutput:
    """``healthy=True`` when every workload rolled out; raises when waiting cannot help or the deadline passed.

    ``remaining_s``: the invocation's remaining time (Lambda's context), which bounds the watch."""
    correlate(execution_arn=event.execution_arn, release_id=event.release_id)
    settings = get_settings()
    # The rollout wait renews the lease: a holder that lost it stops here (LockLostError).
    locks = lock.LockTable(settings.ledger_table_name, region=settings.region)
    lock.renew(locks, event.lease, now=event.now, ttl_s=settings.gates.lock_ttl_s)
    workloads = event.workloads or []
    if event.rollout is not None:  # the apply's workloads, by reference (a list that grows with the platform)
        workloads = Ledger(settings.ledger_table_name, region=settings.region).rollout(event.rollout).workloads
    budget = _budget(event, settings, remaining_s)
    api = connect(settings)
    try:
        report = _look(api, event, workloads, settings, budget)
    finally:
        api.close()
    now = max(event.now, report.checked_at)
    event = event.model_copy(update={"now": now})
    wait_s = 0 if budget > 0 else POLL_INTERVAL_S
    pending = [f"{w.ref}: {w.message}" for w in report.workloads if not w.done]
    if event.baking_since is not None:
        bake_s = settings.deploy.bake_for(event.lease.environment)
        return _bake(event, report, pending, bake_s, wait_s=0 if budget > 0 else BAKE_POLL_INTERVAL_S)
    if report.failed:
        raise _addons_failure(event, report) if event.subject == "addons" else _failure(event, report)
    if report.healthy:
        logger.info("add-ons are ready" if event.subject == "addons" else "release is healthy")
        return HealthOutput(release_id=event.release_id, healthy=True, checked_at=event.now, wait_seconds=wait_s)
    if event.now >= event.deadline_at and event.subject == "addons":
        raise AddonNotReadyError(
            f"release {event.release_id} waits for add-ons not ready by its deadline {event.deadline_at.isoformat()}"
            f" (the release itself was not applied, nothing quarantined): {'; '.join(pending[:10])}"
        )
    if event.now >= event.deadline_at:
        raise DeadlineExceededError(
            f"release {event.release_id} not healthy by its deadline {event.deadline_at.isoformat()}: "
            + "; ".join(pending[:10])
        )
    logger.info("release still rolling out", extra={"pending": pending})
    return HealthOutput(
        release_id=event.release_id, healthy=False, checked_at=event.now, pending=pending, wait_seconds=wait_s
    )


def _budget(event: HealthInput, settings: Settings, remaining_s: float | None) -> float:
    """Seconds to watch for a verdict: up to the deadline (for a bake, the bake period's end); 0 (one look) past it."""
    budget = float(settings.deploy.watch_budget_seconds)
    if remaining_s is not None:
        budget = min(budget, remaining_s - LAMBDA_MARGIN_S)
    end = event.deadline_at
    if event.baking_since is not None:
        end = event.baking_since + timedelta(seconds=settings.deploy.bake_for(event.lease.environment))
    budget = min(budget, (end - event.now).total_seconds())
    return max(0.0, budget)


def _look(
    api: ApiClient, event: HealthInput, workloads: list[ObjectRef], settings: Settings, budget: float
) -> HealthReport:
    deploy = settings.deploy
    judge = Judge(
        grace_seconds=deploy.failure_grace_seconds,
        restart_threshold=deploy.restart_threshold,
        readiness_seconds=deploy.readiness_deadline_seconds,
        definitive_grace_seconds=deploy.definitive_grace_seconds,
    )
    if budget <= 0:
        return check_workloads(api, workloads, now=event.now, judge=judge)
    until = event.now + timedelta(seconds=budget)
    decided = regressed if event.baking_since is not None else settled
    return watch_workloads(api, workloads, now=event.now, until=until, judge=judge, decided=decided)


def _bake(event: HealthInput, report: HealthReport, pending: list[str], bake_s: int, *, wait_s: int) -> HealthOutput:
    """The bake period watched (or looked at) so far: still healthy (``baked`` once the period is over), or the
    release regressed after it was declared healthy and fails like any rollout (rolled back; a failing pod is
    classified as in a rollout, a workload merely no longer ready is the images')."""
    assert event.baking_since is not None  # the caller checked
    if report.failed:
        raise _regression(event, report, bake_s)
    if not report.healthy:
        raise RolloutFailedError(
            f"release {event.release_id} regressed during its bake period (healthy since "
            f"{event.baking_since.isoformat()}, {bake_s} s to go through): " + "; ".join(pending[:10])
        )
    until = event.baking_since + timedelta(seconds=bake_s)
    baked = event.now >= until
    logger.info("release baking", extra={"bake_until": until.isoformat(), "baked": baked})
    return HealthOutput(
        release_id=event.release_id,
        healthy=True,
        checked_at=event.now,
        baked=baked,
        bake_until=until,
        wait_seconds=wait_s,
    )


def _regression(event: HealthInput, report: HealthReport, bake_s: int) -> RolloutFailedError | PlatformNotReadyError:
    """A baking release whose pods or workloads failed: the failure as a rollout's (the image's problems quarantine
    its digests, the platform's do not), named as a regression during the bake."""
    assert event.baking_since is not None  # the caller checked
    failure = _failure(event, report)
    return type(failure)(
        f"release {event.release_id} regressed during its bake period (healthy since "
        f"{event.baking_since.isoformat()}, {bake_s} s to go through): {failure}"
    )


def _failure(event: HealthInput, report: HealthReport) -> RolloutFailedError | PlatformNotReadyError:
    """The error naming every problem: :class:`RolloutFailedError` when any is on the images (their digests are
    quarantined), :class:`PlatformNotReadyError` when all are on the platform (missing objects, no capacity)."""
    image: list[str] = []
    platform: list[str] = []
    for f in report.failures:
        where = f"{f.namespace}/{f.pod}{'/' + f.container if f.container else ''}"
        (image if f.blame == "image" else platform).append(f"{where}: {f.reason}: {f.message}")
    for w in report.workloads:
        if w.failed:  # a missing workload object is the platform's; a progress deadline means probes never pass
            (platform if w.reason == "NotFound" else image).append(f"{w.ref}: {w.reason}: {w.message}")
    detected = (event.now - event.started_at).total_seconds()
    metrics.add_metric(name="TimeToDetectFailure", unit="Seconds", value=detected)
    logger.warning("release is failing", extra={"image_problems": image, "platform_problems": platform})
    if image:
        return RolloutFailedError(
            f"release {event.release_id} will not become healthy: " + "; ".join([*image, *platform][:10])
        )
    return PlatformNotReadyError(
        f"release {event.release_id} will not become healthy for reasons of the platform (not its images; nothing "
        "quarantined): " + "; ".join(platform[:10])
    )


def _addons_failure(event: HealthInput, report: HealthReport) -> AddonNotReadyError:
    """An add-on that will not become ready, whoever's fault: the platform's (the release's images never ran)."""
    problems = [
        f"{f.namespace}/{f.pod}{'/' + f.container if f.container else ''}: {f.reason}: {f.message}"
        for f in report.failures
    ]
    problems += [f"{w.ref}: {w.reason}: {w.message}" for w in report.workloads if w.failed]
    logger.warning("add-ons are failing", extra={"problems": problems})
    return AddonNotReadyError(
        f"release {event.release_id} waits for add-ons that will not become ready (the release itself was not "
        "applied, nothing quarantined): " + "; ".join(problems[:10])
    )
