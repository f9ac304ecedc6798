"""The per-environment deploy lock and the queue of pushes that arrive while it is held (DynamoDB, ledger table).

One item per environment, ``ENV#<environment>`` / ``LOCK``, holds everything, so every change is one conditional
write on one item:

* ``owner`` (execution ARN), ``purpose``, ``acquired_at``, ``expires_at`` (epoch seconds), ``version`` (bumped on
  every write: the release's compare-and-swap), ``lease`` (the lease token, bumped by every change of owner);
* ``carried``: ``service -> push`` the owner is deploying;
* ``pending``: ``service -> push`` queued while the lock was held, newest per service. A push is written into
  ``pending`` only if it is newer than both the pending and the carried push of its service, so an older push
  (or a duplicate delivery of the same one) never overwrites a newer one.

"Newer" is the push's ``sequence``, which the control plane assigns (:meth:`LockTable.sequence_for`): the second the
push happened, then the order in which the control plane received it, from an atomic per-environment counter
(``ENV#<environment>`` / ``SEQUENCE``, ``UpdateItem ADD``). The event's one-second ``time`` alone is shared by two
pushes of one second (the newer one was dropped); arrival alone would let a late-delivered older push replace a
newer one. The number is remembered per request (``ENV#<environment>`` / ``REQUEST#<event id or execution>``), so a
redelivered event or a retried step gets the number it got the first time, never a newer one.

Releasing: with nothing pending the item is deleted (condition: still the owner, version unchanged); with pushes
pending, ownership moves to a follow-up execution of the same state machine (deterministic name), ``pending``
becomes its ``carried``, and the follow-up is started. A push that lands between the read and the write bumps the
version, the write fails, and the release reads again: no push is lost.

An owner whose execution is no longer RUNNING (``states:DescribeExecution``), or whose lock expired while it is not
RUNNING, is an orphan: the next acquirer takes the lock over and puts the orphan's carried pushes back into
``pending``. A RUNNING execution's lock is never taken, however long it waits (an approval can outlast the TTL).

Lease and fencing: AcquireLock returns the lease (owner + ``lease`` token); the execution's state carries it to every
step that writes. Each of them renews it (:func:`renew`: ``expires_at`` moves on, conditional on owner and token;
approval and scan waits included) before writing, and writes the ledger behind :func:`fence` (a ``ConditionCheck`` of
owner and token in the same transaction). A holder whose lock was taken over or handed on fails the condition and
raises ``LockLostError`` before any further write, to the cluster or to the ledger.

Degraded (the ledger's ``ENV#<environment>`` / ``DEGRADED`` mark, after a failed rollback): a deploy's pushes are
queued, never applied. The lock is *parked*: owned by the placeholder ``degraded:<environment>`` (purpose
``degraded``), which is never an orphan while the mark stands; a free lock is parked on the spot, and a follow-up
deploy the lock was handed to parks it again with its pushes back in ``pending``. An operator rollback takes the
parked lock over like an orphan's (the pushes stay queued) and hands them on when it ends; so does an
acknowledgement. Once the mark is gone, a parked lock is an orphan like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.aws.table import Check, Condition, ConditionFailedError, Fence, Items, Key, environment_key
from controlplane.errors import AwsThrottledError, ConfigurationError, LockHeldError, LockLostError
from controlplane.models.arn import execution_of, state_machine_of
from controlplane.models.lease import Lease
from controlplane.models.lock import (
    FollowUp,
    LockOutcome,
    LockPurpose,
    LockRecord,
    LockRequest,
    LockResult,
    LockStepInput,
    Push,
    ReleaseLockResult,
    WaitedLock,
    coalesce,
    follow_up_name,
)
from controlplane.observability import logger, metrics

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from controlplane.settings import Settings

_ATTEMPTS = 8
_PARKED_TTL_S = 10 * 365 * 24 * 3600  # a parked lock does not expire: the degraded mark decides
SEQUENCE_SLOTS = 1_000_000
"""Pushes distinguishable within one second (the counter modulo this); keeps sequences below 2**53 (JSON-safe)."""

ExecutionStatus = Callable[[str], "str | None"]
"""``execution ARN -> status`` (RUNNING, SUCCEEDED, ...), ``None`` when the execution does not exist."""


def lock_key(environment: str) -> Key:
    return environment_key(environment, "LOCK")


def _pushes(pushes: Mapping[str, Push]) -> dict[str, Any]:
    return {s: p.model_dump(mode="json") for s, p in pushes.items()}


def sequence_key(environment: str) -> Key:
    return environment_key(environment, "SEQUENCE")


def request_key(environment: str, request_id: str) -> Key:
    return environment_key(environment, f"REQUEST#{request_id}")


# The attributes a change of owner rewrites (take-over of an orphan, hand-off to a follow-up).
_OWNERSHIP_NAMES = {
    "#owner": "owner",
    "#purpose": "purpose",
    "#acquired": "acquired_at",
    "#expires": "expires_at",
    "#carried": "carried",
    "#pending": "pending",
    "#handed": "handed_off_by",
    "#version": "version",
    "#lease": "lease",
}


class LockTable(Items):
    """The lock items of the ledger table ``table_name``."""

    # ------------------------------------------------------------------------------------------------------ reads
    def read(self, environment: str) -> LockRecord | None:
        data = self.table.get(lock_key(environment))
        if data is None:
            return None
        data.pop("kind", None)
        return LockRecord.model_validate(data | {"environment": environment})

    # ----------------------------------------------------------------------------------------------------- writes
    def sequence_for(self, environment: str, *, request_id: str, at_s: int) -> int:
        """The sequence of request ``request_id`` (an event id or an execution ARN) made at epoch second ``at_s``:
        ``at_s * 10**6 + arrival counter`` (see the module docstring); the same number for the same request."""
        counted = self.table.update(
            sequence_key(environment),
            Condition(
                "SET #kind = :kind ADD #value :one",
                names={"#kind": "kind", "#value": "value"},
                values={":kind": "sequence", ":one": 1},
            ),
            return_new=True,
        )
        assert counted is not None  # return_new
        candidate = at_s * SEQUENCE_SLOTS + int(counted["value"]) % SEQUENCE_SLOTS
        stored = self.table.update(
            request_key(environment, request_id),
            Condition(
                "SET #seq = if_not_exists(#seq, :seq), #kind = :kind",
                names={"#seq": "sequence", "#kind": "kind"},
                values={":seq": candidate, ":kind": "push_sequence"},
            ),
            return_new=True,
        )
        assert stored is not None  # return_new
        return int(stored["sequence"])

    def _update(self, environment: str, update: Condition, condition: Condition) -> bool:
        """One conditional UpdateItem; ``False`` when its condition does not hold."""
        return self._update_item(environment, update, condition) is not None

    def _update_item(self, environment: str, update: Condition, condition: Condition) -> dict[str, Any] | None:
        """One conditional UpdateItem: the item as written, ``None`` when its condition does not hold."""
        try:
            return self.table.update(lock_key(environment), update, condition=condition, return_new=True)
        except ConditionFailedError:
            return None

    def try_acquire(self, request: LockRequest, *, now: int, ttl_s: int) -> int | None:
        """Take a free lock, or confirm we already own it (a retried step, a follow-up the lock was handed to): the
        lease token, ``None`` when another owner holds it. Never touches a queue it finds."""
        mine = coalesce(request.pushes)
        written = self._update_item(
            request.environment,
            Condition(
                "SET #owner = :me, #purpose = if_not_exists(#purpose, :purpose), #kind = :kind, "
                "#acquired = if_not_exists(#acquired, :now), #expires = :expires, "
                "#carried = if_not_exists(#carried, :carried), #pending = if_not_exists(#pending, :empty), "
                "#lease = if_not_exists(#lease, :one) ADD #version :one",
                {k: v for k, v in _OWNERSHIP_NAMES.items() if k != "#handed"} | {"#kind": "kind"},
                {
                    ":purpose": request.purpose.value,
                    ":kind": "lock",
                    ":now": now,
                    ":expires": now + ttl_s,
                    ":carried": _pushes(mine),
                    ":empty": {},
                    ":one": 1,
                },
            ),
            Condition("attribute_not_exists(#owner) OR #owner = :me", values={":me": request.owner}),
        )
        return int(written["lease"]) if written is not None else None

    def take_over(self, request: LockRequest, orphan: LockRecord, *, now: int, ttl_s: int) -> bool:
        """Replace the orphan owner (condition: owner and version unchanged); its carried pushes become pending."""
        mine = coalesce(request.pushes)
        queued = coalesce([*orphan.carried.values(), *orphan.pending.values()])
        # A queued push no newer than ours is already covered by what we deploy.
        pending = {s: p for s, p in queued.items() if s not in mine or p.sequence > mine[s].sequence}
        return self._update(
            request.environment,
            Condition(
                "SET #owner = :me, #purpose = :purpose, #acquired = :now, #expires = :expires, "
                "#carried = :carried, #pending = :pending, #lease = :lease REMOVE #handed ADD #version :one",
                _OWNERSHIP_NAMES,
                {
                    ":lease": orphan.lease + 1,
                    ":me": request.owner,
                    ":purpose": request.purpose.value,
                    ":now": now,
                    ":expires": now + ttl_s,
                    ":carried": _pushes(mine),
                    ":pending": _pushes(pending),
                    ":one": 1,
                },
            ),
            Condition(
                "#owner = :orphan AND #version = :version", values={":orphan": orphan.owner, ":version": orphan.version}
            ),
        )

    def enqueue(self, environment: str, push: Push) -> bool:
        """Queue ``push`` behind the current owner, if it is newer than what is queued or carried for its service.

        ``False`` when the condition fails: the lock is gone, or a newer (or the same) push is already there.
        """
        return self._update(
            environment,
            Condition(
                "SET #pending.#service = :push ADD #version :one",
                {"#pending": "pending", "#service": push.service, "#version": "version"},
                {":push": push.model_dump(mode="json"), ":one": 1},
            ),
            Condition(
                "attribute_exists(#owner) "
                "AND (attribute_not_exists(#pending.#service) OR #pending.#service.#seq < :seq) "
                "AND (attribute_not_exists(#carried.#service) OR #carried.#service.#seq < :seq)",
                {"#owner": "owner", "#carried": "carried", "#seq": "sequence"},
                {":seq": push.sequence},
            ),
        )

    def hand_off(self, record: LockRecord, follow_up: FollowUp, *, now: int, ttl_s: int) -> bool:
        """Give the lock to ``follow_up`` with the pending pushes as its carried ones (condition: version unchanged)."""
        return self._update(
            record.environment,
            Condition(
                "SET #owner = :next, #purpose = :deploy, #acquired = :now, #expires = :expires, "
                "#carried = :carried, #pending = :empty, #handed = :me, #lease = :lease ADD #version :one",
                _OWNERSHIP_NAMES,
                {
                    ":lease": record.lease + 1,
                    ":next": follow_up.execution_arn,
                    ":deploy": LockPurpose.DEPLOY.value,
                    ":now": now,
                    ":expires": now + ttl_s,
                    ":carried": _pushes({p.service: p for p in follow_up.pushes}),
                    ":empty": {},
                    ":one": 1,
                },
            ),
            Condition("#owner = :me AND #version = :version", values={":me": record.owner, ":version": record.version}),
        )

    def delete_if_idle(self, record: LockRecord) -> bool:
        """Delete the lock if we still own it and nothing was queued since we read it."""
        try:
            self.table.delete(
                lock_key(record.environment),
                condition=Condition(
                    "#owner = :me AND #version = :version",
                    {"#owner": "owner", "#version": "version"},
                    {":me": record.owner, ":version": record.version},
                ),
            )
        except ConditionFailedError:
            return False
        return True


def _lease_condition(lease: Lease) -> Condition:
    return Condition(
        "#owner = :holder AND #lease = :token",
        {"#owner": "owner", "#lease": "lease"},
        {":holder": lease.owner, ":token": lease.token},
    )


def _described(lease: Lease) -> str:
    return f"the lock of {lease.environment} (lease {lease.token})"


def fence(lease: Lease) -> Fence:
    """The condition every write of ``lease``'s holder carries (see the module docstring)."""
    return Fence(
        check=Check(lock_key(lease.environment), _lease_condition(lease)), holder=lease.owner, lease=_described(lease)
    )


