"""Off-hours scaling: the snapshot it takes before putting an environment to sleep, and the payloads of the off-hours
state machine; its configuration is ``controlplane.models.offhours_config``.

Sleeping an HPA'd workload honestly: ``minReplicas`` cannot be 0 on a standard cluster (``HPAScaleToZero`` is
alpha), so the workload itself goes to 0 through its ``/scale`` subresource; the HPA controller does not act on a
target at 0 replicas (``ScalingActive=False``, reason ``ScalingDisabled``). With a non-zero off-hours size the HPA's
bounds are pinned to that size. Either way the bounds are recorded here and restored exactly.

Pure decisions that need nothing but these models (which workloads are excluded, what size a node group sleeps at,
in which waves workloads wake, what a night saved) live here so the adapters and steps stay thin.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from controlplane.models.base import StrictModel
from controlplane.models.kube import ObjectRef
from controlplane.models.lease import Lease
from controlplane.models.offhours_config import OffhoursConfig
from controlplane.models.operator import OperatorSignature, Printable
from controlplane.models.release import Environment

ScalableKind = Literal["Deployment", "StatefulSet"]
SCALABLE_KINDS: tuple[ScalableKind, ...] = ("Deployment", "StatefulSet")
Action = Literal["down", "up", "stay-awake"]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------------------
# The snapshot
# ---------------------------------------------------------------------------------------------------------------------


class WorkloadSnapshot(StrictModel):
    """A Deployment's or StatefulSet's replicas before sleeping, and the size it sleeps at."""

    ref: ObjectRef
    replicas: int = Field(ge=0)
    sleep_replicas: int = Field(ge=0)
    release_id: str | None = Field(default=None, description="The release the ledger says runs.")

    @field_validator("ref")
    @classmethod
    def _scalable(cls, ref: ObjectRef) -> ObjectRef:
        if ref.kind not in SCALABLE_KINDS or not ref.namespace:
            raise ValueError(f"{ref.key}: only namespaced Deployments and StatefulSets are scaled")
        return ref


class HpaSnapshot(StrictModel):
    """An HPA's bounds before sleeping; ``sleep_min``/``sleep_max`` are ``None`` when sleeping leaves it alone."""

    ref: ObjectRef
    target: ObjectRef
    min_replicas: int | None = Field(default=None, ge=1, description="None: the field was unset (defaults to 1).")
    max_replicas: int = Field(ge=1)
    sleep_min: int | None = Field(default=None, ge=1)
    sleep_max: int | None = Field(default=None, ge=1)

    @property
    def pinned(self) -> bool:
        return self.sleep_min is not None


class NodegroupSnapshot(StrictModel):
    """An EKS managed node group's scaling config before sleeping, and the size it sleeps at."""

    name: str
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    desired_size: int = Field(ge=0)
    sleep_desired: int = Field(ge=0)
    instance_types: tuple[str, ...] = ()
    capacity_type: str | None = None

    @property
    def sleep_min(self) -> int:
        return min(self.min_size, self.sleep_desired)


class Exclusion(StrictModel):
    key: str
    reason: str


