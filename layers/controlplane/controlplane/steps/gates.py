"""The deploy gates, one function per state of the deploy state machine.

Staging:    AcquireLock -> PlanRelease -> CheckFreeze -> ScanImages (Wait loop) -> StartStacks/AdvanceStacks (Wait
            loop) -> PromoteImages -> apply ... -> ReleaseLock
Production: AcquireLock -> PlanRelease -> CheckFreeze -> VerifyStagingHealth -> ScanImages -> RequestApproval
            (waitForTaskToken; the operator API answers it) -> VerifyApproval -> StartStacks/AdvanceStacks
            -> PromoteImages -> apply ... -> ReleaseLock
Every exit path releases the lock (Catch -> ReleaseLock); aborts and timeouts are released by
:func:`release_lock_after_execution` from the Step Functions "Execution Status Change" event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from controlplane import platform
from controlplane.aws import approval as approvals
from controlplane.aws import ecr, freeze, lock, promote, provision, scan, signing
from controlplane.aws.ledger import Ledger
from controlplane.errors import (
    ConfigurationError,
    FreezeWindowError,
    InputValidationError,
    PlanError,
    ScanBlockedError,
    ScanFailedError,
)
from controlplane.kube.apply import diff_objects
from controlplane.models.gates import (
    AcquireLockInput,
    AdvanceStacksInput,
    ApprovalNotice,
    ApprovalOutcome,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalTimeoutRequest,
    FreezeCheckRequest,
    FreezeDecision,
    LockOutcome,
    LockPurpose,
    LockRequest,
    LockResult,
    PromotionReport,
    PromotionRequest,
    ProvisionRequest,
    ProvisionState,
    Push,
    ReleaseLockInput,
    ReleaseLockResult,
    ScanReport,
    ScanRequest,
    ScanStatus,
    StagingHealth,
    StagingHealthInput,
    at,
    gate_settings,
    require_healthy_in_staging,
)
from controlplane.models.kube import ObjectDiff
from controlplane.models.release import ConsoleRequest, ReleaseStatus
from controlplane.observability import correlate, logger, metrics
from controlplane.render import load_bundle, render
from controlplane.settings import get_settings
from controlplane.steps.cluster import connect
from controlplane.steps.plan import parse_request, target_environment

DiffProvider = Callable[[ApprovalRequest], list[ObjectDiff]]


# ------------------------------------------------------------------------------------------------------------ lock
def pushes_of(raw: Any, *, started_at_ms: int, execution_arn: str) -> tuple[str, list[Push]]:
    """The environment and pushes an execution input asks for (ECR event: event time orders; console: start time).

    Everything PlanRelease would refuse about the input itself is refused here, before the lock is written: the
    grammar, another environment, an unsigned ``force``, an ECR event whose digest is not in ECR.
    """
    settings = get_settings()
    request = parse_request(raw)
    environment = target_environment(request, settings)
    if isinstance(request, ConsoleRequest):
        if environment != settings.environment:  # the same refusal as PlanRelease's, before anything is locked
            raise InputValidationError(
                f"environment: {environment!r} is not deployed by this control plane (it deploys "
                f"{settings.environment!r}); start the {environment} control plane's state machine instead"
            )
        signing.requester_of(
            raw,
            force=request.force,
            execution_arn=execution_arn,
            key_id=settings.decision_key_id,
            region=settings.region,
        )
        return environment, [Push(service=s, reference=r, sequence=started_at_ms) for s, r in request.services.items()]
    if environment != settings.environment:
        return environment, []  # another environment's push: skipped, whatever its repository
    try:
        service = platform.service_for_repository(request.detail.repository_name).name
    except KeyError as exc:
        raise PlanError(f"unknown repository: {exc.args[0]}") from None
    try:
        ecr.resolve_image(
            request.detail.repository_name,
            request.detail.image_digest,
            region=settings.region,
            registry_id=settings.account_id,
        )
    except PlanError as exc:
        raise InputValidationError(f"detail.image-digest: {exc}") from None
    sequence = int(request.time.timestamp() * 1000)
    return environment, [Push(service=service, reference=request.detail.image_digest, sequence=sequence)]


def acquire_lock(event: AcquireLockInput) -> LockResult:
    """AcquireLock: own the environment, or queue this execution's pushes behind the owner (QUEUED: end cleanly)."""
    correlate(execution_arn=event.execution_arn)
    settings, gates = get_settings(), gate_settings()
    owner = event.owner or event.execution_arn
    if event.purpose is LockPurpose.DEPLOY:
        environment, pushes = pushes_of(
            event.input, started_at_ms=int(event.started_at.timestamp() * 1000), execution_arn=event.execution_arn
        )
        if environment != settings.environment:
            return LockResult(outcome=LockOutcome.SKIPPED, environment=settings.environment, owner=owner)
    else:
        environment, pushes = event.environment or settings.environment, []
    request = LockRequest(environment=environment, owner=owner, purpose=event.purpose, pushes=pushes)
    table = lock.LockTable(settings.ledger_table_name, region=settings.region)
    result = lock.acquire(
        table,
        request,
        now=at(event.now),
        ttl_s=gates.lock_ttl_s,
        grace_s=gates.handoff_grace_s,
        status_of=lambda arn: lock.execution_status(arn, region=settings.region),
    )
    if result.cleared_orphan:
        logger.warning("cleared an orphaned lock", extra={"orphan": result.cleared_orphan})
        metrics.add_metric(name="OrphanLocksCleared", unit="Count", value=1)
    if result.outcome is LockOutcome.QUEUED:
        metrics.add_metric(name="PushesQueued", unit="Count", value=len(result.queued))
    logger.info("lock", extra={"outcome": result.outcome.value, "holder": result.holder, "queued": result.queued})
    return result