def renew(table: LockTable, lease: Lease, *, now: datetime, ttl_s: int) -> LockRecord:
    """Extend ``lease`` to ``now + ttl_s`` if its holder still holds it (owner and token unchanged), and return the
    lock; :class:`LockLostError` naming who holds it now otherwise. Called before a holder writes (the cluster apply
    checks its lease just before its first write) and while it waits (health, scans, approval)."""
    try:
        written = table.table.update(
            lock_key(lease.environment),
            Condition(
                "SET #expires = :expires", {"#expires": "expires_at"}, {":expires": int(now.timestamp()) + ttl_s}
            ),
            condition=_lease_condition(lease),
            return_new=True,
        )
    except ConditionFailedError:
        record = table.read(lease.environment)
        holder = f"{record.owner} (lease {record.lease})" if record else "nobody"
        raise LockLostError(
            f"{lease.owner} no longer holds {_described(lease)}; it is held by {holder}: nothing more is written"
        ) from None
    assert written is not None  # return_new
    written.pop("kind", None)
    return LockRecord.model_validate(written | {"environment": lease.environment})


# ------------------------------------------------------------------------------------------------- Step Functions
def execution_status(arn: str, *, region: str | None = None, client: SFNClient | None = None) -> str | None:
    """The status of execution ``arn`` (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, ...), ``None`` if absent."""
    sfn: SFNClient = client or boto3.client("stepfunctions", region_name=region)
    try:
        with translate_aws_errors("states:DescribeExecution"):
            return str(sfn.describe_execution(executionArn=arn)["status"])
    except ClientError as exc:
        if error_code(exc) == "ExecutionDoesNotExist":
            return None
        raise


