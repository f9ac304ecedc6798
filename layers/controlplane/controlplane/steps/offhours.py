"""Off-hours scaling, one function per state of ``statemachines/offhours.asl.json``.

Scale down:  Begin -> AcquireLock (the deploy's lock, purpose ``scale``; Wait loop while a deploy holds it, until
             a deadline) -> RecordRequest -> SnapshotEnvironment -> SleepWorkloads -> SleepNodegroups -> ReleaseLock
Scale up:    Begin -> AcquireLock -> RecordRequest -> WakeNodegroups -> CheckNodes (Wait loop, deadline) ->
             RestoreWave -> CheckWave (Wait loop, deadline per wave; next wave) -> FinishWake -> ReleaseLock
Stay awake:  Begin -> AcquireLock -> RecordRequest (the override) -> ReleaseLock.
Begin writes nothing; every write comes after AcquireLock, behind the lease, and every exit after AcquireLock goes
through ReleaseLock.

Time comes from the state machine (``$$.State.EnteredTime`` as ``now``). The snapshot lives in the ledger, so the
states pass only references; every step re-reads it and is safe to run twice.

A deploy while the environment sleeps (``steps.apply``) applies ``kube.offhours.keep_asleep_objects``: workloads keep
their sleeping size and the snapshot now refers to the new release, so the next scale-up brings the new release up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from controlplane.aws import lock, signing
from controlplane.aws import nodegroups as eks_nodegroups
from controlplane.aws.ledger import Ledger
from controlplane.aws.notify import notify_outcome
from controlplane.aws.offhours import OffhoursLedger
from controlplane.cluster import connect
from controlplane.errors import (
    InputValidationError,
    KubernetesNotFoundError,
    OperatorNotAuthorizedError,
)
from controlplane.kube import offhours as kube_offhours
from controlplane.kube.client import ApiClient
from controlplane.kube.health import Judge, check_workloads
from controlplane.kube.offhours import SLEEP_REASON
from controlplane.models.kube import ObjectRef, RolloutStatus
from controlplane.models.lock import LockPurpose, LockRequest, LockStepInput, ReleaseLockResult, WaitedLock
from controlplane.models.offhours import (
    Exclusion,
    NodegroupProgress,
    NodegroupSnapshot,
    NodesState,
    OffhoursBegun,
    Savings,
    SleepPlan,
    SleepReport,
    SleepStatus,
    Snapshot,
    StayAwake,
    StepContext,
    WakeState,
    WakeSummary,
    WorkloadOutcome,
    savings,
    wake_waves,
)
from controlplane.models.offhours_config import OffhoursConfig
from controlplane.models.operator import OperatorAction
from controlplane.models.release import Environment
from controlplane.observability import correlate, logger, metrics
from controlplane.settings import Settings, get_settings


def _ledger(settings: Settings) -> OffhoursLedger:
    return OffhoursLedger(settings.ledger_table_name, region=settings.region)


def _holding(ctx: StepContext, settings: Settings) -> OffhoursLedger:
    """Every step after AcquireLock: the lease renewed (``LockLostError`` when another execution holds the lock now:
    nothing is written, to the ledger, the cluster or the node groups) and the ledger fenced by it."""
    if ctx.lease is None:
        raise InputValidationError("lease: required after AcquireLock (every off-hours write is fenced by the lock)")
    locks = lock.LockTable(settings.ledger_table_name, region=settings.region)
    lock.renew(locks, ctx.lease, now=ctx.now, ttl_s=settings.gates.lock_ttl_s)
    return OffhoursLedger(settings.ledger_table_name, region=settings.region, fence=lock.fence(ctx.lease))


def _check_environment(ctx: StepContext, settings: Settings) -> None:
    correlate(execution_arn=ctx.execution_arn, environment=ctx.request.environment)
    settings.require_environment(ctx.request.environment)


def _note(snapshot: Snapshot, *, wakes_to: Mapping[str, Any]) -> dict[str, Any]:
    """The asleep mark: what the object wakes to, since when and by whom (the snapshot's, so a re-run writes
    nothing new)."""
    return {**wakes_to, "since": snapshot.taken_at.isoformat(), "by": snapshot.execution_arn, "why": SLEEP_REASON}


T = TypeVar("T")


def _with_api(settings: Settings, work: Callable[[ApiClient], T]) -> T:
    """Run ``work`` with an API client for the settings' cluster, closed afterwards."""
    api = connect(settings)
    try:
        return work(api)
    finally:
        api.close()


