"""Off-hours scaling end to end: the real off-hours ASL in moto, our handlers, the emulator's node groups as EKS.

Each test starts from an empty account and a cluster whose nodes all belong to node groups (named as CloudFormation
names them). Time is the simulated clock: Wait states advance it (node boot, rollouts), so a night costs seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from controlplane.kube import offhours as kube_offhours
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.models.kube import ObjectRef

from local.cluster import Behaviour, Cluster, DenyRule
from local.offhours import (
    COMPUTE,
    GENERAL,
    NS,
    SCALE_DOWN_SCHEDULE,
    SCALE_UP_SCHEDULE,
    SPOT,
    OffhoursPipeline,
    config_parameter,
    offhours_pipeline,
)
from local.pipeline import pipeline

pytestmark = pytest.mark.e2e


ASLEEP_GROUPS = {GENERAL: (1, 3, 1), SPOT: (0, 3, 0), COMPUTE: (0, 2, 0)}


@pytest.fixture
def cluster() -> Iterator[Any]:
    with Cluster("sts-staging", default_nodes=False) as emulator:
        yield emulator


@pytest.fixture
def env(cluster: Any, request: pytest.FixtureRequest) -> Iterator[OffhoursPipeline]:
    """Staging after its first release; parametrized indirectly with a dict, that is the OffHoursConfig."""
    config = getattr(request, "param", None)
    overrides = {"OffHoursConfig": config_parameter(config)} if config else {}
    with offhours_pipeline(cluster, **overrides) as p:
        p.pipe.first_release()
        yield p


def subscribe(p: OffhoursPipeline) -> str:
    """An SQS queue subscribed to the notification topic (raw delivery); returns its URL."""
    sqs, sns = p.cloud.client("sqs"), p.cloud.client("sns")
    url = sqs.create_queue(QueueName="offhours-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=str(p.cloud.ref("NotificationTopic")), Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    return str(url)


def notifications(p: OffhoursPipeline, url: str) -> list[tuple[str, dict[str, Any]]]:
    """``(outcome attribute, body)`` of each message on the queue."""
    response = p.cloud.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return [
        (m.get("MessageAttributes", {}).get("outcome", {}).get("StringValue", ""), json.loads(m["Body"]))
        for m in response.get("Messages", [])
    ]


def test_down_then_up_restores_replicas_hpa_bounds_and_node_group_sizes_exactly(env: OffhoursPipeline) -> None:
    before = env.state()
    assert before["nodegroups"] == {GENERAL: (2, 3, 2), SPOT: (0, 3, 1), COMPUTE: (0, 2, 0)}

    down = env.run("down")

    assert down.status == "SUCCEEDED", (down.error, down.cause)
    asleep = env.state()
    assert set(asleep["workloads"].values()) == {0}
    assert asleep["hpas"] == before["hpas"]  # minReplicas cannot be 0: the HPA is inactive, bounds kept
    assert asleep["nodegroups"] == ASLEEP_GROUPS  # general keeps 1 (rule by name pattern), the rest go to 0
    assert env.ledger_item("LOCK") is None  # released

    up = env.run("up")

    assert up.status == "SUCCEEDED", (up.error, up.cause)
    assert env.state() == before
    entered = up.states_entered()
    assert entered.index("WaitForNodes") < entered.index("RestoreWave")  # nodes first, then workloads
    assert entered.count("RestoreWave") == 2  # the services, then the edge gateway
    assert up.output["all_awake"] is True
    assert len(up.output["awake"]) == 7
    assert up.output["awake"][-1] == f"Deployment.apps/{NS}/api-gateway"
    assert up.output["savings"]["node_hours"] > 0
    assert env.ledger_item("LOCK") is None


EXCLUDING = {
    "nodegroups": [{"match": "GeneralNodeGroup*", "desired": 1}, {"match": "*", "desired": 0}],
    "exclude": [f"{NS}/quality-service"],
    "exclude_nodegroups": ["ComputeIntensive*"],
}
NO_NODES = {"nodegroups": [{"match": "*", "desired": 0}]}


@pytest.mark.parametrize("env", [EXCLUDING], indirect=True, ids=["quality-service-excluded"])
def test_excluded_objects_are_untouched_and_a_repeated_scale_down_writes_nothing(env: OffhoursPipeline) -> None:
    before = env.state()
    first = env.run("down")
    assert first.status == "SUCCEEDED", (first.error, first.cause)
    asleep = env.state()
    versions = env.pipe.resource_versions()
    assert asleep["workloads"]["Deployment/quality-service"] == 1
    assert {k: v for k, v in asleep["workloads"].items() if "quality" not in k} == {
        k: 0 for k in before["workloads"] if "quality" not in k
    }
    assert f"Deployment.apps/{NS}/quality-service" in first.output["plan"]["excluded"]
    assert f"Nodegroup/{COMPUTE}" in first.output["plan"]["excluded"]

    again = env.run("down")

    assert again.status == "SUCCEEDED", (again.error, again.cause)
    assert again.output["plan"]["reused_snapshot"] is True
    assert again.output["workloads"]["changed"] == []
    assert again.output["nodegroups"]["changed"] == []
    assert env.pipe.resource_versions() == versions  # nothing written to the cluster
    assert env.state() == asleep
    up = env.run("up")
    assert up.status == "SUCCEEDED", (up.error, up.cause)
    assert env.state() == before


@pytest.mark.parametrize("env", [NO_NODES], indirect=True, ids=["every-group-to-zero"])
def test_without_nodes_pods_stay_pending_and_the_wake_health_gate_sees_them_only_after_nodes_return(
    env: OffhoursPipeline,
) -> None:
    assert env.run("down").status == "SUCCEEDED"
    env.cluster.advance(60)
    assert env.ready_nodes() == 0
    # someone scales a service up by hand while no node exists: its pod cannot be scheduled
    api = build_api_client(
        ClusterAccess(endpoint=env.cluster.endpoint, ca_data=env.cluster.ca_data, token=env.cluster.token())
    )
    try:
        ref = ObjectRef(api_version="apps/v1", kind="Deployment", namespace=NS, name="edc-service")
        kube_offhours.scale_workload(api, ref, 1, note=None)
    finally:
        api.close()
    env.cluster.advance(60)
    (pod,) = env.pods("edc-service")
    assert pod["status"]["phase"] == "Pending"
    assert any(c.get("reason") == "Unschedulable" for c in pod["status"]["conditions"])

    up = env.run("up")

    assert up.status == "SUCCEEDED", (up.error, up.cause)
    entered = up.states_entered()
    first_wave = entered.index("RestoreWave")
    assert "WaitForNodes" in entered[:first_wave]  # the health gate only starts once nodes are Ready
    checks = [e for e in up.history if e.type == "TaskStateExited" and e.state_name == "CheckNodes"]
    assert json.loads(checks[0].details["output"])["nodes"]["ready"] is False
    assert json.loads(checks[-1].details["output"])["nodes"]["ready"] is True
    assert up.output["all_awake"] is True
    assert {p["status"]["phase"] for p in env.pods("edc-service")} == {"Running"}
    assert env.ready_nodes() == 3


def test_a_workload_that_does_not_wake_is_reported_and_the_others_wake(env: OffhoursPipeline) -> None:
    before = env.state()
    assert env.run("down").status == "SUCCEEDED"
    env.cluster.images.set(env.pipe.digests["analytics-service"], Behaviour.crash_loop(exit_code=2))
    inbox = subscribe(env)

    up = env.run("up")

    assert up.status == "FAILED"
    assert up.error == "WorkloadsNotRestoredError"
    assert "analytics-service" in (up.cause or "")
    assert "CrashLoopBackOff" in (up.cause or "")
    assert "6 of 7 workloads awake" in (up.cause or "")
    assert env.state()["workloads"] == before["workloads"]  # every workload was restored; one does not run
    assert {p["status"]["phase"] for p in env.pods("api-gateway")} == {"Running"}  # the edge still woke, last
    ((outcome, body),) = notifications(env, inbox)
    assert outcome == "WAKE_PARTIAL"
    assert [o["ref"]["name"] for o in body["not_awake"]] == ["analytics-service"]
    assert env.ledger_item("LOCK") is None  # released before failing
    assert env.ledger_item("OFFHOURS")["status"]["S"] == "AWAKE"  # type: ignore[index]


def test_a_scheduled_scale_down_yields_to_a_stay_awake_override_until_it_ends(env: OffhoursPipeline) -> None:
    until = env.cluster.clock.utcnow() + timedelta(hours=3)
    override = env.run("stay_awake", until=until.isoformat(), reason="late demo")
    assert override.status == "SUCCEEDED", (override.error, override.cause)
    assert override.states_entered()[-2:] == ["ReleaseLockRecorded", "StayAwakeRecorded"]
    assert "AcquireLock" in override.states_entered()  # recorded behind the lock's lease

    skipped = env.fire(SCALE_DOWN_SCHEDULE)

    assert skipped.status == "SUCCEEDED", (skipped.error, skipped.cause)
    assert skipped.states_entered()[-4:] == ["RecordRequest", "WhatNext", "ReleaseLockSkipped", "ScaleDownSkipped"]
    assert "late demo" in skipped.output["reason"]
    assert env.ledger_item("LOCK") is None  # the override was read under the lock, and the lock given back
    assert set(env.workloads().values()) != {0}

    env.cluster.advance(3 * 3600 + 60, step=60)  # three idle hours: reconcile once a simulated minute
    slept = env.fire(SCALE_DOWN_SCHEDULE)

    assert slept.states_entered()[-1] == "Asleep"
    assert set(env.workloads().values()) == {0}


def test_the_schedules_fire_by_name_and_start_the_right_execution(env: OffhoursPipeline) -> None:
    scheduler = env.cloud.client("scheduler")
    down_schedule = scheduler.get_schedule(Name=SCALE_DOWN_SCHEDULE)
    assert down_schedule["State"] == "ENABLED"  # staging: enabled by default
    assert down_schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert down_schedule["ScheduleExpression"] == "cron(0 20 ? * MON-FRI *)"
    assert down_schedule["Target"]["Arn"] == env.cloud.ref("OffHoursStateMachine")

    down = env.fire(SCALE_DOWN_SCHEDULE)

    assert down.status == "SUCCEEDED", (down.error, down.cause)
    started = next(e for e in down.history if e.type == "ExecutionStarted")
    assert json.loads(started.details["input"]) == {"environment": "staging", "action": "down", "trigger": "schedule"}
    assert env.nodegroup_sizes() == ASLEEP_GROUPS

    up = env.fire(SCALE_UP_SCHEDULE)

    assert up.status == "SUCCEEDED", (up.error, up.cause)
    assert up.states_entered()[-1] == "Awake"


def test_production_schedules_are_disabled_by_default_and_an_environment_can_opt_in(cluster: Any) -> None:
    with pipeline(cluster, Environment="production") as pipe:
        states = {s: pipe.cloud.client("scheduler").get_schedule(Name=s)["State"]
                  for s in (SCALE_DOWN_SCHEDULE, SCALE_UP_SCHEDULE)}  # fmt: skip
    assert states == {SCALE_DOWN_SCHEDULE: "DISABLED", SCALE_UP_SCHEDULE: "DISABLED"}
    with pipeline(
        cluster, Environment="production", OffHoursEnabled="true", OffHoursTimezone="America/New_York"
    ) as pipe:
        schedule = pipe.cloud.client("scheduler").get_schedule(Name=SCALE_UP_SCHEDULE)
    assert (schedule["State"], schedule["ScheduleExpressionTimezone"]) == ("ENABLED", "America/New_York")


# ---- the lock on every exit path ---------------------------------------------------------------------------------
def _seed_lock(env: OffhoursPipeline, owner: str) -> None:
    from controlplane.aws import lock  # noqa: PLC0415
    from controlplane.models.lock import LockPurpose, LockRequest  # noqa: PLC0415

    table = lock.LockTable(str(env.cloud.ref("LedgerTable")), region="us-east-1")
    now = int(env.cluster.clock.utcnow().timestamp())
    request = LockRequest(environment="staging", owner=owner, purpose=LockPurpose.DEPLOY)
    assert table.try_acquire(request, now=now, ttl_s=3600)


@pytest.mark.parametrize(
    "env",
    [{"nodegroups": [{"match": "GeneralNodeGroup*", "desired": 1}, {"match": "*", "desired": 0}], "lock_wait_s": 60}],
    indirect=True,
    ids=["lock-wait-60s"],
)
def test_a_scale_down_waits_for_a_deploy_holding_the_lock_then_gives_up_without_touching_it(
    env: OffhoursPipeline,
) -> None:
    deploy = str(env.cloud.ref("DeployStateMachine")).replace(":stateMachine:", ":execution:") + ":starting-deploy"
    _seed_lock(env, deploy)
    before = env.state()

    down = env.run("down")

    assert down.status == "FAILED"
    assert down.error == "LockHeldError"
    entered = down.states_entered()
    assert entered.count("AcquireLock") == 2
    assert "WaitForLock" in entered
    assert entered[-2:] == ["ReleaseLockAfterFailure", "ScalingFailed"]
    assert env.state() == before
    item = env.ledger_item("LOCK")
    assert item is not None
    assert item["owner"]["S"] == deploy  # the deploy's lock is not ours to release

    until = env.cluster.clock.utcnow() + timedelta(hours=3)
    stay = env.run("stay_awake", until=until.isoformat(), reason="demo")

    assert (stay.status, stay.error) == ("FAILED", "LockHeldError")
    assert env.ledger_item("STAY_AWAKE") is None  # a request that gave up waiting for the lock wrote nothing
    audit = env.cloud.client("dynamodb").query(
        TableName=str(env.cloud.ref("LedgerTable")),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :events)",
        ExpressionAttributeValues={":pk": {"S": "ENV#staging"}, ":events": {"S": "OFFHOURS#"}},
    )["Items"]
    assert audit == []


def test_a_step_failing_after_the_lock_was_taken_releases_it_before_the_execution_fails(
    env: OffhoursPipeline,
) -> None:
    env.cluster.deny_rules.append(DenyRule(verb="patch", resource="deployments/scale"))

    down = env.run("down")

    assert down.status == "FAILED"
    assert down.error == "KubernetesForbiddenError"
    assert down.states_entered()[-2:] == ["ReleaseLockAfterFailure", "ScalingFailed"]
    assert env.ledger_item("LOCK") is None