def start_follow_up(
    follow_up: FollowUp, state_machine_arn: str, *, region: str | None = None, client: SFNClient | None = None
) -> None:
    """Start the follow-up deploy; starting it again (a retried release) is a no-op."""
    sfn: SFNClient = client or boto3.client("stepfunctions", region_name=region)
    try:
        with translate_aws_errors("states:StartExecution"):
            sfn.start_execution(
                stateMachineArn=state_machine_arn,
                name=follow_up.execution_name,
                input=json.dumps(follow_up.execution_input(), sort_keys=True),
            )
    except ClientError as exc:
        if error_code(exc) != "ExecutionAlreadyExists":
            raise


# --------------------------------------------------------------------------------------------------------- logic
def parked_owner(environment: str) -> str:
    """The placeholder owner of a lock parked while the environment is degraded."""
    return f"degraded:{environment}"


def is_parked(record: LockRecord) -> bool:
    return record.owner == parked_owner(record.environment)


def is_orphan(record: LockRecord, status: str | None, *, now: datetime, grace_s: int, degraded: bool = False) -> bool:
    """An owner that ended, never started (after ``grace_s``: a hand-off's follow-up may still be starting), or
    whose lock expired while its execution is not RUNNING; a parked lock only once the environment is no longer
    degraded. A RUNNING execution's lock is never taken, however long it waits (an approval can outlast the TTL):
    ``states:DescribeExecution`` is the lease's proof of life."""
    if is_parked(record):
        return not degraded
    if status == "RUNNING":
        return False
    if record.expired(now):
        return True
    if status is None:
        return int(now.timestamp()) - record.acquired_at > grace_s
    return status != "RUNNING"


