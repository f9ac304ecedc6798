"""A stateful property test of the queue, the lock and the degraded mark (issue 12): hypothesis interleaves pushes
(including several in one second), deploys that end well or badly, crashes and the execution-status events that
clean up after them, failed rollbacks, operator rollbacks and acknowledgements, DynamoDB throttling and the passing
of time, and checks after every step:

* no push is lost: the newest push of every service is deployed or recorded, or queued (pending or carried);
* the lock is free, held by a RUNNING execution, or parked while (and only while) the environment is degraded;
* nothing is applied while the environment is degraded;
* leases: a RUNNING owner's lease token never changes, however much time passes (takeover attempts while it runs
  queue or are refused); a fenced write (the ledger's, through :func:`controlplane.aws.lock.fence`) or a renewal
  succeeds exactly when its lease is the lock's current one: a holder that lost its lease writes nothing;
* bake: the last-known-good pointer only ever names a release that baked (a regression during bake is recorded
  rolled back, the pointer unchanged), so a rollback target is always a release proven healthy.

Real code against moto's DynamoDB: :mod:`controlplane.aws.lock` (acquire, sequence_for, release with hand-off,
renew, fence) and the ledger (put_planned, promote, record_failure, the degraded mark, all fenced by the lease).
Step Functions is modelled: an execution is a status in a dict, a step that raised
``AwsThrottledError`` is retried as the state machine's Retry would.

Time passes beyond the lock's TTL too: a RUNNING execution's lock is never taken (DescribeExecution is the proof of
life); an ended one's is, by the next acquirer or the execution-status rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import pytest
from botocore.exceptions import ClientError
from controlplane.aws import lock
from controlplane.aws.ledger import Ledger
from controlplane.errors import AwsThrottledError, LockLostError
from controlplane.models.lease import Lease
from controlplane.models.lock import FollowUp, LockOutcome, LockPurpose, LockRequest, Push
from controlplane.models.release import Degraded, ReleaseRecord, ReleaseStatus, Trigger, TriggerKind
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from moto import mock_aws

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ENV = "staging"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:sts-deploy"
TTL_S = 4 * 3600
GRACE_S = 60
SERVICES = ["edc-service", "api-gateway", "analytics-service"]
T = TypeVar("T")


class ThrottlingClient:
    """A DynamoDB client whose next ``throttled`` calls fail with ThrottlingException, as DynamoDB does."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.throttled = 0

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def maybe_throttled(*args: Any, **kwargs: Any) -> Any:
            if self.throttled > 0:
                self.throttled -= 1
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, name)
            return call(*args, **kwargs)

        return maybe_throttled


def retried(step: Callable[[], T], attempts: int = 20) -> T:
    """A task under the state machine's transient Retry."""
    for _ in range(attempts - 1):
        try:
            return step()
        except AwsThrottledError:
            continue
    return step()