# ----------------------------------------------------------------------------------------------------------- begin
def offhours_requester(ctx: StepContext, settings: Settings) -> str | None:
    """Who asked: the operator API's verified signature (a person), or ``None`` for this environment's schedule.

    A person's off-hours action (``trigger: console``) is honoured only from the operator API, in every environment;
    a signature that does not verify is refused. An unsigned request is a schedule's, honoured only where this
    environment's schedules run (``OFFHOURS_SCHEDULED``): otherwise it is somebody starting the state machine by hand.
    """
    raw = ctx.request.model_dump(mode="json", exclude_unset=True)
    signature = signing.operator_of(
        raw, execution_arn=ctx.execution_arn, key_id=settings.decision_key_id, region=settings.region
    )
    if signature is not None:
        if signature.action is not OperatorAction.OFFHOURS:
            raise OperatorNotAuthorizedError(f"operator: signed for {signature.action.value}, not for offhours")
        return signature.principal
    how = (
        'use the operator API ({"action": "offhours", "environment": ..., "mode": ...}) or the CLI '
        "(trialstudio sleep|wake|stay-awake), which sign the request as you"
    )
    if ctx.request.trigger == "console":
        raise OperatorNotAuthorizedError(
            f"operator: an off-hours action by hand needs an authenticated operator; {how}"
        )
    if not settings.offhours.scheduled:
        raise OperatorNotAuthorizedError(
            f"trigger: {settings.environment} runs no off-hours schedule (OffHoursSchedules), so an unsigned "
            f"'schedule' request did not come from one; {how}"
        )
    return None


def begin(ctx: StepContext) -> OffhoursBegun:
    """Begin: read and authenticate the request; nothing is written here. Every write (the override, the audit
    entry) comes after AcquireLock, behind the lease (:func:`record_request`): a request refused here, or one that
    gives up waiting for the lock, leaves nothing behind."""
    settings = get_settings()
    _check_environment(ctx, settings)
    offhours_requester(ctx, settings)
    return OffhoursBegun(request=ctx.request)


def record_request(ctx: StepContext) -> SleepPlan:
    """RecordRequest (holding the lock): record the request behind the lease; a stay-awake override is stored here;
    a scheduled scale-down yields to an active one (read under the lock, so no override slips in between).

    ``sleep`` says whether the state machine goes on to scale (for ``up`` it is always ``True``)."""
    settings = get_settings()
    _check_environment(ctx, settings)
    ledger = _holding(ctx, settings)
    request = ctx.request
    environment = request.environment
    requested_by = offhours_requester(ctx, settings)
    if request.action == "stay-awake":
        if request.until is None:  # the model checks; this tells the type checker
            raise InputValidationError("stay-awake needs until")
        override = StayAwake(
            environment=environment,
            until=request.until,
            requested_by=requested_by or "schedule",
            reason=request.reason,
            requested_at=ctx.now,
        )
        ledger.put_stay_awake(override)
        ledger.record_event(
            environment,
            at=ctx.now,
            execution_arn=ctx.execution_arn,
            action=request.action,
            outcome="RECORDED",
            detail=override.model_dump(mode="json"),
        )
        logger.info("stay-awake override recorded", extra={"until": override.until.isoformat()})
        return SleepPlan(environment=environment, sleep=False, reason=f"stays awake until {override.until}")
    if request.action == "down" and request.trigger == "schedule":
        active = ledger.stay_awake(environment)
        if active is not None and active.active(ctx.now):
            reason = f"stay-awake override by {active.requested_by} until {active.until.isoformat()}" + (
                f" ({active.reason})" if active.reason else ""
            )
            ledger.record_event(
                environment,
                at=ctx.now,
                execution_arn=ctx.execution_arn,
                action=request.action,
                outcome="SKIPPED",
                detail={"reason": reason, "trigger": request.trigger},
            )
            logger.info("scheduled scale-down skipped", extra={"reason": reason})
            metrics.add_metric(name="ScaleDownsSkipped", unit="Count", value=1)
            return SleepPlan(environment=environment, sleep=False, reason=reason)
    ledger.record_event(
        environment,
        at=ctx.now,
        execution_arn=ctx.execution_arn,
        action=request.action,
        outcome="STARTED",
        detail={"trigger": request.trigger, "requested_by": requested_by, "reason": request.reason},
    )
    return SleepPlan(environment=environment, sleep=True, reason=f"{request.trigger} {request.action}")