def acquire(
    table: LockTable,
    request: LockRequest,
    *,
    now: datetime,
    ttl_s: int,
    grace_s: int,
    status_of: ExecutionStatus,
    degraded: bool = False,
) -> LockResult:
    """Take the environment's lock, queue behind its owner, or report it held (see the module docstring).

    ``degraded``: the environment is marked degraded; a deploy's pushes are queued behind a parked lock.
    """
    if degraded and request.purpose is LockPurpose.DEPLOY and request.pushes:
        return _queue_while_degraded(table, request, now=now, grace_s=grace_s, status_of=status_of)
    epoch = int(now.timestamp())

    def result(outcome: LockOutcome, **fields: Any) -> LockResult:
        return LockResult(outcome=outcome, environment=request.environment, owner=request.owner, **fields)

    for _ in range(_ATTEMPTS):
        token = table.try_acquire(request, now=epoch, ttl_s=ttl_s)
        if token is not None:
            return result(LockOutcome.ACQUIRED, expires_at=epoch + ttl_s, lease=_lease(request, token))
        record = table.read(request.environment)
        if record is None:
            continue  # released between our write and our read
        status = None if is_parked(record) else status_of(record.owner)
        operator_on_parked = is_parked(record) and request.purpose is LockPurpose.ROLLBACK
        if operator_on_parked or is_orphan(record, status, now=now, grace_s=grace_s, degraded=degraded):
            if table.take_over(request, record, now=epoch, ttl_s=ttl_s):
                return result(
                    LockOutcome.ACQUIRED,
                    expires_at=epoch + ttl_s,
                    cleared_orphan=record.owner,
                    lease=_lease(request, record.lease + 1),
                )
            continue
        if request.purpose is not LockPurpose.DEPLOY or not request.pushes:
            return result(LockOutcome.HELD, holder=record.owner, expires_at=record.expires_at)
        if _enqueue_all(table, request):
            return result(
                LockOutcome.QUEUED,
                holder=record.owner,
                expires_at=record.expires_at,
                queued=sorted(coalesce(request.pushes)),
            )
    raise AwsThrottledError(f"lock of {request.environment} kept changing under {_ATTEMPTS} attempts; retry")