class Environment(RuleBasedStateMachine):
    """One example: a fresh ledger table (its own name) in the test's moto world, so nothing carries over."""

    def __init__(self, ddb: Any, table: str) -> None:
        super().__init__()
        self.ddb = ddb
        self.table_name = table
        ddb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        self.client = ThrottlingClient(ddb)
        self.table = lock.LockTable(table, client=self.client)  # type: ignore[arg-type]
        self.ledger = Ledger(table, client=ddb)
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        self.status: dict[str, str] = {}
        self.ids = itertools.count(1)
        self.newest: dict[str, Push] = {}
        self.handled: dict[str, int] = {}  # service -> newest sequence deployed or recorded as failed
        self.applied_while_degraded: list[str] = []
        self.leases: dict[str, Lease] = {}  # owner -> the lease AcquireLock granted it
        self.running_tokens: dict[str, int] = {}  # a RUNNING owner -> the token it held when first seen
        self.baked: set[str] = set()  # releases that stayed healthy through their bake period

    def teardown(self) -> None:
        self.ddb.delete_table(TableName=self.table_name)

    # ------------------------------------------------------------------------------------------------ helpers
    def _arn(self, prefix: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:execution:sts-deploy:{prefix}-{next(self.ids)}"

    def _degraded(self) -> bool:
        return self.ledger.degraded(ENV) is not None

    def _start(self, follow_up: FollowUp, machine: str) -> None:
        del machine
        self.status.setdefault(follow_up.execution_arn, "RUNNING")

    def _acquire(self, request: LockRequest) -> Any:
        degraded = self._degraded()
        result = retried(
            lambda: lock.acquire(
                self.table,
                request,
                now=self.now,
                ttl_s=TTL_S,
                grace_s=GRACE_S,
                status_of=self.status.get,
                degraded=degraded,
            )
        )
        if result.outcome is LockOutcome.ACQUIRED and request.purpose is LockPurpose.DEPLOY and degraded:
            self.applied_while_degraded.append(request.owner)
        if result.outcome is LockOutcome.ACQUIRED:
            assert result.lease is not None
            self.leases[request.owner] = result.lease
        return result

    def _fenced(self, lease: Lease) -> Ledger:
        """The ledger as the lease's holder writes it (behind the fence), over the throttling client."""
        return Ledger(self.table_name, client=self.client, fence=lock.fence(lease))  # type: ignore[arg-type]

    def _holds(self, lease: Lease) -> bool:
        record = retried(lambda: self.table.read(ENV))
        return record is not None and (record.owner, record.lease) == (lease.owner, lease.token)

    def _planned(self, release_id: str, owner: str) -> ReleaseRecord:
        return ReleaseRecord(
            release_id=release_id,
            environment=ENV,
            images={"edc-service": f"sha256:{next(self.ids):064x}"},
            bundle_hash="bundle",
            status=ReleaseStatus.PLANNED,
            trigger=Trigger(kind=TriggerKind.ECR_PUSH, reason="push"),
            execution_arn=owner,
            started_at=self.now,
        )

    def _release(self, owner: str, *, requeue_carried: bool = False) -> None:
        retried(
            lambda: lock.release(
                self.table,
                environment=ENV,
                owner=owner,
                now=self.now,
                ttl_s=TTL_S,
                state_machine_arn=MACHINE,
                start=self._start,
                requeue_carried=requeue_carried,
            )
        )

    def _handled(self, carried: dict[str, Push]) -> None:
        for service, push in carried.items():
            self.handled[service] = max(self.handled.get(service, 0), push.sequence)

    def _running_owner(self) -> str | None:
        record = retried(lambda: self.table.read(ENV))
        if record is None or lock.is_parked(record) or self.status.get(record.owner) != "RUNNING":
            return None
        return record.owner

    # -------------------------------------------------------------------------------------------------- rules
    @initialize()
    def start_clean(self) -> None:
        assert retried(lambda: self.table.read(ENV)) is None

    @rule(service=st.sampled_from(SERVICES), same_second=st.booleans())
    def push(self, service: str, same_second: bool) -> None:
        """An ECR push starts an execution; two pushes may share their second (the event's time resolution)."""
        if not same_second:
            self.now += timedelta(seconds=1)
        arn = self._arn("push")
        self.status[arn] = "RUNNING"
        digest = f"sha256:{next(self.ids):064x}"
        sequence = retried(lambda: self.table.sequence_for(ENV, request_id=arn, at_s=int(self.now.timestamp())))
        push = Push(service=service, reference=digest, sequence=sequence)
        if service not in self.newest or sequence > self.newest[service].sequence:
            self.newest[service] = push
        result = self._acquire(LockRequest(environment=ENV, owner=arn, pushes=[push]))
        if result.outcome is not LockOutcome.ACQUIRED:
            self.status[arn] = "SUCCEEDED"  # QueuedBehindLockHolder

    @rule()
    def follow_up_acquires(self) -> None:
        """A started follow-up runs its AcquireLock (re-entrant: it was handed the lock)."""
        record = retried(lambda: self.table.read(ENV))
        if record is None or self.status.get(record.owner) != "RUNNING" or record.handed_off_by is None:
            return
        pushes = list(record.carried.values())
        if not pushes:
            return
        result = self._acquire(LockRequest(environment=ENV, owner=record.owner, pushes=pushes))
        if result.outcome is not LockOutcome.ACQUIRED:
            self.status[record.owner] = "SUCCEEDED"

    @rule(outcome=st.sampled_from(["baked", "regressed_during_bake", "failed"]))
    def deploy_ends(self, outcome: str) -> None:
        """The owner plans and deploys what it carries, through the ledger fenced by its lease: it stays healthy
        through its bake period (last known-good), regresses while baking, or fails its rollout (both rolled back to
        the last known-good: recorded in one transaction, the pointer unchanged); then ReleaseLock."""
        owner = self._running_owner()
        if owner is None or owner not in self.leases:
            return  # a follow-up runs its AcquireLock (and gets its lease) first
        record = retried(lambda: self.table.read(ENV))
        assert record is not None
        ledger = self._fenced(self.leases[owner])
        release_id = f"rel-{next(self.ids)}"
        retried(lambda: ledger.put_planned(self._planned(release_id, owner)))
        lkg = retried(lambda: self.ledger.last_known_good(ENV))
        current = lkg.release_id if lkg else None
        if outcome == "baked":
            retried(
                lambda: ledger.promote(
                    ENV,
                    release_id,
                    expected_previous=current,
                    execution_arn=owner,
                    now=self.now,
                    release_fields={"status": ReleaseStatus.SUCCEEDED},
                )
            )
            self.baked.add(release_id)
        else:
            retried(
                lambda: ledger.record_failure(
                    ENV,
                    release_id,
                    release_fields={"status": ReleaseStatus.ROLLED_BACK if current else ReleaseStatus.FAILED},
                    quarantine={"edc-service": f"sha256:{next(self.ids):064x}"},
                    cause=f"RolloutFailedError: {outcome}",
                    rolled_back_to=current,
                    degraded=None,
                    execution_arn=owner,
                    now=self.now,
                )
            )
        self._handled(record.carried)
        self._release(owner)
        self.status[owner] = "SUCCEEDED" if outcome == "baked" else "FAILED"

    @rule(pick=st.integers(min_value=0, max_value=10**6), renew=st.booleans())
    def a_holder_writes(self, pick: int, renew: bool) -> None:
        """Any execution that was ever granted a lease (the current holder, or one whose lock ended, was taken over
        or handed on) renews it or writes behind it: it succeeds exactly when the lease is still the lock's."""
        if not self.leases:
            return
        lease = self.leases[sorted(self.leases)[pick % len(self.leases)]]
        holds = self._holds(lease)
        release_id = f"rel-w-{next(self.ids)}"
        try:
            if renew:
                retried(lambda: lock.renew(self.table, lease, now=self.now, ttl_s=TTL_S))
            else:
                retried(lambda: self._fenced(lease).put_planned(self._planned(release_id, lease.owner)))
        except LockLostError:
            assert not holds, f"{lease.owner} holds the lock, yet its fenced write was refused"
            assert self.ledger.get_release(release_id) is None, "a holder that lost its lease wrote"
            return
        assert holds, f"{lease.owner} no longer holds the lock (lease {lease.token}), yet its write went through"

    @rule()
    def rollback_fails(self) -> None:
        """The owner's rollback failed: degraded mark, then its ReleaseLock (which may hand the queue on)."""
        owner = self._running_owner()
        if owner is None:
            return
        record = retried(lambda: self.table.read(ENV))
        assert record is not None
        self._handled(record.carried)  # recorded: rollback_failed
        self.ledger.mark_degraded(
            Degraded(environment=ENV, since=self.now, cause="RollbackFailedError: test", execution_arn=owner)
        )
        self._release(owner)
        self.status[owner] = "FAILED"

    @rule()
    def execution_crashes(self) -> None:
        """The owner dies without releasing (Lambda crash, abort); the execution-status rule cleans up after it."""
        owner = self._running_owner()
        if owner is None:
            return
        self.status[owner] = "ABORTED"
        self._release(owner, requeue_carried=True)  # release_lock_after_execution

    @rule(acknowledge=st.booleans())
    def operator_acts(self, acknowledge: bool) -> None:
        """An operator rollback (or acknowledgement) of a degraded environment, when it can take the lock."""
        arn = self._arn("operator")
        self.status[arn] = "RUNNING"
        result = self._acquire(LockRequest(environment=ENV, owner=arn, purpose=LockPurpose.ROLLBACK))
        if result.outcome is not LockOutcome.ACQUIRED:
            self.status[arn] = "FAILED"  # gave up waiting; nothing held
            return
        self.ledger.clear_degraded(ENV)  # RecordRestored, or the acknowledgement
        self._release(arn)
        self.status[arn] = "SUCCEEDED"

    @rule(calls=st.integers(min_value=1, max_value=4))
    def dynamodb_throttles(self, calls: int) -> None:
        self.client.throttled = calls

    @rule(minutes=st.integers(min_value=1, max_value=6 * 60))  # past the lock's 4 h TTL too
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    # ---------------------------------------------------------------------------------------------- invariants
    @invariant()
    def every_invariant_holds(self) -> None:
        """All of them after every step, on one read of the lock (each DynamoDB call through moto costs a few ms)."""
        record = retried(lambda: self.table.read(ENV))
        self.no_push_is_lost(record)
        self.the_lock_is_free_held_by_a_live_execution_or_parked_while_degraded(record)
        self.nothing_is_applied_while_degraded()
        self.a_running_owners_lease_never_changes(record)
        self.last_known_good_is_always_a_baked_release()

    def no_push_is_lost(self, record: Any) -> None:
        for service, push in self.newest.items():
            covered = [self.handled.get(service, 0)]
            if record is not None:
                covered += [p.sequence for p in (record.pending.get(service), record.carried.get(service)) if p]
            assert max(covered) >= push.sequence, f"the newest push of {service} is neither handled nor queued"

    def the_lock_is_free_held_by_a_live_execution_or_parked_while_degraded(self, record: Any) -> None:
        if record is None:
            return
        if lock.is_parked(record):
            assert self._degraded(), "parked while the environment is not degraded"
        else:
            assert self.status.get(record.owner) == "RUNNING", f"held by {record.owner}, which is not running"

    def nothing_is_applied_while_degraded(self) -> None:
        assert self.applied_while_degraded == []

    def a_running_owners_lease_never_changes(self, record: Any) -> None:
        """Time passes beyond the TTL and others try to take the lock: a RUNNING owner keeps its token."""
        if record is None or self.status.get(record.owner) != "RUNNING":
            return
        first = self.running_tokens.setdefault(record.owner, record.lease)
        assert record.lease == first, f"{record.owner} is RUNNING but its lease moved {first} -> {record.lease}"

    def last_known_good_is_always_a_baked_release(self) -> None:
        lkg = retried(lambda: self.ledger.last_known_good(ENV))
        assert lkg is None or lkg.release_id in self.baked, f"{lkg} never baked, yet it is last known-good"


def test_queue_lock_and_degraded_mark_under_interleavings() -> None:
    """Examples: the loaded hypothesis profile's (``ci``: 50; ``HYPOTHESIS_PROFILE=soak``: 300). One moto world for
    the run, a fresh table per example: an example costs its steps, not a moto start, reset and two new clients."""
    tables = itertools.count(1)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        run_state_machine_as_test(
            lambda: Environment(ddb, f"ledger-{next(tables)}"),
            settings=settings(
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