# ------------------------------------------------------------------------------------------------------------ lock
def acquire_lock(event: LockStepInput) -> WaitedLock:
    """AcquireLock: the environment's deploy lock (purpose ``scale``). Held by a deploy or rollback: the ASL waits
    and asks again, until ``lock_wait_s`` after the execution started; then :class:`LockHeldError`.

    A deploy push arriving while we hold the lock is queued behind us (the lock's own rules); ReleaseLock hands it
    to a follow-up deploy.
    """
    correlate(execution_arn=event.execution_arn, environment=event.environment)
    settings = get_settings()
    gate = settings.gates
    return lock.take_or_wait(
        LockRequest(environment=event.environment, owner=event.execution_arn, purpose=LockPurpose.SCALE),
        started_at=event.started_at,
        wait_s=settings.offhours.rules.lock_wait_s,
        table_name=settings.ledger_table_name,
        region=settings.region,
        now=event.now,
        ttl_s=gate.lock_ttl_s,
        grace_s=gate.handoff_grace_s,
        who="off-hours scaling",
    )


def release_lock(event: LockStepInput) -> ReleaseLockResult:
    """ReleaseLock (every exit path after AcquireLock). Deploy pushes queued meanwhile start a follow-up on the
    *deploy* state machine (``deploy_state_machine_arn``), never on this one."""
    correlate(execution_arn=event.execution_arn, environment=event.environment)
    return lock.give_back_to_deploys(event, get_settings())


# ------------------------------------------------------------------------------------------------------ scale down
def take_snapshot(
    api: ApiClient, settings: Settings, config: OffhoursConfig, ctx: StepContext, *, release_id: str | None
) -> Snapshot:
    """Everything sleeping will change, as it is now (nothing is changed here)."""
    found = kube_offhours.inventory(api, config.namespaces, excluded=config.object_excluded)
    workloads, hpas = kube_offhours.snapshot_entries(found, sleep_replicas=config.sleep_replicas, release_id=release_id)
    groups: list[NodegroupSnapshot] = []
    excluded = list(found.excluded)
    for group in eks_nodegroups.list_nodegroups(settings.cluster_name, region=settings.region):
        size = config.nodegroup_sleep_size(group.name)
        if size is None:
            excluded.append(Exclusion(key=f"Nodegroup/{group.name}", reason="configuration (no rule or excluded)"))
            continue
        groups.append(
            NodegroupSnapshot(
                name=group.name,
                min_size=group.min_size,
                max_size=group.max_size,
                desired_size=group.desired_size,
                sleep_desired=min(size, group.desired_size),
                instance_types=group.instance_types,
                capacity_type=group.capacity_type,
            )
        )
    return Snapshot(
        environment=ctx.request.environment,
        taken_at=ctx.now,
        execution_arn=ctx.execution_arn,
        workloads=tuple(workloads),
        hpas=tuple(hpas),
        nodegroups=tuple(groups),
        excluded=tuple(excluded),
        release_id=release_id,
    )


def snapshot_environment(ctx: StepContext) -> SleepPlan:
    """SnapshotEnvironment: store the snapshot in the ledger, unless the environment already sleeps (reuse it)."""
    settings = get_settings()
    config = settings.offhours.rules
    _check_environment(ctx, settings)
    ledger = _holding(ctx, settings)
    existing = ledger.read(ctx.request.environment)
    if existing is not None and existing.asleep:
        record, created = existing, False
    else:
        lkg = Ledger(settings.ledger_table_name, region=settings.region).last_known_good(ctx.request.environment)
        snapshot = _with_api(
            settings,
            lambda api: take_snapshot(api, settings, config, ctx, release_id=lkg.release_id if lkg else None),
        )
        record, created = ledger.begin_sleep(snapshot, now=ctx.now)
    snap = record.snapshot
    assert snap is not None  # an asleep record always has one
    logger.info(
        "off-hours snapshot" if created else "environment already asleep: snapshot reused",
        extra={"workloads": len(snap.workloads), "hpas": len(snap.hpas), "nodegroups": len(snap.nodegroups)},
    )
    return SleepPlan(
        environment=ctx.request.environment,
        sleep=True,
        reason="snapshot taken" if created else "already asleep; the first snapshot is kept",
        reused_snapshot=not created,
        workloads=len(snap.workloads),
        hpas=len(snap.hpas),
        nodegroups=len(snap.nodegroups),
        excluded=tuple(e.key for e in snap.excluded),
    )


