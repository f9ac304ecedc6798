"""One deploy per environment: the lock, the queue behind it, coalescing, hand-off, orphans (moto DynamoDB + SFN)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from controlplane.aws import lock
from controlplane.aws.ledger import Ledger
from controlplane.aws.lock import LockTable
from controlplane.errors import LockLostError
from controlplane.models.lock import AcquireLockInput, LockOutcome, LockPurpose, ReleaseLockInput
from controlplane.models.release import ReleaseRecord, ReleaseStatus, Trigger, TriggerKind
from controlplane.steps.lock import acquire_lock, release_lock, release_lock_after_execution

from .conftest import REGION, TABLE, ecr_push, start

pytestmark = pytest.mark.integration

D = ["sha256:" + format(i, "x") * 64 for i in range(1, 8)]
T0 = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)


def acquire(arn: str, payload: dict, *, now: datetime = T0, purpose: LockPurpose = LockPurpose.DEPLOY):
    return acquire_lock(
        AcquireLockInput(
            input=payload,
            execution_arn=arn,
            started_at=now,
            now=now,
            purpose=purpose,
            environment="staging" if purpose is not LockPurpose.DEPLOY else None,
        )
    )


def planned(release_id: str, execution_arn: str) -> ReleaseRecord:
    return ReleaseRecord(
        release_id=release_id,
        environment="staging",
        images={"edc-service": D[0]},
        bundle_hash="h",
        status=ReleaseStatus.PLANNED,
        trigger=Trigger(kind=TriggerKind.ECR_PUSH, reason="push"),
        execution_arn=execution_arn,
        started_at=T0,
    )


def table() -> LockTable:
    return LockTable(TABLE, region=REGION)


def executions(machine: str) -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    found = sfn.list_executions(stateMachineArn=machine)["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in found]


def test_first_deploy_takes_the_lock_and_a_second_queues_behind_it(deploy_machine: str) -> None:
    first = start(deploy_machine, "first")
    second = start(deploy_machine, "second")

    a = acquire(first, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))
    b = acquire(second, ecr_push("api-gateway", D[1], time="2025-11-26T10:00:05Z"))

    assert a.outcome is LockOutcome.ACQUIRED
    assert b.outcome is LockOutcome.QUEUED
    assert b.holder == first
    assert b.queued == ["api-gateway"]
    record = table().read("staging")
    assert record is not None
    assert record.owner == first
    assert set(record.carried) == {"edc-service"}
    assert {s: p.reference for s, p in record.pending.items()} == {"api-gateway": D[1]}


def test_acquiring_again_from_the_same_execution_is_a_no_op(deploy_machine: str) -> None:
    first = start(deploy_machine, "first")
    payload = ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z")

    assert acquire(first, payload).outcome is LockOutcome.ACQUIRED
    assert acquire(first, payload).outcome is LockOutcome.ACQUIRED

    record = table().read("staging")
    assert record is not None
    assert record.pending == {}


def test_two_pushes_of_different_services_end_deployed_by_one_follow_up_after_the_holder(deploy_machine: str) -> None:
    holder = start(deploy_machine, "holder")
    acquire(holder, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))
    acquire(start(deploy_machine, "p1"), ecr_push("api-gateway", D[1], time="2025-11-26T10:00:01Z"))
    acquire(start(deploy_machine, "p2"), ecr_push("quality-service", D[2], time="2025-11-26T10:00:02Z"))

    result = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0))

    assert result.released
    assert result.follow_up is not None
    follow = [e for e in executions(deploy_machine) if e["executionArn"] == result.follow_up.execution_arn]
    assert len(follow) == 1
    payload = json.loads(follow[0]["input"])
    assert payload["services"] == {"api-gateway": D[1], "quality-service": D[2]}
    record = table().read("staging")
    assert record is not None
    assert record.owner == result.follow_up.execution_arn  # handed over: nobody can slip in between
    assert record.pending == {}
    assert record.handed_off_by == holder
    # The follow-up itself acquires re-entrantly, then releases with nothing queued.
    assert acquire(result.follow_up.execution_arn, payload).outcome is LockOutcome.ACQUIRED
    done = release_lock(ReleaseLockInput(environment="staging", owner=result.follow_up.execution_arn, now=T0))
    assert done.released
    assert done.follow_up is None
    assert table().read("staging") is None


def test_five_rapid_pushes_of_one_service_coalesce_to_the_newest_digest(deploy_machine: str) -> None:
    holder = start(deploy_machine, "holder")
    acquire(holder, ecr_push("api-gateway", D[6], time="2025-11-26T09:59:00Z"))
    times = ["10:00:04", "10:00:01", "10:00:03", "10:00:00", "10:00:02"]  # delivered out of order
    for i, t in enumerate(times):
        outcome = acquire(start(deploy_machine, f"push{i}"), ecr_push("edc-service", D[i], time=f"2025-11-26T{t}Z"))
        assert outcome.outcome is LockOutcome.QUEUED

    result = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0))

    assert result.follow_up is not None
    assert [(p.service, p.reference) for p in result.follow_up.pushes] == [("edc-service", D[0])]  # 10:00:04 wins


def test_two_pushes_of_one_service_in_the_same_second_are_ordered_by_arrival_and_none_is_dropped(
    deploy_machine: str,
) -> None:
    holder = start(deploy_machine, "holder")
    acquire(holder, ecr_push("api-gateway", D[6], time="2025-11-26T09:59:00Z"))
    first = ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z")
    second = ecr_push("edc-service", D[1], time="2025-11-26T10:00:00Z")  # the event time has one-second resolution

    assert acquire(start(deploy_machine, "a"), first).outcome is LockOutcome.QUEUED
    assert acquire(start(deploy_machine, "b"), second).outcome is LockOutcome.QUEUED
    record = table().read("staging")
    assert record is not None
    assert record.pending["edc-service"].reference == D[1]  # the later arrival is newer, not dropped
    # EventBridge delivers at least once: the first event again keeps its number and does not replace the second
    assert acquire(start(deploy_machine, "a-again"), first).outcome is LockOutcome.QUEUED
    again = table().read("staging")
    assert again is not None
    assert again.pending["edc-service"].reference == D[1]

    result = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0))
    assert result.follow_up is not None
    assert [(p.service, p.reference) for p in result.follow_up.pushes] == [("edc-service", D[1])]


def test_sequences_are_distinct_per_request_and_stable_for_the_same_request(deploy_machine: str) -> None:
    del deploy_machine
    at_s = int(T0.timestamp())
    numbers = [table().sequence_for("staging", request_id=f"evt-{i}", at_s=at_s) for i in range(5)]
    assert numbers == sorted(set(numbers))
    assert all(n // 1_000_000 == at_s for n in numbers)
    assert table().sequence_for("staging", request_id="evt-2", at_s=at_s + 60) == numbers[2]
    assert table().sequence_for("staging", request_id="evt-9", at_s=at_s - 1) < numbers[0]  # an older second


def test_a_push_older_than_the_one_being_deployed_is_not_queued_again(deploy_machine: str) -> None:
    holder = start(deploy_machine, "holder")
    acquire(holder, ecr_push("edc-service", D[1], time="2025-11-26T10:00:05Z"))

    late = acquire(start(deploy_machine, "late"), ecr_push("edc-service", D[0], time="2025-11-26T10:00:01Z"))
    duplicate = acquire(start(deploy_machine, "dup"), ecr_push("edc-service", D[1], time="2025-11-26T10:00:05Z"))

    assert late.outcome is LockOutcome.QUEUED
    assert duplicate.outcome is LockOutcome.QUEUED
    record = table().read("staging")
    assert record is not None
    assert record.pending == {}
    released = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0))
    assert released.follow_up is None


def test_release_is_safe_to_repeat_and_a_non_owner_releases_nothing(deploy_machine: str) -> None:
    holder = start(deploy_machine, "holder")
    acquire(holder, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))
    acquire(start(deploy_machine, "q"), ecr_push("api-gateway", D[1], time="2025-11-26T10:00:01Z"))

    first = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0))
    again = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0))
    stranger = release_lock(
        ReleaseLockInput(
            environment="staging", owner="arn:aws:states:us-east-1:123456789012:execution:deploy:x", now=T0
        )
    )

    assert first.follow_up is not None
    assert again.follow_up == first.follow_up
    assert len([e for e in executions(deploy_machine) if e["name"] == first.follow_up.execution_name]) == 1
    assert not stranger.released


def test_an_orphan_lock_of_an_aborted_execution_is_cleared_and_its_work_is_not_lost(deploy_machine: str) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    orphan = start(deploy_machine, "orphan")
    acquire(orphan, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))
    sfn.stop_execution(executionArn=orphan)  # aborted: its Catch never ran

    newcomer = start(deploy_machine, "newcomer")
    result = acquire(newcomer, ecr_push("api-gateway", D[1], time="2025-11-26T10:00:05Z"))

    assert result.outcome is LockOutcome.ACQUIRED
    assert result.cleared_orphan == orphan
    record = table().read("staging")
    assert record is not None
    assert {s: p.reference for s, p in record.pending.items()} == {"edc-service": D[0]}  # redeployed next


def test_a_running_executions_lock_is_never_taken_however_long_it_waits(deploy_machine: str) -> None:
    """Scenario 1 of issue 12: a production deploy waiting for approval longer than the lock's TTL keeps its lock
    (DescribeExecution says RUNNING); the next push queues behind it instead of deploying alongside."""
    slow = start(deploy_machine, "slow")
    held = acquire(slow, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z")).lease
    assert held is not None

    later = T0 + timedelta(hours=5)  # past the 4 h TTL
    result = acquire(
        start(deploy_machine, "later"), ecr_push("api-gateway", D[1], time="2025-11-26T15:00:00Z"), now=later
    )

    assert result.outcome is LockOutcome.QUEUED
    assert result.holder == slow
    record = table().read("staging")
    assert record is not None
    assert record.owner == slow
    renewed = lock.renew(table(), held, now=later, ttl_s=3600)  # VerifyApproval / ApplyRelease go on
    assert (renewed.owner, renewed.lease, renewed.expires_at) == (slow, held.token, int(later.timestamp()) + 3600)
    forged = held.model_copy(update={"owner": "arn:aws:states:us-east-1:123456789012:execution:x:someone-else"})
    with pytest.raises(LockLostError, match=f"no longer holds the lock of staging .*held by {slow}"):
        lock.renew(table(), forged, now=later, ttl_s=3600)


def test_a_holder_whose_lease_was_taken_writes_nothing(deploy_machine: str) -> None:
    """Fencing: an execution that ended (aborted) without releasing loses its lock to the next deploy; a late write
    of the old holder (a Lambda still running, a retried step) is refused by the lease's condition, in the same
    transaction, so nothing of it lands: neither the release's status nor the last-known-good pointer."""
    old = start(deploy_machine, "old")
    old_lease = acquire(old, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z")).lease
    boto3.client("stepfunctions", region_name=REGION).stop_execution(executionArn=old)
    new = acquire(start(deploy_machine, "new"), ecr_push("api-gateway", D[1], time="2025-11-26T10:01:00Z"))
    assert new.outcome is LockOutcome.ACQUIRED
    assert new.cleared_orphan == old
    assert old_lease is not None
    assert new.lease is not None
    assert new.lease.token > old_lease.token
    Ledger(TABLE, region=REGION).put_planned(planned("rel-old", old))

    stale = Ledger(TABLE, region=REGION, fence=lock.fence(old_lease))
    with pytest.raises(LockLostError, match="no longer holds the lock of staging"):
        stale.promote(
            "staging",
            "rel-old",
            expected_previous=None,
            execution_arn=old,
            now=T0,
            release_fields={"status": ReleaseStatus.SUCCEEDED},
        )
    with pytest.raises(LockLostError):
        stale.update_release("rel-old", status=ReleaseStatus.FAILED)
    with pytest.raises(LockLostError):
        lock.renew(table(), old_lease, now=T0, ttl_s=3600)

    ledger = Ledger(TABLE, region=REGION)
    assert ledger.last_known_good("staging") is None
    assert ledger.require_release("rel-old").status is ReleaseStatus.PLANNED
    current = Ledger(TABLE, region=REGION, fence=lock.fence(new.lease))
    current.promote(
        "staging",
        "rel-old",
        expected_previous=None,
        execution_arn=old,
        now=T0,
        release_fields={"status": ReleaseStatus.SUCCEEDED},
    )
    assert ledger.require_release("rel-old").status is ReleaseStatus.SUCCEEDED
    lkg = ledger.last_known_good("staging")
    assert lkg is not None
    assert lkg.release_id == "rel-old"


def test_the_execution_status_change_event_releases_the_lock_of_an_aborted_deploy(deploy_machine: str) -> None:
    aborted = start(deploy_machine, "aborted")
    acquire(aborted, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))
    event = {
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {"executionArn": aborted, "stateMachineArn": deploy_machine, "status": "ABORTED"},
    }

    result = release_lock_after_execution(event)

    assert result is not None
    assert result.released
    # The aborted deploy never deployed what it carried: a follow-up deploys it (no push lost), holding the lock.
    assert result.follow_up is not None
    assert [(p.service, p.reference) for p in result.follow_up.pushes] == [("edc-service", D[0])]
    record = table().read("staging")
    assert record is not None
    assert record.owner == result.follow_up.execution_arn
    assert record.handed_off_by == aborted
    again = release_lock_after_execution(event)  # a redelivered event is harmless: the same follow-up, once
    assert again is not None
    assert again.follow_up == result.follow_up
    assert len([e for e in executions(deploy_machine) if e["executionArn"] == result.follow_up.execution_arn]) == 1