def _lease(request: LockRequest, token: int) -> Lease:
    return Lease(environment=request.environment, owner=request.owner, token=token)


def _queue_while_degraded(
    table: LockTable, request: LockRequest, *, now: datetime, grace_s: int, status_of: ExecutionStatus
) -> LockResult:
    """Park the lock (free, ours after a hand-off, or an orphan's) and queue the pushes behind it: QUEUED."""
    epoch = int(now.timestamp())
    parked = LockRequest(
        environment=request.environment,
        owner=parked_owner(request.environment),
        purpose=LockPurpose.DEGRADED,
        pushes=[],
    )
    for _ in range(_ATTEMPTS):
        record = table.read(request.environment)
        if record is None:
            table.try_acquire(parked, now=epoch, ttl_s=_PARKED_TTL_S)
            continue
        mine = record.owner == request.owner
        if not is_parked(record) and (mine or is_orphan(record, status_of(record.owner), now=now, grace_s=grace_s)):
            table.take_over(parked, record, now=epoch, ttl_s=_PARKED_TTL_S)  # its carried pushes become pending
            continue
        if _enqueue_all(table, request):
            return LockResult(
                outcome=LockOutcome.QUEUED,
                environment=request.environment,
                owner=request.owner,
                holder=record.owner,
                expires_at=record.expires_at,
                queued=sorted(coalesce(request.pushes)),
            )
    raise AwsThrottledError(f"lock of {request.environment} kept changing under {_ATTEMPTS} attempts; retry")


def _enqueue_all(table: LockTable, request: LockRequest) -> bool:
    """Queue every push; ``False`` if the lock disappeared meanwhile (the caller tries to acquire again)."""
    for push in coalesce(request.pushes).values():
        if table.enqueue(request.environment, push):
            continue
        again = table.read(request.environment)
        if again is None:
            return False
        newer = [again.pending.get(push.service), again.carried.get(push.service)]
        if not any(p is not None and p.sequence >= push.sequence for p in newer):
            return False  # neither superseded nor queued: the lock changed hands; start over
    return True


def release(
    table: LockTable,
    *,
    environment: str,
    owner: str,
    now: datetime,
    ttl_s: int,
    state_machine_arn: str | None = None,
    start: Callable[[FollowUp, str], None],
    requeue_carried: bool = False,
) -> tuple[bool, FollowUp | None]:
    """Release ``owner``'s lock, handing it to a follow-up deploy of the queued pushes if there are any.

    Returns ``(released, follow_up)``. ``released`` is ``False`` when ``owner`` did not hold the lock (already
    released: every exit path may call this, and the EventBridge rule calls it again after an abort).
    ``requeue_carried``: the owner ended without reaching its own ReleaseLock (aborted, timed out, crashed), so the
    pushes it carried were never deployed nor recorded: they go to the follow-up with the queued ones, not lost.
    """
    epoch = int(now.timestamp())
    machine = state_machine_arn or state_machine_of(owner)
    for _ in range(_ATTEMPTS):
        record = table.read(environment)
        if record is None:
            return False, None
        if record.owner != owner:
            if record.handed_off_by == owner:  # our hand-off committed; make sure the follow-up started
                follow_up = _follow_up(record.environment, owner, record.carried, machine)
                start(follow_up, machine)
                return True, follow_up
            return False, None
        queued = coalesce([*record.carried.values(), *record.pending.values()]) if requeue_carried else record.pending
        if not queued:
            if table.delete_if_idle(record):
                return True, None
            continue
        follow_up = _follow_up(record.environment, owner, queued, machine)
        if table.hand_off(record, follow_up, now=epoch, ttl_s=ttl_s):
            start(follow_up, machine)
            return True, follow_up
    raise AwsThrottledError(f"lock of {environment} kept changing under {_ATTEMPTS} attempts; retry")