def _asleep_snapshot(settings: Settings, environment: str) -> Snapshot | None:
    """The snapshot the environment sleeps on; ``None`` when it is awake (or was never put to sleep)."""
    record = _ledger(settings).read(environment)
    if record is None or not record.asleep:
        return None
    return record.snapshot


def sleep_workloads_with(api: ApiClient, snapshot: Snapshot) -> SleepReport:
    """HPAs pinned (or marked), workloads marked and scaled to their sleeping size; the snapshot is not touched."""
    changed: list[str] = []
    unchanged: list[str] = []
    missing: list[str] = []

    def track(key: str, action: Any) -> None:
        try:
            (changed if action() else unchanged).append(key)
        except KubernetesNotFoundError:
            missing.append(key)

    for h in snapshot.hpas:
        note = _note(snapshot, wakes_to={"minReplicas": h.min_replicas, "maxReplicas": h.max_replicas})
        if h.pinned:  # pin first, so the HPA does not scale the workload back up
            assert h.sleep_max is not None  # pinned means both are set
            track(
                h.ref.key,
                lambda h=h, note=note: kube_offhours.set_hpa_bounds(
                    api, h.ref, min_replicas=h.sleep_min, max_replicas=h.sleep_max, note=note
                ),
            )
    for w in snapshot.workloads:
        note = _note(snapshot, wakes_to={"replicas": w.replicas})
        track(w.ref.key, lambda w=w, note=note: kube_offhours.scale_workload(api, w.ref, w.sleep_replicas, note=note))
    for h in snapshot.hpas:
        if not h.pinned:  # its target is at 0 now: the HPA is inactive (ScalingDisabled); say why on it
            note = _note(snapshot, wakes_to={"minReplicas": h.min_replicas, "maxReplicas": h.max_replicas})
            track(
                h.ref.key,
                lambda h=h, note=note: kube_offhours.set_hpa_bounds(
                    api, h.ref, min_replicas=h.min_replicas, max_replicas=h.max_replicas, note=note
                ),
            )
    return SleepReport(
        environment=snapshot.environment,
        changed=tuple(dict.fromkeys(changed)),
        unchanged=tuple(k for k in dict.fromkeys(unchanged) if k not in changed),
        missing=tuple(missing),
    )


def sleep_workloads(ctx: StepContext) -> SleepReport:
    """SleepWorkloads: every snapshot workload to its off-hours size, HPAs pinned or marked."""
    settings = get_settings()
    _check_environment(ctx, settings)
    _holding(ctx, settings)
    snapshot = _asleep_snapshot(settings, ctx.request.environment)
    if snapshot is None:
        return SleepReport(environment=ctx.request.environment)
    report: SleepReport = _with_api(settings, lambda api: sleep_workloads_with(api, snapshot))
    logger.info("workloads asleep", extra={"changed": len(report.changed), "missing": report.missing})
    return report


def sleep_nodegroups(ctx: StepContext) -> SleepReport:
    """SleepNodegroups: each snapshot group to its off-hours size (``minSize`` lowered with it, ``maxSize`` kept)."""
    settings = get_settings()
    _check_environment(ctx, settings)
    ledger = _holding(ctx, settings)
    snapshot = _asleep_snapshot(settings, ctx.request.environment)
    if snapshot is None:
        return SleepReport(environment=ctx.request.environment)
    changed: list[str] = []
    unchanged: list[str] = []
    for g in snapshot.nodegroups:
        resized = eks_nodegroups.resize(
            settings.cluster_name,
            g.name,
            min_size=g.sleep_min,
            max_size=g.max_size,
            desired=g.sleep_desired,
            region=settings.region,
        )
        (changed if resized else unchanged).append(f"Nodegroup/{g.name}")
    ledger.record_event(
        snapshot.environment,
        at=ctx.now,
        execution_arn=ctx.execution_arn,
        action="down",
        outcome="ASLEEP",
        detail={
            "workloads": {w.ref.key: f"{w.replicas}->{w.sleep_replicas}" for w in snapshot.workloads},
            "nodegroups": {g.name: f"{g.desired_size}->{g.sleep_desired}" for g in snapshot.nodegroups},
            "excluded": [e.key for e in snapshot.excluded],
        },
    )
    logger.info("node groups asleep", extra={"changed": changed})
    metrics.add_metric(name="EnvironmentsAsleep", unit="Count", value=1)
    return SleepReport(environment=snapshot.environment, changed=tuple(changed), unchanged=tuple(unchanged))