def test_rollback_and_scaling_wait_for_a_held_lock_instead_of_queueing(deploy_machine: str) -> None:
    deploy = start(deploy_machine, "deploy")
    acquire(deploy, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))

    held = acquire(start(deploy_machine, "scale"), {}, purpose=LockPurpose.SCALE)

    assert held.outcome is LockOutcome.HELD
    assert held.holder == deploy
    release_lock(ReleaseLockInput(environment="staging", owner=deploy, now=T0))
    assert acquire(start(deploy_machine, "scale2"), {}, purpose=LockPurpose.SCALE).outcome is LockOutcome.ACQUIRED


def test_a_push_for_another_environment_takes_no_lock(deploy_machine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TAG_RULES", '[{"tag": "v[0-9]*", "environment": "production"}, {"tag": "*", "environment": "staging"}]'
    )

    result = acquire(
        start(deploy_machine, "prod"), ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z", tag="v1.2.3")
    )

    assert result.outcome is LockOutcome.SKIPPED
    assert table().read("staging") is None


def test_a_deploy_whose_outcome_was_not_recorded_hands_what_it_carried_to_a_follow_up(deploy_machine: str) -> None:
    """RecordOutcome failed through its retries: the ledger may not name what the cluster runs, so the pushes the
    execution carried go to a follow-up (which deploys and records them again) instead of being released."""
    holder = start(deploy_machine, "holder")
    acquire(holder, ecr_push("edc-service", D[0], time="2025-11-26T10:00:00Z"))
    error = {"Error": "AwsThrottledError", "Cause": "dynamodb:TransactWriteItems: InternalServerError (transient)"}

    result = release_lock(ReleaseLockInput(environment="staging", owner=holder, now=T0, record_error=error))

    assert result.released
    assert result.follow_up is not None
    assert [(p.service, p.reference) for p in result.follow_up.pushes] == [("edc-service", D[0])]
    record = table().read("staging")
    assert record is not None
    assert (record.owner, record.handed_off_by) == (result.follow_up.execution_arn, holder)