def release_lock(event: ReleaseLockInput) -> ReleaseLockResult:
    """ReleaseLock (every exit path): release, or hand over to a follow-up deploy of the queued pushes."""
    correlate(execution_arn=event.owner)
    settings, gates = get_settings(), gate_settings()
    table = lock.LockTable(settings.ledger_table_name, region=settings.region)
    released, follow_up = lock.release(
        table,
        environment=event.environment,
        owner=event.owner,
        now=at(event.now),
        ttl_s=gates.lock_ttl_s,
        state_machine_arn=gates.deploy_state_machine_arn,
        start=lambda f, machine: lock.start_follow_up(f, machine, region=settings.region),
    )
    logger.info(
        "lock released" if released else "lock was not held by this execution",
        extra={"outcome": event.outcome, "follow_up": follow_up.execution_name if follow_up else None},
    )
    return ReleaseLockResult(environment=event.environment, released=released, follow_up=follow_up)


def release_lock_after_execution(event: Mapping[str, Any]) -> ReleaseLockResult | None:
    """EventBridge "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED): release what it held."""
    detail = event.get("detail") or {}
    arn, status = str(detail.get("executionArn", "")), str(detail.get("status", ""))
    if not arn or status == "RUNNING":
        return None
    settings = get_settings()
    return release_lock(ReleaseLockInput(environment=settings.environment, owner=arn, outcome=status))


# ---------------------------------------------------------------------------------------------------------- freeze
def check_freeze(event: FreezeCheckRequest) -> FreezeDecision:
    """CheckFreeze: refuse inside a freeze window unless forced; a forced deploy records who forced it."""
    settings, gates = get_settings(), gate_settings()
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


# ------------------------------------------------------------------------------------------------------------ scan
def check_image_scans(event: ScanRequest) -> ScanReport:
    """ScanImages: PASSED, IN_PROGRESS (the ASL waits and calls again), or ScanBlockedError naming the findings."""
    settings, gates = get_settings(), gate_settings()
    policy = gates.scan_policy
    now = at(event.now)
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


# ------------------------------------------------------------------------------------------------------- provision
def _provisioner() -> provision.Provisioner:
    settings, gates = get_settings(), gate_settings()
    stacks_file = Path(gates.stacks_file)
    catalog = provision.load_catalog(stacks_file)
    return provision.Provisioner(
        catalog=catalog,
        templates_dir=stacks_file.parent / catalog.template_dir,
        project=gates.project_name,
        table_name=settings.ledger_table_name,
        inputs=gates.stack_inputs,
        artifacts_bucket=gates.artifacts_bucket,
        role_arn=gates.stack_role_arn,
        region=settings.region,
    )


def start_stacks(event: ProvisionRequest) -> ProvisionState:
    """StartStacks: the stacks to provision, in order, and the provisioning deadline; then the first advance."""
    provisioner = _provisioner()
    now = at(event.now)
    state = provisioner.start(event, now=now, timeout_s=gate_settings().provision_timeout_s)
    return provisioner.advance(state, now=now)


def advance_stacks(event: AdvanceStacksInput) -> ProvisionState:
    """AdvanceStacks: one non-blocking step; IN_PROGRESS means Wait and call again, COMPLETE means go on."""
    state = _provisioner().advance(event.provision, now=at(event.now))
    logger.info(
        "stacks", extra={"status": state.status.value, "stacks": {s.suffix: s.phase.value for s in state.stacks}}
    )
    return state


# --------------------------------------------------------------------------------------------------------- promote
def promote_images(event: PromotionRequest) -> PromotionReport:
    """PromoteImages: tag each digest ``<environment>-<release id>`` and, where tags may move, ``<environment>``.

    Idempotent. In an IMMUTABLE repository the moving ``<environment>`` tag cannot follow a second release, so only
    the release's own tag is written there (the ledger says which release an environment runs).

    The last gate before the first cluster write: the release's rollout deadline (DEPLOY_DEADLINE_SECONDS) counts
    from here, not from the execution's start (an approval may have taken hours).
    """
    settings = get_settings()
    results = [
        promote.tag_digest(image, tag, region=settings.region)
        for image in event.images
        for tag in event.tags(moving=promote.tags_move(image.repository, region=settings.region))
    ]
    now = at(event.now)
    return PromotionReport(
        environment=event.environment,
        release_id=event.release_id,
        results=results,
        rollout_started_at=now,
        rollout_deadline_at=now + timedelta(seconds=settings.deploy_deadline_seconds),
    )