# -------------------------------------------------------------------------------------------------------- scale up
def _node_progress(api: ApiClient, snapshot: Snapshot) -> tuple[NodegroupProgress, ...]:
    ready = kube_offhours.ready_nodes(api)
    return tuple(
        NodegroupProgress(name=g.name, wanted=g.desired_size, ready=ready.get(g.name, 0)) for g in snapshot.nodegroups
    )


def wake_nodegroups(ctx: StepContext) -> NodesState:
    """WakeNodegroups: the state becomes WAKING; each group back to its snapshot scaling config exactly.

    No cluster access here (the function holds the node-group write permission, not the cluster identity):
    counting Ready nodes is CheckNodes' job, which the state machine runs next.
    """
    settings = get_settings()
    config = settings.offhours.rules
    _check_environment(ctx, settings)
    environment = ctx.request.environment
    deadline = ctx.now + timedelta(seconds=config.nodes_timeout_s)
    ledger = _holding(ctx, settings)
    record = ledger.set_status(environment, SleepStatus.WAKING, expected=(SleepStatus.ASLEEP,), now=ctx.now)
    if record is None or record.snapshot is None:
        logger.info("nothing to wake: the environment is awake")
        return NodesState(environment=environment, deadline=deadline, ready=True, nothing_to_wake=True)
    for g in record.snapshot.nodegroups:
        eks_nodegroups.resize(
            settings.cluster_name,
            g.name,
            min_size=g.min_size,
            max_size=g.max_size,
            desired=g.desired_size,
            region=settings.region,
        )
    groups = tuple(NodegroupProgress(name=g.name, wanted=g.desired_size, ready=0) for g in record.snapshot.nodegroups)
    return NodesState(environment=environment, deadline=deadline, groups=groups, ready=not groups)


def check_nodes(ctx: StepContext, state: NodesState) -> NodesState:
    """CheckNodes: one look at the Ready nodes per group; ``timed_out`` once the deadline passed (go on anyway:
    the workloads' health gate then reports what cannot run)."""
    settings = get_settings()
    _check_environment(ctx, settings)
    _holding(ctx, settings)  # the lease outlasts the wait for nodes
    snapshot = _asleep_snapshot(settings, state.environment)
    if snapshot is None:
        return state.model_copy(update={"ready": True, "nothing_to_wake": True})
    groups = _with_api(settings, lambda api: _node_progress(api, snapshot))
    ready = all(g.ready >= g.wanted for g in groups)
    timed_out = not ready and ctx.now >= state.deadline
    if timed_out:
        logger.warning("nodes not ready by the deadline", extra={"groups": [g.model_dump() for g in groups]})
    return state.model_copy(update={"groups": groups, "ready": ready, "timed_out": timed_out})


def _start_waking(
    environment: Environment, snapshot: Snapshot, nodes: NodesState | None, config: OffhoursConfig
) -> WakeState:
    """The scale-up's waves, with a note when the nodes were not ready by their deadline."""
    note = None
    if nodes is not None and nodes.timed_out:
        note = "nodes not ready by the deadline: " + ", ".join(f"{g.name} {g.ready}/{g.wanted}" for g in nodes.groups)
    waves = wake_waves(snapshot.workloads, config)
    return WakeState(environment=environment, waves=tuple(tuple(w) for w in waves), nodes_note=note)


