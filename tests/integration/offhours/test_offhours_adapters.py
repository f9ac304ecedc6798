"""The node-group and sleep-ledger adapters on moto: sizes written exactly once, snapshots never overwritten."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from controlplane.aws import nodegroups
from controlplane.aws.offhours import OffhoursLedger, OffhoursStateConflictError
from controlplane.errors import ConfigurationError
from controlplane.models.kube import ObjectRef
from controlplane.models.offhours import SleepStatus, Snapshot, StayAwake, WorkloadSnapshot
from moto import mock_aws

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 19, 0, tzinfo=UTC)
REF = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="clinical-trials", name="edc-service")


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="ledger",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        eks = boto3.client("eks", region_name="us-east-1")
        eks.create_cluster(
            name="c", roleArn="arn:aws:iam::123456789012:role/c", resourcesVpcConfig={"subnetIds": ["s-1"]}
        )
        eks.create_nodegroup(
            clusterName="c",
            nodegroupName="general",
            scalingConfig={"minSize": 2, "maxSize": 3, "desiredSize": 2},
            instanceTypes=["t3.medium"],
            capacityType="ON_DEMAND",
            nodeRole="arn:aws:iam::123456789012:role/n",
            subnets=["s-1"],
        )
        yield


def snapshot(replicas: int, arn: str = "arn:aws:states:us-east-1:123456789012:execution:offhours:one") -> Snapshot:
    return Snapshot(
        environment="staging",
        taken_at=T0,
        execution_arn=arn,
        workloads=(WorkloadSnapshot(ref=REF, replicas=replicas, sleep_replicas=0),),
    )


def test_node_groups_are_listed_with_their_scaling_config_and_type(aws: None) -> None:
    (group,) = nodegroups.list_nodegroups("c", region="us-east-1")
    assert (group.name, group.min_size, group.max_size, group.desired_size) == ("general", 2, 3, 2)
    assert group.instance_types == ("t3.medium",)
    assert group.capacity_type == "ON_DEMAND"


def test_resizing_writes_once_and_a_repeat_changes_nothing(aws: None) -> None:
    assert nodegroups.resize("c", "general", min_size=0, max_size=3, desired=0, region="us-east-1")
    assert not nodegroups.resize("c", "general", min_size=0, max_size=3, desired=0, region="us-east-1")
    group = nodegroups.describe_nodegroup("c", "general", region="us-east-1")
    assert (group.min_size, group.max_size, group.desired_size) == (0, 3, 0)


@pytest.mark.parametrize(("low", "high", "desired"), [(1, 3, 0), (0, 0, 0), (0, 2, 3)])
def test_sizes_eks_would_reject_are_refused_before_any_call(aws: None, low: int, high: int, desired: int) -> None:
    with pytest.raises(ConfigurationError, match="general"):
        nodegroups.resize("c", "general", min_size=low, max_size=high, desired=desired, region="us-east-1")


def test_a_second_snapshot_while_asleep_returns_the_first(aws: None) -> None:
    ledger = OffhoursLedger("ledger", region="us-east-1")
    first, created = ledger.begin_sleep(snapshot(3), now=T0)
    again, created_again = ledger.begin_sleep(snapshot(0), now=T0 + timedelta(minutes=5))
    assert created
    assert not created_again
    assert again.snapshot == first.snapshot
    assert again.snapshot is not None
    assert again.snapshot.workloads[0].replicas == 3


def test_only_a_finished_wake_allows_a_new_snapshot(aws: None) -> None:
    ledger = OffhoursLedger("ledger", region="us-east-1")
    ledger.begin_sleep(snapshot(3), now=T0)
    waking = ledger.set_status("staging", SleepStatus.WAKING, expected=(SleepStatus.ASLEEP,), now=T0)
    assert waking is not None
    assert waking.status is SleepStatus.WAKING
    _, created = ledger.begin_sleep(snapshot(0), now=T0)
    assert not created  # a half-finished wake: the snapshot still rules
    ledger.set_status("staging", SleepStatus.AWAKE, expected=(SleepStatus.WAKING,), now=T0 + timedelta(hours=1))
    record, created = ledger.begin_sleep(snapshot(5), now=T0 + timedelta(hours=2))
    assert created
    assert record.snapshot is not None
    assert record.snapshot.workloads[0].replicas == 5


def test_waking_an_awake_environment_is_a_no_op(aws: None) -> None:
    ledger = OffhoursLedger("ledger", region="us-east-1")
    assert ledger.set_status("staging", SleepStatus.WAKING, expected=(SleepStatus.ASLEEP,), now=T0) is None


def test_a_stale_snapshot_rebase_is_refused(aws: None) -> None:
    ledger = OffhoursLedger("ledger", region="us-east-1")
    record, _ = ledger.begin_sleep(snapshot(3), now=T0)
    ledger.replace_snapshot(record, snapshot(4))
    with pytest.raises(OffhoursStateConflictError):
        ledger.replace_snapshot(record, snapshot(5))


def test_stay_awake_and_events_are_kept_in_the_ledger(aws: None) -> None:
    ledger = OffhoursLedger("ledger", region="us-east-1")
    override = StayAwake(environment="staging", until=T0 + timedelta(hours=2), requested_by="ana", requested_at=T0)
    ledger.put_stay_awake(override)
    ledger.record_event("staging", at=T0, execution_arn="arn:x:execution:sm:e1", action="down", outcome="SKIPPED",
                        detail={"reason": "demo"})  # fmt: skip
    assert ledger.stay_awake("staging") == override
    (event,) = ledger.events("staging")
    assert (event["action"], event["outcome"], event["detail"]) == ("down", "SKIPPED", {"reason": "demo"})