def verify_staging_health(event: StagingHealthInput) -> StagingHealth:
    """VerifyStagingHealth (production): every digest must have been healthy in staging (its ledger says so)."""
    settings, gates = get_settings(), gate_settings()
    table = gates.staging_ledger_table_name or settings.ledger_table_name
    ledger = Ledger(table, region=settings.region)
    ids: list[str] = []
    if event.source_release_id:
        ids.append(event.source_release_id)
    lkg = ledger.last_known_good("staging")
    if lkg is not None and lkg.release_id not in ids:
        ids.append(lkg.release_id)
    healthy: dict[str, set[str]] = {}
    for release_id in ids:
        record = ledger.get_release(release_id)
        if record is None or record.status is not ReleaseStatus.SUCCEEDED or record.healthy_at is None:
            continue
        for service, digest in record.images.items():
            healthy.setdefault(service, set()).add(digest)
    require_healthy_in_staging(event.images, healthy)
    return StagingHealth(healthy=True, staging_release_ids=ids)


# -------------------------------------------------------------------------------------------------------- approval
def cluster_diff(event: ApprovalRequest) -> list[ObjectDiff]:
    """What applying the release would change: the rendered release against the cluster (server-side dry run)."""
    settings = get_settings()
    objects = render(
        load_bundle(settings.manifests_dir),
        event.environment,
        {i.service: i.digest for i in event.images},
        account_id=settings.account_id,
        region=settings.region,
    )
    api = connect(settings)
    try:
        return diff_objects(api, objects, release_id=event.release_id)
    finally:
        api.close()


def request_approval(event: ApprovalRequest, *, diff: DiffProvider) -> ApprovalNotice:
    """RequestApproval (``waitForTaskToken``): store the dry-run diff, record the pending approval, notify."""
    correlate(execution_arn=event.execution_arn, release_id=event.release_id, environment=event.environment)
    settings, gates = get_settings(), gate_settings()
    if not gates.approval_bucket:
        raise ConfigurationError("APPROVAL_BUCKET is not set")
    topic = gates.approval_topic_arn or settings.require_topic()
    now = at(event.now)
    changes = diff(event)
    changed = [d for d in changes if str(d.action) != "unchanged"]
    document = {
        "release_id": event.release_id,
        "environment": event.environment,
        "images": {i.service: i.digest for i in event.images},
        "objects": [d.model_dump(mode="json") for d in changes],
    }
    uri = approvals.store_diff(
        gates.approval_bucket,
        approvals.diff_key(event.environment, event.release_id),
        document,
        region=settings.region,
    )
    summary = "\n".join(
        [
            f"Release {event.release_id} to {event.environment} is waiting for approval.",
            f"Requested by: {event.requested_by or 'ECR push'}",
            "Images:",
            *(f"  {i.service}: {i.digest}" for i in event.images),
            f"Objects that change: {len(changed)} of {len(changes)}",
            *(f"  {d.action}: {d.ref.kind}/{d.ref.name}" for d in changed[:50]),
            f"Server-side dry-run diff: {uri}",
            f"Decide within {event.timeout_s // 3600} h through the operator API (OperatorApiUrl, SigV4-signed POST;",
            "an approver who did not request the release):",
            json.dumps({"action": "approve|reject", "release_id": event.release_id, "comment": "..."}),
        ]
    )
    ciphertext = signing.encrypt_token(
        settings.require("approval_token_key_id"),
        event.task_token,
        {"release_id": event.release_id, "execution_arn": event.execution_arn},
        region=settings.region,
    )
    approvals.Approvals(settings.ledger_table_name, region=settings.region).register(
        release_id=event.release_id,
        environment=event.environment,
        task_token_ciphertext=ciphertext,
        execution_arn=event.execution_arn,
        images={i.service: i.digest for i in event.images},
        bundle_hash=event.bundle_hash,
        requested_by=event.requested_by,
        diff_uri=uri,
        summary=summary,
        now=now,
    )
    message_id = approvals.publish_request(
        topic,
        subject=f"[{event.environment}] approve release {event.release_id}?",
        message=summary,
        region=settings.region,
    )
    return ApprovalNotice(release_id=event.release_id, diff_uri=uri, message_id=message_id)


def record_approval_timeout(event: ApprovalTimeoutRequest) -> ApprovalOutcome:
    """ApprovalTimedOut: mark the approval TIMED_OUT (a decision that won the race is kept and returned)."""
    settings = get_settings()
    table = approvals.Approvals(settings.ledger_table_name, region=settings.region)
    current = table.outcome(event.release_id)
    if current is None:
        return ApprovalOutcome(release_id=event.release_id, status=ApprovalStatus.TIMED_OUT)
    if current.status is ApprovalStatus.PENDING:
        now = at(event.now)
        table.settle(event.release_id, ApprovalStatus.TIMED_OUT, approver=None, comment="", now=now)
        return current.model_copy(update={"status": ApprovalStatus.TIMED_OUT, "decided_at": now})
    return current
