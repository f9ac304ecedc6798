"""The deploy lock's payloads and pure rules: lock requests and results, queued pushes and their coalescing, the
follow-up deploy a lock holder hands the environment to."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from controlplane.models.arn import last_segment
from controlplane.models.base import StrictModel
from controlplane.models.lease import Lease
from controlplane.models.release import Environment, ServiceName


class Push(StrictModel):
    """A requested image waiting to be deployed: a digest (or, from the console, a tag resolved when planned).

    ``sequence`` orders the pushes of one service: the larger one is newer. The control plane assigns it from an
    atomic per-environment counter as the request arrives (never from the event's one-second ``time``).
    """

    service: ServiceName
    reference: str = Field(min_length=1)
    sequence: int = Field(ge=0)


def coalesce(pushes: Iterable[Push]) -> dict[str, Push]:
    """The newest push of each service (largest sequence; on a tie the later one in ``pushes`` wins)."""
    newest: dict[str, Push] = {}
    for push in pushes:
        current = newest.get(push.service)
        if current is None or push.sequence >= current.sequence:
            newest[push.service] = push
    return dict(sorted(newest.items()))


class LockPurpose(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    SCALE = "scale"
    PROVISION = "provision"
    """The provisioning state machine changes the platform stacks: no release applies meanwhile."""
    DEGRADED = "degraded"
    """Held for nobody after a failed rollback: pushes queue until an operator rollback or acknowledgement."""


class LockOutcome(StrEnum):
    ACQUIRED = "ACQUIRED"
    """This execution owns the environment: go on."""
    QUEUED = "QUEUED"
    """Another execution owns it; this execution's pushes are recorded for it to deploy next. End cleanly."""
    HELD = "HELD"
    """Another execution owns it and nothing was queued (rollback, scaling): wait and try again."""
    SKIPPED = "SKIPPED"
    """The request is for another environment's control plane: nothing to lock (planning skips it too)."""


class LockRequest(StrictModel):
    environment: Environment
    owner: str = Field(min_length=1, description="The execution ARN that will own the lock.")
    purpose: LockPurpose = LockPurpose.DEPLOY
    pushes: list[Push] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pushes_only_for_deploys(self) -> Self:
        if self.pushes and self.purpose is not LockPurpose.DEPLOY:
            raise ValueError("only deploys carry pushes")
        return self


class AcquireLockInput(StrictModel):
    """AcquireLock: the execution's raw input (an ECR push event or a console request) and its context."""

    input: Any = Field(default_factory=dict, description="any JSON: a non-object is refused by name, not by type")
    execution_arn: str = Field(min_length=1, description="$$.Execution.Id")
    started_at: datetime = Field(description="$$.Execution.StartTime")
    purpose: LockPurpose = LockPurpose.DEPLOY
    environment: Environment | None = Field(default=None, description="Rollback/scaling: the environment to lock.")
    owner: str | None = Field(default=None, description="Lock on behalf of another execution (a parent deploy).")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime")


class LockResult(StrictModel):
    outcome: LockOutcome
    environment: Environment
    owner: str
    holder: str | None = Field(default=None, description="Who holds the lock when it was not acquired.")
    expires_at: int | None = Field(default=None, description="Epoch seconds after which the lock is stale.")
    cleared_orphan: str | None = Field(default=None, description="A lock owner whose execution had ended.")
    queued: list[str] = Field(default_factory=list, description="Services whose pushes were queued.")
    lease: Lease | None = Field(
        default=None, description="ACQUIRED: the lease every write of the holder is conditional on."
    )


class FollowUp(StrictModel):
    """The deploy the lock holder hands the environment to: the coalesced queued pushes, newest per service."""

    execution_name: str
    execution_arn: str
    environment: Environment
    pushes: list[Push]
    after: str = Field(description="The execution that handed the lock over.")

    def execution_input(self) -> dict[str, Any]:
        """A console-request-shaped input (what PlanRelease accepts), so the follow-up is an ordinary deploy."""
        services = {p.service: p.reference for p in self.pushes}
        return {
            "environment": self.environment,
            "services": dict(sorted(services.items())),
            "reason": f"queued pushes of {', '.join(sorted(services))} after {last_segment(self.after)}",
            "force": False,
        }


class ReleaseLockInput(StrictModel):
    environment: Environment
    owner: str = Field(min_length=1, description="The execution releasing the lock ($$.Execution.Id).")
    outcome: str = Field(default="SUCCEEDED", description="Why: SUCCEEDED, FAILED, ABORTED, TIMED_OUT, ...")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")
    record_error: dict[str, Any] | None = Field(
        default=None,
        description="The deploy's RecordOutcome error, if recording failed: what it carried was never recorded.",
    )


class ReleaseLockResult(StrictModel):
    environment: Environment
    released: bool = Field(description="False when this execution did not own the lock (already released).")
    follow_up: FollowUp | None = None


class LockRecord(StrictModel):
    """The lock item as stored (one per environment)."""

    environment: Environment
    owner: str
    purpose: LockPurpose
    acquired_at: int
    expires_at: int
    version: int = 0
    lease: int = Field(default=0, description="The lease token: bumped by every change of owner (never by a queue).")
    pending: dict[str, Push] = Field(default_factory=dict)
    carried: dict[str, Push] = Field(
        default_factory=dict, description="After a hand-off: the pushes the follow-up (the owner) deploys."
    )
    handed_off_by: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= int(now.timestamp())


def follow_up_name(environment: str, previous_owner: str, pushes: Iterable[Push]) -> str:
    """A deterministic execution name (so a retried hand-off starts the same execution once)."""
    body = json.dumps([previous_owner, [p.model_dump(mode="json") for p in pushes]], sort_keys=True)
    return f"{environment}-queued-{hashlib.sha256(body.encode()).hexdigest()[:24]}"


class LockStepInput(StrictModel):
    """AcquireLock / ReleaseLock of a machine that waits for the deploy's lock (off-hours scaling, purpose ``scale``;
    provisioning, purpose ``provision``) instead of queueing behind it."""

    environment: Environment
    execution_arn: str = Field(min_length=1, description="$$.Execution.Id")
    started_at: datetime = Field(description="$$.Execution.StartTime")
    now: datetime = Field(description="$$.State.EnteredTime")
    outcome: str = Field(default="SUCCEEDED", description="ReleaseLock: how the execution ends.")
    deploy_state_machine_arn: str | None = Field(
        default=None, description="Where deploy pushes queued behind us are started (not this machine)."
    )


class WaitedLock(StrictModel):
    """AcquireLock's answer: ``acquired``, or held by ``holder`` (the ASL waits and asks again until ``deadline``)."""

    environment: Environment
    acquired: bool
    holder: str | None = None
    deadline: datetime
    cleared_orphan: str | None = None
    lease: Lease | None = Field(default=None, description="When acquired: what every later step is fenced by.")
