"""A deploy while the environment sleeps, through the real deploy and off-hours state machines.

The deploy applies the new release at the sleeping size (no smoke test: nothing answers) and records it as usual;
the next scale-up brings up the new release. A push that arrives while the off-hours execution holds the lock is
queued, and ReleaseLock starts its follow-up on the *deploy* state machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from controlplane.aws import lock
from controlplane.models.lock import LockOutcome, LockPurpose, LockRequest, Push

from local.cluster import Cluster
from local.offhours import REGION, OffhoursPipeline, offhours_pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture
def env() -> Iterator[OffhoursPipeline]:
    with Cluster("sts-staging", default_nodes=False) as cluster, offhours_pipeline(cluster) as p:
        p.pipe.first_release()
        yield p


def running_images(env: OffhoursPipeline, name: str) -> set[str]:
    return {
        c["image"] for p in env.pods(name) if p["status"].get("phase") == "Running" for c in p["spec"]["containers"]
    }


def test_a_deploy_while_asleep_applies_the_release_asleep_and_the_next_wake_brings_it_up(
    env: OffhoursPipeline,
) -> None:
    before = env.state()
    assert env.run("down").status == "SUCCEEDED"
    digest = env.pipe.push("edc-service", "main-2")

    deploy = env.pipe.deploy({"environment": "staging", "services": {"edc-service": digest}, "reason": "night fix"})

    assert deploy.status == "SUCCEEDED", (deploy.error, deploy.cause)
    assert deploy.output["apply"]["rollout"]["smoke_targets"] == 0  # asleep: nothing to smoke-test
    assert set(env.workloads().values()) == {0}  # still asleep
    assert env.pipe.deployment_image("edc-service").endswith(digest)
    release_id = deploy.output["plan"]["release"]["release_id"]
    lkg = env.pipe.ledger.last_known_good("staging")
    assert lkg is not None
    assert lkg.release_id == release_id  # recorded normally

    up = env.run("up")

    assert up.status == "SUCCEEDED", (up.error, up.cause)
    assert env.state() == before
    assert {i.rpartition("@")[2] for i in running_images(env, "edc-service")} == {digest}


def test_a_push_queued_behind_the_scale_down_is_deployed_by_a_follow_up_of_the_deploy_machine(
    env: OffhoursPipeline,
) -> None:
    offhours_arn = str(env.cloud.ref("OffHoursStateMachine"))
    deploy_arn = str(env.cloud.ref("DeployStateMachine"))
    name = "night-with-a-queued-push"
    execution = offhours_arn.replace(":stateMachine:", ":execution:") + f":{name}"
    table = lock.LockTable(str(env.cloud.ref("LedgerTable")), region=REGION)
    now = env.cluster.clock.utcnow()
    # the scale-down holds the lock (it is about to start) when a push of edc-service arrives
    held = LockRequest(environment="staging", owner=execution, purpose=LockPurpose.SCALE)
    assert table.try_acquire(held, now=int(now.timestamp()), ttl_s=3600)
    digest = env.pipe.push("edc-service", "main-3")
    push = Push(service="edc-service", reference=digest, sequence=int(now.timestamp() * 1000))
    pusher = deploy_arn.replace(":stateMachine:", ":execution:") + ":push-main-3"
    queued = lock.acquire(
        table,
        LockRequest(environment="staging", owner=pusher, pushes=[push]),
        now=now,
        ttl_s=3600,
        grace_s=300,
        status_of=lambda _arn: "RUNNING",
    )
    assert queued.outcome is LockOutcome.QUEUED

    # what the evening schedule starts (unsigned: staging runs its schedules), named as the lock above expects
    request = {"environment": "staging", "action": "down", "trigger": "schedule"}
    arn = env.cloud.start_execution("OffHoursStateMachine", request, name=name)
    down = env.cloud.wait_execution(arn)

    assert down.status == "SUCCEEDED", (down.error, down.cause)
    follow_up = down.output["released"]["follow_up"]
    assert follow_up["execution_arn"].startswith(deploy_arn.replace(":stateMachine:", ":execution:") + ":")
    deployed = env.cloud.wait_execution(follow_up["execution_arn"])
    assert deployed.status == "SUCCEEDED", (deployed.error, deployed.cause)
    assert set(env.workloads().values()) == {0}  # the follow-up deployed it asleep
    assert env.pipe.deployment_image("edc-service").endswith(digest)
    assert env.ledger_item("LOCK") is None
    assert env.run("up").status == "SUCCEEDED"
    assert {i.rpartition("@")[2] for i in running_images(env, "edc-service")} == {digest}
    assert env.workloads()["Deployment/edc-service"] == 1