def _follow_up(environment: str, owner: str, pushes: Mapping[str, Push], machine: str) -> FollowUp:
    ordered = list(coalesce(pushes.values()).values())
    name = follow_up_name(environment, owner, ordered)
    return FollowUp(
        execution_name=name,
        execution_arn=execution_of(machine, name),
        environment=environment,  # type: ignore[arg-type]
        pushes=ordered,
        after=owner,
    )


# ----------------------------------------------------------------------------------------------- what the steps call
def take(
    request: LockRequest,
    *,
    table_name: str,
    region: str,
    now: datetime,
    ttl_s: int,
    grace_s: int,
    degraded: bool = False,
) -> LockResult:
    """:func:`acquire` on the ledger table, owners' status from Step Functions; a cleared orphan is logged and counted
    (the deploy's and the off-hours' AcquireLock both call this). ``degraded``: see :func:`acquire`."""
    result = acquire(
        LockTable(table_name, region=region),
        request,
        now=now,
        ttl_s=ttl_s,
        grace_s=grace_s,
        status_of=lambda arn: execution_status(arn, region=region),
        degraded=degraded,
    )
    if result.cleared_orphan:
        logger.warning("cleared an orphaned lock", extra={"orphan": result.cleared_orphan})
        metrics.add_metric(name="OrphanLocksCleared", unit="Count", value=1)
    return result


def take_or_wait(
    request: LockRequest,
    *,
    started_at: datetime,
    wait_s: int,
    table_name: str,
    region: str,
    now: datetime,
    ttl_s: int,
    grace_s: int,
    who: str,
) -> WaitedLock:
    """:func:`take` for a machine that waits for the lock rather than queueing (off-hours scaling, provisioning):
    held by someone else, the ASL waits and asks again until ``wait_s`` after the execution started; then
    :class:`LockHeldError` naming the holder and ``who`` gave up."""
    deadline = started_at + timedelta(seconds=wait_s)
    result = take(request, table_name=table_name, region=region, now=now, ttl_s=ttl_s, grace_s=grace_s)
    acquired = result.outcome is LockOutcome.ACQUIRED
    if not acquired and now >= deadline:
        raise LockHeldError(
            f"{request.environment} is still locked by {result.holder} at {now.isoformat()} "
            f"({wait_s} s after this execution started): {who} gave up"
        )
    logger.info("lock", extra={"outcome": result.outcome.value, "holder": result.holder})
    return WaitedLock(
        environment=request.environment,
        acquired=acquired,
        holder=result.holder,
        deadline=deadline,
        cleared_orphan=result.cleared_orphan,
        lease=result.lease,
    )


def give_back(
    environment: str,
    owner: str,
    *,
    outcome: str,
    table_name: str,
    region: str,
    now: datetime,
    ttl_s: int,
    state_machine_arn: str | None,
    requeue_carried: bool = False,
) -> ReleaseLockResult:
    """:func:`release` on the ledger table, a follow-up started on ``state_machine_arn`` (the deploy's and the
    off-hours' ReleaseLock both call this). ``requeue_carried``: see :func:`release`."""
    released, follow_up = release(
        LockTable(table_name, region=region),
        environment=environment,
        owner=owner,
        now=now,
        ttl_s=ttl_s,
        state_machine_arn=state_machine_arn,
        start=lambda f, machine: start_follow_up(f, machine, region=region),
        requeue_carried=requeue_carried,
    )
    logger.info(
        "lock released" if released else "lock was not held by this execution",
        extra={"outcome": outcome, "follow_up": follow_up.execution_name if follow_up else None},
    )
    return ReleaseLockResult(environment=environment, released=released, follow_up=follow_up)  # type: ignore[arg-type]


def give_back_to_deploys(event: LockStepInput, settings: Settings) -> ReleaseLockResult:
    """ReleaseLock of a state machine that is not the deploy's (provisioning, off-hours), on every exit path after
    its AcquireLock: deploy pushes queued meanwhile start a follow-up on the *deploy* state machine
    (``deploy_state_machine_arn``), never on the caller's."""
    if not event.deploy_state_machine_arn:
        raise ConfigurationError("ReleaseLock needs deploy_state_machine_arn (DefinitionSubstitutions)")
    return give_back(
        event.environment,
        event.execution_arn,
        outcome=event.outcome,
        table_name=settings.ledger_table_name,
        region=settings.region,
        now=event.now,
        ttl_s=settings.gates.lock_ttl_s,
        state_machine_arn=event.deploy_state_machine_arn,
    )