class Snapshot(StrictModel):
    """Everything sleeping changes, as it was before: what the next scale-up restores exactly."""

    environment: Environment
    taken_at: datetime
    execution_arn: str
    workloads: tuple[WorkloadSnapshot, ...] = ()
    hpas: tuple[HpaSnapshot, ...] = ()
    nodegroups: tuple[NodegroupSnapshot, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    release_id: str | None = Field(default=None, description="The release the snapshot refers to (deploys update it).")

    def workload(self, ref: ObjectRef) -> WorkloadSnapshot | None:
        return next((w for w in self.workloads if w.ref.key == ref.key), None)

    def hpas_for(self, ref: ObjectRef) -> tuple[HpaSnapshot, ...]:
        return tuple(h for h in self.hpas if h.target.key == ref.key)


class SleepStatus(StrEnum):
    AWAKE = "AWAKE"
    ASLEEP = "ASLEEP"
    WAKING = "WAKING"
    """A scale-up started and has not finished: the snapshot still rules (a scale-down reuses it)."""


class SleepRecord(StrictModel):
    """The ledger's ``ENV#<environment>`` / ``OFFHOURS`` item."""

    environment: Environment
    status: SleepStatus
    snapshot: Snapshot | None = None
    slept_at: datetime | None = None
    woke_at: datetime | None = None
    execution_arn: str | None = None
    version: int = 0

    @property
    def asleep(self) -> bool:
        return self.status is not SleepStatus.AWAKE and self.snapshot is not None


class StayAwake(StrictModel):
    """A person's "stay awake until <time>" override (a late demo): the scheduled scale-down respects it."""

    environment: Environment
    until: datetime
    requested_by: str = Field(min_length=1)
    reason: str = ""
    requested_at: datetime

    @field_validator("until", "requested_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return _aware(value)

    def active(self, now: datetime) -> bool:
        return _aware(now) < self.until


# ---------------------------------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------------------------------


def wake_waves(workloads: Iterable[WorkloadSnapshot], config: OffhoursConfig) -> list[list[ObjectRef]]:
    """Workloads in restore order: StatefulSets and ``wake_first``, then the rest, then ``wake_last`` (the edge).

    Services others call come up before their callers; the API gateway, which calls everyone, comes up last.
    """

    def rank(w: WorkloadSnapshot) -> int:
        if w.ref.name in config.wake_last:
            return 2
        if w.ref.kind == "StatefulSet" or w.ref.name in config.wake_first:
            return 0
        return 1

    waves: list[list[ObjectRef]] = [[], [], []]
    for w in sorted(workloads, key=lambda w: (w.ref.namespace or "", w.ref.name)):
        waves[rank(w)].append(w.ref)
    return [wave for wave in waves if wave]


class NodegroupSavings(StrictModel):
    name: str
    instance_type: str | None
    nodes_saved: int
    node_hours: float
    cost: float | None


class Savings(StrictModel):
    """What one night asleep saved: node-hours, pod-hours and the estimated cost from the price table."""

    hours: float
    node_hours: float
    pod_hours: float
    estimated_cost: float
    currency: Literal["USD"] = "USD"
    nodegroups: tuple[NodegroupSavings, ...] = ()
    unpriced: tuple[str, ...] = Field(default=(), description="Instance types missing from the price table.")


def savings(snapshot: Snapshot, *, slept_at: datetime, woke_at: datetime, config: OffhoursConfig) -> Savings:
    """Savings of the night from ``slept_at`` to ``woke_at``; a group's price is its first instance type's."""
    hours = max(0.0, (_aware(woke_at) - _aware(slept_at)).total_seconds() / 3600)
    groups: list[NodegroupSavings] = []
    unpriced: list[str] = []
    for g in snapshot.nodegroups:
        saved = max(0, g.desired_size - g.sleep_desired)
        instance_type = g.instance_types[0] if g.instance_types else None
        price = config.hourly_price(instance_type, g.capacity_type) if instance_type else None
        if saved and price is None:
            unpriced.append(instance_type or f"{g.name} (no instance type)")
        groups.append(
            NodegroupSavings(
                name=g.name,
                instance_type=instance_type,
                nodes_saved=saved,
                node_hours=round(saved * hours, 3),
                cost=round(saved * hours * price, 4) if price is not None else None,
            )
        )
    pods = sum(max(0, w.replicas - w.sleep_replicas) for w in snapshot.workloads)
    return Savings(
        hours=round(hours, 3),
        node_hours=round(sum(g.node_hours for g in groups), 3),
        pod_hours=round(pods * hours, 3),
        estimated_cost=round(sum(g.cost or 0.0 for g in groups), 4),
        nodegroups=tuple(groups),
        unpriced=tuple(sorted(set(unpriced))),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Payloads of the off-hours state machine
# ---------------------------------------------------------------------------------------------------------------------


class OffhoursRequest(StrictModel):
    """The execution input: a schedule's or a person's ``{environment, action}``.

    ``stay-awake`` (console spelling ``stay_awake`` accepted) records an override until ``until``. ``trigger`` tells a
    schedule from a person (only the scheduled scale-down yields to a stay-awake override). Who asked is never a
    payload field: a person's request carries the operator API's signature (``operator``), a schedule's none.
    """

    environment: Environment
    action: Action
    trigger: Literal["schedule", "console"] = "console"
    until: datetime | None = None
    reason: Annotated[str, Field(max_length=500), Printable] = ""
    operator: OperatorSignature | None = Field(default=None, description="Set by the operator API only (signed).")

    @field_validator("action", mode="before")
    @classmethod
    def _spelling(cls, value: Any) -> Any:
        return "stay-awake" if value == "stay_awake" else value

    @model_validator(mode="after")
    def _override_fields(self) -> OffhoursRequest:
        if self.action == "stay-awake" and self.until is None:
            raise ValueError("stay-awake needs until (ISO-8601 time)")
        return self


class StepContext(StrictModel):
    """What every task gets from the state machine: the request, the execution, and the time."""

    request: OffhoursRequest
    execution_arn: str = Field(min_length=1, description="$$.Execution.Id")
    now: datetime = Field(description="$$.State.EnteredTime")
    lease: Lease | None = Field(
        default=None,
        description="$.lock.lease: required by every step after AcquireLock (each renews it and writes behind it).",
    )


class SleepPlan(StrictModel):
    """RecordRequest's and SnapshotEnvironment's result: sleep (with the snapshot in the ledger), or skip and why."""

    environment: Environment
    sleep: bool
    reason: str
    reused_snapshot: bool = False
    workloads: int = 0
    hpas: int = 0
    nodegroups: int = 0
    excluded: tuple[str, ...] = ()


class OffhoursBegun(StrictModel):
    """Begin's result: the request as understood and authenticated (the later states read it)."""

    request: OffhoursRequest


class SleepReport(StrictModel):
    """SleepWorkloads / SleepNodegroups: what was changed (already at the sleeping size counts as unchanged)."""

    environment: Environment
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    missing: tuple[str, ...] = Field(default=(), description="In the snapshot but gone from the cluster.")


class NodegroupProgress(StrictModel):
    name: str
    wanted: int
    ready: int


class NodesState(StrictModel):
    """RestoreNodegroups / CheckNodes: node groups back at their size, nodes Ready, until a deadline."""

    environment: Environment
    deadline: datetime
    groups: tuple[NodegroupProgress, ...] = ()
    ready: bool = False
    timed_out: bool = False
    nothing_to_wake: bool = False


class WorkloadOutcome(StrictModel):
    ref: ObjectRef
    awake: bool
    replicas: int
    cause: str | None = None


class WakeState(StrictModel):
    """The scale-up's progress across RestoreWave / CheckWave iterations (small: references only)."""

    environment: Environment
    waves: tuple[tuple[ObjectRef, ...], ...] = ()
    wave: int = 0
    wave_deadline: datetime | None = None
    done: bool = False
    outcomes: tuple[WorkloadOutcome, ...] = ()
    pending: tuple[str, ...] = ()
    nodes_note: str | None = None

    @property
    def current(self) -> tuple[ObjectRef, ...]:
        return self.waves[self.wave] if self.wave < len(self.waves) else ()


class NodesStepInput(StepContext):
    """CheckNodes: the context and the previous look."""

    state: NodesState


class RestoreWaveInput(StepContext):
    """RestoreWave: the context, the progress so far (``None`` before the first wave) and the nodes' outcome (a
    node deadline that passed is noted in the summary)."""

    state: WakeState | None = None
    nodes: NodesState | None = None


class WakeStepInput(StepContext):
    """CheckWave / FinishWake: the context and the progress so far."""

    state: WakeState


class WakeSummary(StrictModel):
    """The end of a scale-up: what is awake, what is not (and why), and what the night saved."""

    environment: Environment
    awake: tuple[str, ...] = ()
    not_awake: tuple[WorkloadOutcome, ...] = ()
    all_awake: bool = Field(default=True, description="False: the execution fails with WorkloadsNotRestoredError.")
    nodegroups: tuple[str, ...] = ()
    savings: Savings | None = None
    message: str