def _restore(api: ApiClient, wave: Sequence[ObjectRef], snapshot: Snapshot) -> list[str]:
    """Each workload of ``wave`` back to its snapshot replicas and its HPAs' bounds; the keys no longer there."""
    missing = []
    for ref in wave:
        w = snapshot.workload(ref)
        if w is None:
            continue
        try:
            kube_offhours.scale_workload(api, ref, w.replicas, note=None)
        except KubernetesNotFoundError:
            missing.append(ref.key)
            continue
        for h in snapshot.hpas_for(ref):
            try:
                kube_offhours.set_hpa_bounds(
                    api, h.ref, min_replicas=h.min_replicas, max_replicas=h.max_replicas, note=None
                )
            except KubernetesNotFoundError:
                missing.append(h.ref.key)
    return missing


def restore_wave(ctx: StepContext, state: WakeState | None, nodes: NodesState | None = None) -> WakeState:
    """RestoreWave: the current wave's workloads back to their snapshot replicas, their HPAs' bounds exactly."""
    settings = get_settings()
    config = settings.offhours.rules
    _check_environment(ctx, settings)
    _holding(ctx, settings)
    environment = ctx.request.environment
    snapshot = _asleep_snapshot(settings, environment)
    if snapshot is None:
        return WakeState(environment=environment, done=True)
    if state is None or not state.waves:
        state = _start_waking(environment, snapshot, nodes, config)
    if state.wave >= len(state.waves):
        return state.model_copy(update={"done": True})
    wave = state.current
    missing: list[str] = _with_api(settings, lambda api: _restore(api, wave, snapshot))
    outcomes = list(state.outcomes)
    for ref in wave:
        if ref.key in missing:
            w = snapshot.workload(ref)
            outcomes.append(
                WorkloadOutcome(ref=ref, awake=False, replicas=w.replicas if w else 0, cause="deleted while asleep")
            )
    logger.info("restoring wave", extra={"wave": state.wave, "workloads": [r.key for r in wave]})
    return state.model_copy(
        update={
            "wave_deadline": ctx.now + timedelta(seconds=config.wave_timeout_s),
            "outcomes": tuple(outcomes),
            "pending": tuple(r.key for r in wave if r.key not in missing),
        }
    )


def _judge(
    ref: ObjectRef,
    replicas: int,
    *,
    failures: list[str] | None,
    status: RolloutStatus | None,
    late: bool,
    state: WakeState,
) -> WorkloadOutcome | None:
    """One workload's outcome from one health look; ``None`` while it may still come up."""
    if failures:
        return WorkloadOutcome(ref=ref, awake=False, replicas=replicas, cause="; ".join(failures[:3]))
    if status is not None and status.failed:
        return WorkloadOutcome(ref=ref, awake=False, replicas=replicas, cause=f"{status.reason}: {status.message}")
    if status is not None and status.done:
        return WorkloadOutcome(ref=ref, awake=True, replicas=replicas)
    if late:
        message = status.message if status else "no status"
        cause = f"not healthy by {state.wave_deadline.isoformat() if state.wave_deadline else ''}: {message}"
        return WorkloadOutcome(ref=ref, awake=False, replicas=replicas, cause=cause)
    return None


def judge_wave(api: ApiClient, state: WakeState, snapshot: Snapshot, *, now: datetime, settings: Settings) -> WakeState:
    """One health look at the wave's workloads with the deploy's rollout rules; advance when none is pending."""
    decided = {o.ref.key for o in state.outcomes}
    refs = [r for r in state.current if r.key not in decided]
    outcomes = list(state.outcomes)
    pending: list[str] = []
    if refs:
        judge = Judge(
            grace_seconds=settings.deploy.failure_grace_seconds, restart_threshold=settings.deploy.restart_threshold
        )
        report = check_workloads(api, refs, now=now, judge=judge)
        failures: dict[str, list[str]] = {}
        for f in report.failures:
            if f.workload is not None:
                failures.setdefault(f.workload.key, []).append(f"{f.pod}: {f.reason}: {f.message}")
        statuses = {s.ref.key: s for s in report.workloads if s.ref is not None}
        late = state.wave_deadline is not None and now >= state.wave_deadline
        for ref in refs:
            w = snapshot.workload(ref)
            outcome = _judge(
                ref,
                w.replicas if w else 0,
                failures=failures.get(ref.key),
                status=statuses.get(ref.key),
                late=late,
                state=state,
            )
            if outcome is None:
                pending.append(ref.key)
            else:
                outcomes.append(outcome)
    if pending:
        return state.model_copy(update={"outcomes": tuple(outcomes), "pending": tuple(pending)})
    next_wave = state.wave + 1
    return state.model_copy(
        update={
            "outcomes": tuple(outcomes),
            "pending": (),
            "wave": next_wave,
            "wave_deadline": None,
            "done": next_wave >= len(state.waves),
        }
    )


