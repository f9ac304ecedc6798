"""The deploy gates through the real ASL on the local cloud: lock and queue, scan, freeze, promotion.

Every refused deploy here is refused before the first cluster write: the emulator sees no write request.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from controlplane import platform
from controlplane.aws.freeze import read_override
from controlplane.aws.lock import LockTable
from controlplane.models.lock import LockRequest
from controlplane.models.release import ReleaseStatus

from local.pipeline import CLUSTER_NAME, TEMPLATE, Pipeline, create_repositories, parameters, pipeline
from tests.eventually import eventually

pytestmark = pytest.mark.e2e


CRITICAL = {
    "name": "CVE-2099-0001",
    "severity": "CRITICAL",
    "attributes": [{"key": "package_name", "value": "openssl"}],
}


def lock_of(pipe: Pipeline) -> Any:
    return LockTable(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").read("staging")


def wait_until_entered(pipe: Pipeline, arn: str, state: str) -> None:
    def entered() -> bool:
        if state in [e.state_name for e in pipe.cloud.history(arn) if e.type.endswith("StateEntered")]:
            return True
        ended = pipe.cloud.describe_execution(arn)
        if ended["status"] != "RUNNING":
            pytest.fail(f"{arn} ended {ended['status']} before entering {state}: {ended.get('cause')}")
        return False

    eventually(entered, what=f"{arn} to enter {state}")


def push_event_at(pipe: Pipeline, service: str, tag: str, second: int) -> dict[str, Any]:
    digest = pipe.push(service, tag)
    event = pipe.push_event(f"clinical-trials/{service}", digest, tag)
    event["time"] = f"2025-11-26T10:00:{second:02d}Z"
    return event


# ---- lock and queue ------------------------------------------------------------------------------------------------


def test_pushes_during_a_deploy_queue_and_one_follow_up_deploys_the_newest_of_each_service(pipe: Pipeline) -> None:
    pipe.first_release()
    running = pipe.deliver(push_event_at(pipe, "edc-service", "main-2", 1))[0]
    wait_until_entered(pipe, running, "ScanImages")  # it owns the lock now

    others = pipe.deliver(push_event_at(pipe, "analytics-service", "main-3", 2))
    for second in range(3, 8):  # five rapid pushes of one service; the last is the newest
        others += pipe.deliver(push_event_at(pipe, "quality-service", f"main-{second}", second))
    queued = [pipe.cloud.wait_execution(arn) for arn in others]
    first = pipe.cloud.wait_execution(running)

    assert all(q.status == "SUCCEEDED" and q.output["lock"]["outcome"] == "QUEUED" for q in queued)
    assert all("PlanRelease" not in q.states_entered() for q in queued)  # nothing planned, nothing written
    assert first.status == "SUCCEEDED", first.cause
    follow_up = first.output["lock_release"]["follow_up"]
    assert follow_up is not None
    assert [p["service"] for p in follow_up["pushes"]] == ["analytics-service", "quality-service"]
    second = pipe.cloud.wait_execution(follow_up["execution_arn"])

    assert second.status == "SUCCEEDED", second.cause
    assert second.output["plan"]["changed"] == {
        "analytics-service": pipe.digests["analytics-service"],
        "quality-service": pipe.digests["quality-service"],  # the newest of the five
    }
    for service in ("edc-service", "analytics-service", "quality-service"):
        assert pipe.deployment_image(service).endswith(f"@{pipe.digests[service]}")
    deploys = pipe.cloud.client("stepfunctions").list_executions(stateMachineArn=pipe.cloud.arn("DeployStateMachine"))
    assert len(deploys["executions"]) == 1 + 1 + 6 + 1  # first release, the running one, six queued, one follow-up
    assert lock_of(pipe) is None


def test_the_lock_is_released_after_a_failed_deploy_and_the_next_deploy_runs(pipe: Pipeline) -> None:
    pipe.first_release()
    digest = pipe.push("edc-service", "main-2")
    pipe.cloud.set_scan_findings("clinical-trials/edc-service", digest, [CRITICAL])
    writes = len(pipe.writes())

    failed = pipe.cloud.wait_execution(
        pipe.deliver(pipe.push_event("clinical-trials/edc-service", digest, "main-2"))[0]
    )
    assert failed.status == "FAILED"
    assert failed.states_entered()[-4:] == ["RecordRefused", "ReleaseLock", "HowItEnded", "Rejected"]
    assert lock_of(pipe) is None
    [refused] = [r for r in pipe.releases("staging") if r.images["edc-service"] == digest]
    assert refused.status is ReleaseStatus.REFUSED  # never left "planned"
    assert refused.cause is not None
    assert "ScanBlockedError" in refused.cause

    result = pipe.push_and_deploy("analytics-service", "main-3")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["lock"]["outcome"] == "ACQUIRED"
    assert result.output["lock"]["cleared_orphan"] is None
    assert len(pipe.writes()) > writes


def test_an_aborted_deploy_is_released_by_the_execution_status_rule(pipe: Pipeline) -> None:
    pipe.first_release()
    arn = pipe.deliver(push_event_at(pipe, "edc-service", "main-2", 1))[0]
    wait_until_entered(pipe, arn, "ScanImages")
    pipe.cloud.client("stepfunctions").stop_execution(executionArn=arn, cause="operator abort")
    assert lock_of(pipe) is not None
    assert lock_of(pipe).owner == arn

    deliveries = pipe.cloud.deliver_event(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": "123456789012",
            "time": "2025-11-26T10:00:00Z",
            "region": "us-east-1",
            "resources": [arn],
            "detail": {
                "executionArn": arn,
                "stateMachineArn": pipe.cloud.arn("DeployStateMachine"),
                "status": "ABORTED",
            },
        }
    )

    [released] = [d.invocation.json() for d in deliveries if d.invocation]
    assert released["released"]
    # The aborted deploy never deployed its push: a follow-up deploys it (no push lost) and then frees the lock.
    follow_up = released["follow_up"]
    assert follow_up is not None
    assert [p["reference"] for p in follow_up["pushes"]] == [pipe.digests["edc-service"]]
    deployed = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=120)
    assert deployed.status == "SUCCEEDED", (deployed.error, deployed.cause)
    assert pipe.deployment_image("edc-service").endswith(pipe.digests["edc-service"])
    assert lock_of(pipe) is None


def test_a_lock_left_by_an_ended_execution_is_cleared_as_an_orphan(pipe: Pipeline) -> None:
    pipe.first_release()
    sfn = pipe.cloud.client("stepfunctions")
    ghost = pipe.cloud.start_execution("DeployStateMachine", {"environment": "staging", "services": {}, "reason": "x"})
    pipe.cloud.wait_execution(ghost)  # rejected at once: it never locked anything
    table = LockTable(str(pipe.cloud.ref("LedgerTable")), region="us-east-1")
    assert table.try_acquire(
        LockRequest(environment="staging", owner=ghost), now=int(pipe.cloud.clock.now()), ttl_s=3600
    )
    assert sfn.describe_execution(executionArn=ghost)["status"] == "FAILED"

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["lock"]["cleared_orphan"] == ghost
    assert lock_of(pipe) is None


# ---- scan ----------------------------------------------------------------------------------------------------------


def test_a_critical_finding_blocks_before_any_cluster_write(pipe: Pipeline) -> None:
    pipe.first_release()
    writes = len(pipe.writes())
    digest = pipe.push("edc-service", "main-2")
    pipe.cloud.set_scan_findings("clinical-trials/edc-service", digest, [CRITICAL])

    result = pipe.cloud.wait_execution(
        pipe.deliver(pipe.push_event("clinical-trials/edc-service", digest, "main-2"))[0]
    )

    assert result.status == "FAILED"
    assert result.error == "ScanBlockedError"
    assert "CVE-2099-0001 (CRITICAL, openssl)" in str(result.cause)
    assert len(pipe.writes()) == writes


def test_a_scan_in_progress_is_waited_for_in_a_wait_state_then_passes(pipe: Pipeline) -> None:
    pipe.first_release()
    digest = pipe.push("edc-service", "main-2")
    pipe.cloud.set_scan_findings("clinical-trials/edc-service", digest, in_progress_reads=2)

    result = pipe.cloud.wait_execution(
        pipe.deliver(pipe.push_event("clinical-trials/edc-service", digest, "main-2"))[0]
    )

    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered().count("WaitForScans") == 2
    assert result.states_entered().count("ScanImages") == 3


def test_an_allowlisted_cve_does_not_block(cluster: Any) -> None:
    with pipeline(cluster, ScanCveAllowlist="CVE-2099-0001, CVE-2099-0002") as pipe:
        pipe.first_release()
        digest = pipe.push("edc-service", "main-2")
        pipe.cloud.set_scan_findings("clinical-trials/edc-service", digest, [CRITICAL])
        [arn] = pipe.deliver(pipe.push_event("clinical-trials/edc-service", digest, "main-2"))
        result = pipe.cloud.wait_execution(arn)

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["scan"]["scans"][0]["allowlisted"] == ["CVE-2099-0001"]


# ---- freeze --------------------------------------------------------------------------------------------------------

FROZEN = json.dumps(
    [{"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z", "reason": "audit", "environments": ["staging"]}]
)


def test_a_freeze_window_refuses_a_push_and_an_authenticated_force_goes_through_recorded(cluster: Any) -> None:
    with pipeline(cluster, FreezeCalendar=FROZEN) as pipe:
        images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
        request = {"environment": "staging", "services": images, "reason": "hotfix"}

        refused = pipe.deploy(request)
        unsigned = pipe.deploy({**request, "force": True})
        alice = pipe.operator("developer", session="alice")
        status, started = alice.call({"action": "deploy", **request, "force": True})
        forced = pipe.cloud.wait_execution(started["execution_arn"])
        override = read_override(
            str(pipe.cloud.ref("LedgerTable")), "staging", forced.output["plan"]["release"]["release_id"]
        )

    assert refused.status == "FAILED"
    assert refused.error == "FreezeWindowError"
    assert "operator API" in str(refused.cause)
    assert unsigned.status == "FAILED"
    assert unsigned.error == "OperatorNotAuthorizedError"
    assert status == 200, started
    assert forced.status == "SUCCEEDED", forced.cause
    assert forced.output["freeze"]["forced_by"] == alice.session_arn
    assert override is not None
    assert override["forced_by"] == alice.session_arn
    assert override["window_reason"] == "audit"


# ---- promotion -----------------------------------------------------------------------------------------------------


def test_promotion_is_idempotent_on_immutable_tags_when_a_release_is_deployed_again(cluster: Any) -> None:
    from local.aws import LocalCloud  # noqa: PLC0415 - the harness imports moto: only when a test needs it

    with LocalCloud(TEMPLATE, parameters=parameters(), cluster=cluster) as cloud:
        cloud.register_cluster(CLUSTER_NAME, cluster)
        create_repositories(cloud, immutable=True)
        pipe = Pipeline(cloud, cluster)
        first = pipe.first_release()
        again = pipe.deploy({"environment": "staging", "services": dict(pipe.digests), "reason": "redeploy"})
        tags = cloud.client("ecr").describe_images(
            repositoryName="clinical-trials/edc-service", imageIds=[{"imageDigest": pipe.digests["edc-service"]}]
        )["imageDetails"][0]["imageTags"]
        next_release = pipe.push_and_deploy("edc-service", "main-2")

    release_id = first.output["plan"]["release"]["release_id"]
    assert again.status == "SUCCEEDED", again.cause
    assert again.output["plan"]["release"]["release_id"] == release_id
    assert {r["outcome"] for r in first.output["promotion"]["results"]} == {"TAGGED"}
    assert {r["outcome"] for r in again.output["promotion"]["results"]} == {"UNCHANGED"}
    assert {f"staging-{release_id}", "main-1"} <= set(tags)
    assert "staging" not in tags  # immutable: the moving tag could not follow the next release
    assert next_release.status == "SUCCEEDED", next_release.cause