def check_wave(ctx: StepContext, state: WakeState) -> WakeState:
    """CheckWave: healthy, failed (reported; the others go on) or pending (the ASL waits and looks again)."""
    settings = get_settings()
    _check_environment(ctx, settings)
    _holding(ctx, settings)
    snapshot = _asleep_snapshot(settings, state.environment)
    if snapshot is None or state.done:
        return state.model_copy(update={"done": True})
    new_state: WakeState = _with_api(
        settings, lambda api: judge_wave(api, state, snapshot, now=ctx.now, settings=settings)
    )
    for o in new_state.outcomes[len(state.outcomes) :]:
        if not o.awake:
            logger.warning("workload did not come back", extra={"workload": o.ref.key, "cause": o.cause})
            metrics.add_metric(name="WorkloadsNotRestored", unit="Count", value=1)
    return new_state


def _wake_summary(state: WakeState, snapshot: Snapshot, night: Savings) -> WakeSummary:
    """What is awake, what is not and why, in one message a person reads."""
    environment = state.environment
    awake = tuple(o.ref.key for o in state.outcomes if o.awake)
    not_awake = tuple(o for o in state.outcomes if not o.awake)
    message = f"{environment}: {len(awake)} of {len(snapshot.workloads)} workloads awake"
    if not_awake:
        message += "; not awake: " + "; ".join(f"{o.ref.key} ({o.cause})" for o in not_awake)
    if state.nodes_note:
        message += f"; {state.nodes_note}"
    return WakeSummary(
        environment=environment,
        awake=awake,
        not_awake=not_awake,
        all_awake=not not_awake,
        nodegroups=tuple(f"{g.name}={g.desired_size}" for g in snapshot.nodegroups),
        savings=night,
        message=message,
    )


def finish_wake(ctx: StepContext, state: WakeState) -> WakeSummary:
    """FinishWake: the environment is AWAKE; summary, savings of the night (metric and log line), notification."""
    settings = get_settings()
    config = settings.offhours.rules
    _check_environment(ctx, settings)
    ledger = _holding(ctx, settings)
    environment = state.environment
    record = ledger.read(environment)
    if record is None or not record.asleep or record.snapshot is None:
        return WakeSummary(environment=environment, message=f"{environment} was awake: nothing to do")
    snapshot = record.snapshot
    night = savings(snapshot, slept_at=record.slept_at or snapshot.taken_at, woke_at=ctx.now, config=config)
    ledger.set_status(environment, SleepStatus.AWAKE, expected=(SleepStatus.WAKING, SleepStatus.ASLEEP), now=ctx.now)
    summary = _wake_summary(state, snapshot, night)
    not_awake, message = summary.not_awake, summary.message
    ledger.record_event(
        environment,
        at=ctx.now,
        execution_arn=ctx.execution_arn,
        action="up",
        outcome="AWAKE" if not not_awake else "PARTIALLY_AWAKE",
        detail=summary.model_dump(mode="json"),
    )
    logger.info(
        "off-hours night",
        extra={
            "hours": night.hours,
            "node_hours_saved": night.node_hours,
            "pod_hours_saved": night.pod_hours,
            "estimated_cost_saved_usd": night.estimated_cost,
            "unpriced_instance_types": list(night.unpriced),
        },
    )
    metrics.add_metric(name="NodeHoursSaved", unit="Count", value=night.node_hours)
    metrics.add_metric(name="PodHoursSaved", unit="Count", value=night.pod_hours)
    metrics.add_metric(name="EstimatedCostSavedUSD", unit="None", value=night.estimated_cost)
    if not_awake and settings.notification_topic_arn:
        notify_outcome(
            settings.notification_topic_arn,
            subject=f"{environment}: {len(not_awake)} workload(s) did not wake up",
            outcome="WAKE_PARTIAL",
            environment=environment,
            body=summary.model_dump(mode="json"),
            region=settings.region,
        )
    logger.info(message)
    return summary
