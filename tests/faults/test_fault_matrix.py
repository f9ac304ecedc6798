"""The fault matrix (issue 12): each scenario injects a fault into the local cloud during a real deploy and checks
the invariants of ``conftest.assert_invariants`` afterwards."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from controlplane.aws.lock import LockTable
from controlplane.models.release import Degraded
from kubernetes.client import AppsV1Api, CoreV1Api

from local.aws.eventbridge import EVENTBRIDGE_PRINCIPAL
from local.cluster import Behaviour, api_client
from local.pipeline import REGION, OperatorRefusedError, Pipeline
from tests.e2e.test_cli import Cli
from tests.eventually import eventually

from .conftest import assert_invariants, function_name

pytestmark = pytest.mark.e2e


def state_output(pipe: Pipeline, result: Any, state: str) -> dict[str, Any]:
    """What ``state`` of execution ``result`` passed on (its first exit)."""
    for event in pipe.cloud.history(result.arn):
        if event.type == "TaskStateExited" and event.state_name == state:
            output = event.details["output"]
            return dict(json.loads(output) if isinstance(output, str) else output)
    raise AssertionError(f"no {state} output")


def status_change(pipe: Pipeline, arn: str, status: str) -> dict[str, Any]:
    """The "Step Functions Execution Status Change" event of execution ``arn`` ending ``status``."""
    return {
        "version": "0",
        "id": f"status-{arn.rsplit(':', 1)[-1]}",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": REGION,
        "resources": [arn],
        "detail": {"executionArn": arn, "stateMachineArn": str(pipe.cloud.arn("DeployStateMachine")), "status": status},
    }


def test_an_api_server_503_on_the_smoke_proxy_get_is_retried_never_blamed_on_the_image(pipe: Pipeline) -> None:
    """Scenario 4: the 503 is the API server's, not the service's /health answer: no rollback, no quarantine."""
    pipe.first_release()
    pipe.cluster.faults.add(verb="get", resource="services", status=503, times=3)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.states_entered().count("SmokeTest") == 1  # one state, retried inside it
    digest = pipe.digests["edc-service"]
    assert pipe.ledger.quarantined([digest]) == {}
    new = pipe.planned_release(result)
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    assert lkg.release_id == new
    assert_invariants(pipe, result, new_release=new)


def test_a_lock_release_that_fails_through_its_retries_never_ends_deployed(pipe: Pipeline) -> None:
    """Scenario 5: the lock write fails after the success is recorded: LockNotReleased, and the execution-status
    rule (which covers every end) frees the lock afterwards."""
    pipe.first_release()
    release_lock = function_name(pipe, "ReleaseLockFunction")
    pipe.cloud.aws_faults.add("dynamodb", function=release_lock, times=None)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "FAILED"
    assert result.error == "AwsThrottledError"
    assert "dynamodb" in result.cause
    assert "LockNotReleased" in result.states_entered()
    assert "Deployed" not in result.states_entered()
    new = pipe.planned_release(result)
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    assert lkg.release_id == new  # the success itself was recorded
    table = LockTable(str(pipe.cloud.ref("LedgerTable")), region=REGION)
    held = table.read("staging")
    assert held is not None
    assert held.owner == result.arn

    pipe.cloud.aws_faults.clear()
    pipe.cloud.deliver_event(
        {
            "version": "0",
            "id": "status-1",
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": "123456789012",
            "time": "2026-12-01T00:00:00Z",
            "region": REGION,
            "resources": [result.arn],
            "detail": {
                "executionArn": result.arn,
                "stateMachineArn": str(pipe.cloud.arn("DeployStateMachine")),
                "status": "FAILED",
            },
        }
    )
    # A FAILED execution may have ended without handling what it carried (States.Runtime is not caught), so the
    # rule re-queues it: here a follow-up redeploys the recorded release, which changes nothing, then frees the lock.
    handed = table.read("staging")
    assert handed is not None
    assert handed.handed_off_by == result.arn
    assert [p.reference for p in handed.carried.values()] == [pipe.digests["edc-service"]]
    follow_up = pipe.cloud.wait_execution(handed.owner, timeout=120)
    assert follow_up.status == "SUCCEEDED", (follow_up.error, follow_up.cause)
    assert pipe.planned_release(follow_up) == new
    assert table.read("staging") is None
    assert_invariants(pipe, follow_up, new_release=new)


def test_sns_failing_after_the_success_is_recorded_does_not_fail_the_deploy(pipe: Pipeline) -> None:
    pipe.first_release()
    record = function_name(pipe, "RecordFunction")
    pipe.cloud.aws_faults.add("sns", "Publish", function=record, code="Throttling", times=None)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert pipe.cloud.aws_faults.failed("sns")
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))


THROTTLED = ("dynamodb", "ecr", "sns", "sfn")
"""The AWS services the deploy's handlers call: the ledger and lock, promotion, notifications, the lock's proof of
life and hand-off (EventBridge's own StartExecution has its rows below)."""


def test_throttling_on_every_call_of_every_service_is_retried_to_success(pipe: Pipeline) -> None:
    """The first attempt of EVERY call a handler makes to DynamoDB, ECR, SNS and Step Functions is throttled (its
    retry answered): the deploy ends deployed, nothing lost, and each throttled attempt was retried once."""
    pipe.first_release()
    before = len(pipe.cloud.aws_faults.calls)
    faults = {s: pipe.cloud.aws_faults.add(s, times=None, every_call=True) for s in THROTTLED}

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    for service, fault in faults.items():
        calls = [c for c in pipe.cloud.aws_faults.calls[before:] if c.service == service]
        answered = [c for c in calls if not c.failed]
        assert fault.fired > 0, f"the deploy made no {service} call: the row proves nothing for it"
        assert len(answered) == fault.fired, f"{service}: {fault.fired} throttled attempts, {len(answered)} answered"
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))


def test_throttling_three_times_in_a_row_is_retried_to_success(pipe: Pipeline) -> None:
    """The first three calls a handler makes to each of DynamoDB, ECR and SNS are throttled in a row (one call's
    attempts, back to back): botocore's retries outlast them and the deploy ends deployed."""
    pipe.first_release()
    for service in ("dynamodb", "ecr", "sns"):
        pipe.cloud.aws_faults.add(service, times=3)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    for service in ("dynamodb", "ecr", "sns"):
        assert len(pipe.cloud.aws_faults.failed(service)) == 3, service
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))


def test_a_five_minute_api_server_outage_at_apply_is_waited_out(pipe: Pipeline) -> None:
    """Scenario 7: the apply's retries wait out 5 minutes of 503s (simulated time) and the deploy goes on."""
    pipe.first_release()
    started = pipe.cloud.clock.now()
    fault = pipe.cluster.faults.add(status=503, times=None)  # every resource request fails

    def heal_after_five_minutes(now: float) -> None:
        if now - started >= 300 and fault.times is None:
            fault.times = fault.fired  # exhausted from now on: the API server is back

    pipe.cloud.clock.subscribe(heal_after_five_minutes)
    result = pipe.push_and_deploy("edc-service", "main-2", timeout=180)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert fault.fired > 1
    assert pipe.cloud.clock.now() - started >= 300
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))


def test_an_outage_longer_than_the_patience_before_any_write_ends_failed_nothing_changed(pipe: Pipeline) -> None:
    """Scenario 7: when nothing was written the run ends "failed, nothing changed", never RollbackFailed."""
    pipe.first_release()
    before = pipe.resource_versions()
    writes = len(pipe.writes())
    pipe.cluster.faults.add(status=503, times=None)  # the API server is down for good

    result = pipe.push_and_deploy("edc-service", "main-2", timeout=180)

    pipe.cluster.faults.clear()
    assert result.status == "FAILED"
    assert result.states_entered()[-1] == "FailedNothingChanged"
    assert "RollBackApply" not in result.states_entered()
    assert result.error == "KubernetesTransientError"
    assert "failed, nothing changed" in result.cause
    assert len(pipe.writes()) == writes
    assert pipe.resource_versions() == before
    failed = pipe.ledger.require_release(pipe.planned_release(result))
    assert failed.status.value == "failed"
    assert failed.cluster_untouched
    assert pipe.ledger.quarantined([pipe.digests["edc-service"]]) == {}
    assert_invariants(pipe, result)


def test_after_a_failed_rollback_the_environment_is_degraded_and_pushes_queue_until_an_operator_rolls_back(
    pipe: Pipeline,
) -> None:
    """Scenario 7 (second half): a real failed rollback marks the environment degraded; the next automatic deploy
    is queued, not applied; an operator rollback clears the mark and the queued push is deployed after it."""
    pipe.first_release()
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    started = pipe.cloud.clock.now()
    armed: list[Any] = []

    def break_writes_once_applied(now: float) -> None:  # after the deploy's apply, before its rollback's
        # (the apply is done within seconds; the crash loop is seen after the kubelet's first back-off, ~16 s)
        if now - started >= 8 and not armed:
            armed.append(pipe.cluster.faults.add(verb="patch", status=403, times=None))

    pipe.cloud.clock.subscribe(break_writes_once_applied)
    failed = pipe.push_and_deploy("edc-service", "main-2", Behaviour.crash_loop(), timeout=120)

    assert failed.status == "FAILED"
    assert failed.states_entered()[-1] == "RollbackFailed"
    degraded = pipe.ledger.degraded("staging")
    assert degraded is not None
    assert degraded.release_id == pipe.planned_release(failed)
    assert '"acknowledge": true' in failed.cause  # the notification and cause say what to do

    writes = len(pipe.writes())
    queued = pipe.push_and_deploy("analytics-service", "main-3")
    assert queued.status == "SUCCEEDED"
    assert queued.output["lock"]["outcome"] == "QUEUED"
    assert queued.output["lock"]["holder"] == "degraded:staging"
    assert len(pipe.writes()) == writes  # queued, not applied

    pipe.cluster.faults.clear()
    restored = pipe.rollback({"environment": "staging", "release_id": lkg.release_id}, timeout=120)
    assert restored.status == "SUCCEEDED", (restored.error, restored.cause)
    assert pipe.ledger.degraded("staging") is None
    follow_up = restored.output["lock_release"]["follow_up"]
    assert follow_up is not None
    deployed = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=120)
    assert deployed.status == "SUCCEEDED", (deployed.error, deployed.cause)
    assert pipe.deployment_image("analytics-service").endswith(pipe.digests["analytics-service"])
    assert_invariants(pipe, deployed, new_release=pipe.planned_release(deployed))


def test_an_acknowledgement_clears_the_degraded_mark_and_hands_the_queue_on(pipe: Pipeline) -> None:
    pipe.first_release()
    ledger = pipe.ledger
    ledger.mark_degraded(
        Degraded(
            environment="staging",
            since=pipe.cloud.clock.utcnow(),
            release_id=None,
            cause="RollbackFailedError: test",
            execution_arn="arn:aws:states:us-east-1:123456789012:execution:x:y",
        )
    )
    queued = pipe.push_and_deploy("analytics-service", "main-3")
    assert queued.output["lock"]["outcome"] == "QUEUED"

    with pytest.raises(OperatorRefusedError) as refused:
        pipe.rollback({"environment": "staging", "acknowledge": True, "release_id": "rel-" + "0" * 20})
    assert refused.value.status == 400
    assert "an acknowledgement re-applies nothing" in refused.value.answer["message"]

    acknowledged = pipe.rollback({"environment": "staging", "acknowledge": True})
    assert acknowledged.status == "SUCCEEDED", (acknowledged.error, acknowledged.cause)
    assert acknowledged.states_entered()[-1] == "Acknowledged"
    assert "RollBackApply" not in acknowledged.states_entered()
    assert ledger.degraded("staging") is None
    follow_up = acknowledged.output["lock_release"]["follow_up"]
    assert follow_up is not None
    deployed = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=120)
    assert deployed.status == "SUCCEEDED", (deployed.error, deployed.cause)
    assert_invariants(pipe, deployed, new_release=pipe.planned_release(deployed))


def test_a_failed_redeploy_of_the_last_known_good_release_moves_the_pointer_to_what_the_cluster_runs(
    pipe: Pipeline,
) -> None:
    """Scenario 2: the pointer must name the release the cluster was rolled back to, not the one that failed."""
    first = pipe.first_release()
    older = pipe.planned_release(first)
    second = pipe.push_and_deploy("edc-service", "main-2")
    current = pipe.planned_release(second)
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    assert lkg.release_id == current
    # The last known-good image now crash-loops (its pods are recreated and pick up the new behaviour).
    digest = pipe.digests["edc-service"]
    pipe.cluster.images.set(digest, Behaviour.crash_loop())
    core = CoreV1Api(api_client(pipe.cluster))
    for pod in core.list_namespaced_pod("clinical-trials", label_selector="app.kubernetes.io/name=edc-service").items:
        core.delete_namespaced_pod(pod.metadata.name, "clinical-trials")
    images = pipe.ledger.require_release(current).images

    redeploy = pipe.deploy({"environment": "staging", "services": dict(images), "reason": "redeploy"}, timeout=120)

    assert redeploy.status == "FAILED"
    assert pipe.planned_release(redeploy) == current
    assert f"rollback to {older} succeeded" in redeploy.cause
    pointer = pipe.ledger.last_known_good("staging")
    assert pointer is not None
    assert pointer.release_id == older  # what the cluster runs
    assert pipe.ledger.require_release(current).status.value == "rolled_back"
    assert pipe.deployment_image("edc-service").endswith(pipe.ledger.require_release(older).images["edc-service"])
    assert_invariants(pipe, redeploy)


def test_a_lambda_crash_mid_apply_rolls_back_and_a_rerun_deploys(pipe: Pipeline) -> None:
    """The apply function dies after writing to the cluster (an unexpected error recording what it applied): the
    release is rolled back (the cluster was touched), nothing is quarantined, and rerunning the push deploys it."""
    pipe.first_release()
    apply_fn = function_name(pipe, "ApplyFunction")
    # the first batch of applied objects (a fenced transaction) is refused: the handler dies after its cluster writes
    pipe.cloud.aws_faults.add(
        "dynamodb",
        "TransactWriteItems",
        code="ValidationException",
        function=apply_fn,
        containing='"applied_object"',
        times=1,
    )
    digest = pipe.push("edc-service", "main-2")
    event = pipe.push_event("clinical-trials/edc-service", digest, "main-2")

    [arn] = pipe.deliver(event)
    crashed = pipe.cloud.wait_execution(arn, timeout=120)

    assert crashed.status == "FAILED"
    assert crashed.error == "ClientError"
    assert "RollBackApply" in crashed.states_entered()
    assert crashed.states_entered()[-1] == "DeployFailedRolledBack"
    assert pipe.ledger.quarantined([digest]) == {}
    assert_invariants(pipe, crashed)

    [again] = pipe.deliver({**event, "id": event["id"] + "-rerun"})
    rerun = pipe.cloud.wait_execution(again, timeout=120)

    assert rerun.status == "SUCCEEDED", (rerun.error, rerun.cause)
    assert pipe.deployment_image("edc-service").endswith(digest)
    assert_invariants(pipe, rerun, new_release=pipe.planned_release(rerun))


def test_a_lambda_timeout_mid_apply_rolls_back_and_a_rerun_deploys(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply function outlasts its Timeout while writing to the cluster (one slow server-side apply): Lambda
    answers Sandbox.Timedout, which no Retry names (an apply cut off at its deadline may have written anything), so
    the release is rolled back like a failed apply, nothing is quarantined (the image is not to blame), and rerunning
    the push deploys it."""
    pipe.first_release()
    runtime = pipe.cloud.runtime
    spec = runtime.lookup(function_name(pipe, "ApplyFunction"))
    assert spec is not None
    pipe.cluster.faults.add(verb="patch", resource="deployments", name="edc-service", latency=1.5, times=1)
    invoke = runtime.invoke
    shortened: list[str] = []

    def release_apply_with_a_short_timeout(name: str, payload: Any) -> Any:
        """ApplyRelease's first invocation runs with a Timeout of 1 s (the template's 240 s made short); every other
        invocation with the template's."""
        raw = payload.decode() if isinstance(payload, bytes) else str(payload or "")
        if shortened or runtime.lookup(name) != spec or json.loads(raw or "{}").get("purpose") != "deploy":
            return invoke(name, payload)
        shortened.append(name)
        runtime.register(dataclasses.replace(spec, timeout_s=1))
        try:
            return invoke(name, payload)
        finally:
            runtime.register(spec)

    monkeypatch.setattr(runtime, "invoke", release_apply_with_a_short_timeout)
    digest = pipe.push("edc-service", "main-2")
    event = pipe.push_event("clinical-trials/edc-service", digest, "main-2")

    [arn] = pipe.deliver(event)
    timed_out = pipe.cloud.wait_execution(arn, timeout=180)

    assert (timed_out.status, timed_out.error) == ("FAILED", "Sandbox.Timedout"), timed_out.cause
    assert "Task timed out after 1.00 seconds" in str(timed_out.cause)
    entered = timed_out.states_entered()
    assert entered.count("ApplyRelease") == 1
    assert "RollBackApply" in entered
    assert entered[-1] == "DeployFailedRolledBack"
    assert pipe.ledger.quarantined([digest]) == {}
    assert_invariants(pipe, timed_out)

    [again] = pipe.deliver({**event, "id": event["id"] + "-rerun"})
    rerun = pipe.cloud.wait_execution(again, timeout=120)
    assert rerun.status == "SUCCEEDED", (rerun.error, rerun.cause)
    assert pipe.deployment_image("edc-service").endswith(digest)
    assert_invariants(pipe, rerun, new_release=pipe.planned_release(rerun))


def test_concurrent_console_deploys_both_end_deployed_one_after_the_other(pipe: Pipeline) -> None:
    pipe.first_release()
    edc = pipe.push("edc-service", "main-2")
    analytics = pipe.push("analytics-service", "main-2")
    arns = [
        pipe.cloud.start_execution(
            "DeployStateMachine", {"environment": "staging", "services": {service: digest}, "reason": "console"}
        )
        for service, digest in (("edc-service", edc), ("analytics-service", analytics))
    ]
    results = [pipe.cloud.wait_execution(arn, timeout=180) for arn in arns]
    assert all(r.status == "SUCCEEDED" for r in results), [(r.error, r.cause) for r in results]
    # Usually one takes the lock and the other queues behind it (then a follow-up deploys the queued push); if the
    # first ended before the second asked, both simply took it in turn. Either way both end deployed.
    last = results[-1]
    for result in results:
        follow_up = result.output.get("lock_release", {}).get("follow_up")
        if follow_up is not None:
            last = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=180)
            assert last.status == "SUCCEEDED", (last.error, last.cause)

    assert pipe.deployment_image("edc-service").endswith(edc)
    assert pipe.deployment_image("analytics-service").endswith(analytics)
    assert_invariants(pipe, last, new_release=pipe.planned_release(last))


def heal_once_handed_off(pipe: Pipeline, fault: Any) -> None:
    """End ``fault`` (DynamoDB answers again) as soon as a failed execution's ReleaseLock handed its pushes on."""
    table = LockTable(str(pipe.cloud.ref("LedgerTable")), region=REGION)

    def heal(_now: float) -> None:
        if fault.times is None:
            held = table.read("staging")
            if held is not None and held.handed_off_by is not None:
                fault.times = fault.fired

    pipe.cloud.clock.subscribe(heal)


def record_writes(pipe: Pipeline, function: str) -> list[str]:
    """The DynamoDB writes ``function`` made that DynamoDB answered, in order."""
    writes = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
    return [
        c.operation
        for c in pipe.cloud.aws_faults.calls
        if c.function == function and c.service == "dynamodb" and c.operation in writes and not c.failed
    ]


def test_a_recording_that_fails_through_its_retries_moves_nothing_and_never_ends_deployed(pipe: Pipeline) -> None:
    """One truth (issue 12): the release's status and the last-known-good pointer move in one transaction behind the
    lease. When that transaction fails through every retry, neither moved (the ledger does not half-claim the new
    release), the execution ends RecordingFailed naming the cause, never Deployed, and its push is handed to a
    follow-up (never dropped): once DynamoDB answers, the follow-up records the release the cluster runs."""
    first = pipe.first_release()
    before = pipe.planned_release(first)
    record = function_name(pipe, "RecordFunction")
    fault = pipe.cloud.aws_faults.add(
        "dynamodb", "TransactWriteItems", code="InternalServerError", status=500, function=record, times=None
    )
    heal_once_handed_off(pipe, fault)

    failed = pipe.push_and_deploy("edc-service", "main-2", timeout=180)

    assert failed.status == "FAILED"
    assert failed.states_entered()[-1] == "RecordingFailed"
    assert "Deployed" not in failed.states_entered()
    assert failed.error == "AwsThrottledError"
    assert "TransactWriteItems" in failed.cause
    new = pipe.planned_release(failed)
    follow_up = state_output(pipe, failed, "ReleaseLock")["lock_release"]["follow_up"]
    assert follow_up is not None, "the push whose outcome was not recorded is handed on, not dropped"
    assert [p["reference"] for p in follow_up["pushes"]] == [pipe.digests["edc-service"]]

    rerun = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=180)

    assert rerun.status == "SUCCEEDED", (rerun.error, rerun.cause)
    assert pipe.planned_release(rerun) == new
    pointer = pipe.ledger.last_known_good("staging")
    assert pointer is not None
    assert (pointer.release_id, pointer.previous_release_id) == (new, before)
    assert_invariants(pipe, rerun, new_release=new)


def test_a_failure_record_is_one_transaction_and_a_failed_one_moves_nothing_until_the_follow_up_records_it(
    pipe: Pipeline,
) -> None:
    """One truth on the failure path (issue 12): the failed release's status, the quarantine of its new digests (none
    here: it is a redeploy) and the last-known-good pointer moved back to the release the cluster was rolled back to
    are written by ONE TransactWriteItems (there is no "between" for a fault to land in). When it fails through
    every retry none of them moved; the push is handed to a follow-up that, once DynamoDB answers, fails the same
    way and records it all at once: the pointer names the release the cluster runs."""
    first = pipe.first_release()
    older = pipe.planned_release(first)
    current = pipe.planned_release(pipe.push_and_deploy("edc-service", "main-2"))
    # The last known-good image now crash-loops: its redeploy fails and is rolled back to the release before it.
    digest = pipe.digests["edc-service"]
    pipe.cluster.images.set(digest, Behaviour.crash_loop())
    core = CoreV1Api(api_client(pipe.cluster))
    for pod in core.list_namespaced_pod("clinical-trials", label_selector="app.kubernetes.io/name=edc-service").items:
        core.delete_namespaced_pod(pod.metadata.name, "clinical-trials")
    images = dict(pipe.ledger.require_release(current).images)
    record = function_name(pipe, "RecordFunction")
    writes_before = len(record_writes(pipe, record))
    fault = pipe.cloud.aws_faults.add(
        "dynamodb", "TransactWriteItems", code="InternalServerError", status=500, function=record, times=None
    )
    heal_once_handed_off(pipe, fault)

    failed = pipe.deploy({"environment": "staging", "services": images, "reason": "redeploy"}, timeout=180)

    assert failed.status == "FAILED"
    assert failed.states_entered()[-1] == "RecordingFailed"
    assert "RecordRolledBack" in failed.states_entered()
    assert pipe.planned_release(failed) == current
    # Nothing of the failure record was written: neither the status nor the pointer.
    assert pipe.ledger.require_release(current).status.value == "succeeded"
    assert pipe.ledger.last_known_good("staging").release_id == current  # type: ignore[union-attr]
    assert record_writes(pipe, record)[writes_before:] == []
    follow_up = state_output(pipe, failed, "ReleaseLock")["lock_release"]["follow_up"]
    assert follow_up is not None

    rerun = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=180)

    assert rerun.status == "FAILED"
    assert rerun.states_entered()[-1] == "DeployFailedRolledBack"
    assert record_writes(pipe, record)[writes_before:] == ["TransactWriteItems"]  # all of it, in one write
    pointer = pipe.ledger.last_known_good("staging")
    assert pointer is not None
    assert pointer.release_id == older  # what the cluster runs
    assert pipe.ledger.require_release(current).status.value == "rolled_back"
    assert pipe.deployment_image("edc-service").endswith(pipe.ledger.require_release(older).images["edc-service"])
    assert_invariants(pipe, rerun)


def test_an_operator_rollback_whose_recording_fails_marks_the_environment_degraded_and_never_ends_rolled_back(
    pipe: Pipeline,
) -> None:
    """One truth (issue 12): the operator rollback took (the cluster runs its target) but RecordRestored failed
    through every retry, so the pointer still names the release before. The compensation says so in the ledger: the
    environment is marked degraded naming the restored release and the stale pointer, the execution ends
    RestoredUnrecorded with that cause (never RolledBack), the lock is given back, and the next push is queued behind
    the mark instead of being planned from the stale pointer."""
    older = pipe.planned_release(pipe.first_release())
    current = pipe.planned_release(pipe.push_and_deploy("edc-service", "main-2"))
    record = function_name(pipe, "RecordFunction")
    pipe.cloud.aws_faults.add(
        "dynamodb",
        "TransactWriteItems",
        code="InternalServerError",
        status=500,
        function=record,
        times=None,
        containing="LAST_KNOWN_GOOD",  # the pointer's write only: the degraded mark still goes through
    )

    result = pipe.rollback({"environment": "staging", "release_id": older}, timeout=180)

    entered = result.states_entered()
    assert (result.status, result.error) == ("FAILED", "AwsThrottledError"), result.cause
    assert entered[-3:] == ["ReleaseLock", "HowItEnded", "RestoredUnrecorded"]
    assert "MarkRestoreUnrecorded" in entered
    assert "RolledBack" not in entered
    assert older in result.cause
    assert current in result.cause
    assert '"acknowledge": true' in result.cause  # what to do
    assert pipe.deployment_image("edc-service").endswith(pipe.ledger.require_release(older).images["edc-service"])
    assert pipe.ledger.last_known_good("staging").release_id == current  # type: ignore[union-attr]
    degraded = pipe.ledger.degraded("staging")
    assert degraded is not None
    assert degraded.release_id == older
    assert "not what the cluster runs" in degraded.cause
    assert LockTable(str(pipe.cloud.ref("LedgerTable")), region=REGION).read("staging") is None  # given back

    writes = len(pipe.writes())
    queued = pipe.push_and_deploy("analytics-service", "main-3")

    assert queued.status == "SUCCEEDED", (queued.error, queued.cause)
    assert queued.output["lock"]["outcome"] == "QUEUED"
    assert len(pipe.writes()) == writes  # queued behind the degraded mark, never applied on the stale pointer


def test_a_release_that_regresses_during_its_bake_period_is_rolled_back_and_never_last_known_good(
    pipe: Pipeline,
) -> None:
    """Bake time (issue 12): a release that passed its health check and smoke test but starts crash-looping before
    its bake period is over fails like any rollout: rolled back, its digest quarantined, and it never became the
    last known-good release (a release never proven healthy is never a rollback target)."""
    first = pipe.first_release()
    before = pipe.planned_release(first)

    result = pipe.push_and_deploy("edc-service", "main-2", Behaviour.crashes_after(45), timeout=180)

    assert result.status == "FAILED"
    entered = result.states_entered()
    assert "SmokeTest" in entered  # it was declared healthy first ...
    assert "Bake" in entered  # ... and regressed while baking
    assert "RecordSuccess" not in entered
    assert entered[-1] == "DeployFailedRolledBack"
    assert result.error == "RolloutFailedError"
    assert "regressed during its bake period" in result.cause
    new = pipe.planned_release(result)
    pointer = pipe.ledger.last_known_good("staging")
    assert pointer is not None
    assert pointer.release_id == before
    assert pipe.ledger.require_release(new).status.value == "rolled_back"
    assert pipe.ledger.quarantined([pipe.digests["edc-service"]]) != {}
    assert_invariants(pipe, result, new_release=new)


def test_a_release_becomes_last_known_good_only_after_its_bake_period(pipe: Pipeline) -> None:
    first = pipe.first_release()
    entered = first.states_entered()
    assert entered.index("SmokeTest") < entered.index("Bake") < entered.index("RecordSuccess")
    looks = [e for e in pipe.cloud.history(first.arn) if e.type == "TaskStateExited" and e.state_name == "Bake"]
    baked = (
        json.loads(looks[-1].details["output"])
        if isinstance(looks[-1].details["output"], str)
        else looks[-1].details["output"]
    )
    healthy_at = datetime.fromisoformat(baked["health"]["checked_at"])
    recorded_at = datetime.fromisoformat(baked["bake"]["checked_at"])
    assert baked["bake"]["baked"] is True
    assert (recorded_at - healthy_at).total_seconds() >= 120  # staging's default bake period, simulated time
    assert len(looks) > 1  # looked again and again while it baked


def test_a_push_during_an_operator_rollback_queues_behind_it_and_is_deployed_after(pipe: Pipeline) -> None:
    """A push that arrives while an operator rollback holds the lock is queued behind it (never applied alongside)
    and deployed by the follow-up the rollback hands the lock to: no push lost."""
    first = pipe.first_release()
    older = pipe.planned_release(first)
    pipe.push_and_deploy("edc-service", "main-2")
    digest = pipe.push("analytics-service", "main-3")
    event = pipe.push_event("clinical-trials/analytics-service", digest, "main-3")
    locks = LockTable(str(pipe.cloud.ref("LedgerTable")), region=REGION)

    rolling_back = pipe.start_rollback({"environment": "staging", "release_id": older})
    # The push arrives as soon as the rollback holds the lock (it has its target to resolve, an apply and a health
    # watch still to do): from this thread, never from a clock listener, which would hold up the executions.
    eventually(
        lambda: (held := locks.read("staging")) is not None and held.purpose.value == "rollback",
        what="the operator rollback holding the lock",
    )
    delivered = pipe.deliver(event)
    restored = pipe.cloud.wait_execution(rolling_back, timeout=120)

    assert restored.status == "SUCCEEDED", (restored.error, restored.cause)
    [arn] = delivered
    queued = pipe.cloud.wait_execution(arn, timeout=60)
    assert queued.output["lock"]["outcome"] == "QUEUED"
    assert queued.output["lock"]["holder"] == restored.arn
    follow_up = restored.output["lock_release"]["follow_up"]
    assert follow_up is not None
    deployed = pipe.cloud.wait_execution(follow_up["execution_arn"], timeout=180)
    assert deployed.status == "SUCCEEDED", (deployed.error, deployed.cause)
    assert pipe.deployment_image("analytics-service").endswith(digest)
    assert_invariants(pipe, deployed, new_release=pipe.planned_release(deployed))
    assert_invariants(pipe, deployed, new_release=pipe.planned_release(deployed))


def test_a_push_whose_start_execution_is_throttled_is_retried_by_eventbridge_and_deployed(pipe: Pipeline) -> None:
    """Step Functions answers the ECR rule's StartExecution with ThrottlingException (its wire shape, HTTP 400) for
    a while: EventBridge retries within the rule's RetryPolicy (back-off on the simulated clock) and the push starts
    its deploy; nothing dropped."""
    pipe.first_release()
    fault = pipe.cloud.aws_faults.add("sfn", "StartExecution", function=EVENTBRIDGE_PRINCIPAL, times=12)
    digest = pipe.push("edc-service", "main-2")
    started = pipe.cloud.clock.now()

    [delivery] = pipe.cloud.deliver_event(pipe.push_event("clinical-trials/edc-service", digest, "main-2"))

    assert fault.fired == 12
    assert delivery.failure is None
    assert delivery.execution_arn is not None
    assert pipe.cloud.clock.now() - started >= 1  # backed off before trying again
    result = pipe.cloud.wait_execution(delivery.execution_arn, timeout=120)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert pipe.deployment_image("edc-service").endswith(digest)
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))


def test_a_push_that_cannot_start_a_deploy_through_a_day_of_retries_waits_in_the_dead_letter_queue(
    pipe: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step Functions throttles the rule's StartExecution for good: after the RetryPolicy's 185 retries EventBridge
    sends the push event to the rule's dead-letter queue, with its error attributes (the PushesUndeliveredAlarm
    fires on it); the cluster and the ledger are unchanged. `trialstudio pushes list` shows it and keeps it; a
    `pushes resend` the operator API cannot start keeps it (exit 1); once Step Functions answers, `pushes resend`
    starts its deploy through the operator API as the caller, deletes the message, and the push is deployed. The
    execution is named after the event: sending it again starts nothing new."""
    first = pipe.first_release()
    fault = pipe.cloud.aws_faults.add("sfn", "StartExecution", function=EVENTBRIDGE_PRINCIPAL, times=None)
    digest = pipe.push("edc-service", "main-2")
    event = pipe.push_event("clinical-trials/edc-service", digest, "main-2")

    [delivery] = pipe.cloud.deliver_event(event)

    assert delivery.execution_arn is None
    assert delivery.failure is not None
    assert (delivery.failure.code, delivery.failure.exhausted) == ("ThrottlingException", "MaximumRetryAttempts")
    assert delivery.failure.retries == 185
    assert delivery.failure.dead_lettered
    assert_invariants(pipe, first)  # nothing changed
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    cli = Cli(pipe, tmp_path)
    [listed] = cli.json("pushes", "list")["messages"]
    assert (listed["digest"], listed["error"]) == (digest, "ThrottlingException")
    assert listed["rule"].endswith("EcrPush")
    fault.times = fault.fired  # Step Functions answers EventBridge again; the operator API's start fails for a while
    down = pipe.cloud.aws_faults.add(
        "sfn", "StartExecution", function=function_name(pipe, "OperatorApiFunction"), code="ServiceUnavailable",
        status=503, times=None,
    )  # fmt: skip

    failed = cli.json("pushes", "resend", expect=1)

    assert failed["resent"] == []
    assert [k["digest"] for k in failed["kept"]] == [digest]
    assert [m["digest"] for m in cli.json("pushes", "resend", "--dry-run")["messages"]] == [digest]  # kept
    down.times = down.fired
    principal = cli.as_operator("release-manager", "dana")

    [resent] = cli.json("pushes", "resend")["resent"]

    assert (resent["digest"], resent["status"], resent["by"]) == (digest, "STARTED", principal)
    assert cli.json("pushes", "list")["messages"] == []  # deleted once its deploy started
    result = pipe.cloud.wait_execution(resent["execution_arn"], timeout=180)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert pipe.deployment_image("edc-service").endswith(digest)
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))
    status, again = pipe.operator("release-manager", session="dana").call(
        {"action": "resend", "environment": "staging", "event": event}
    )
    assert (status, again["status"], again["execution_arn"]) == (200, "ALREADY_STARTED", resent["execution_arn"])


def test_a_hand_off_whose_start_execution_is_throttled_keeps_the_push_until_the_follow_up_starts(
    pipe: Pipeline,
) -> None:
    """ReleaseLock hands a queued push to a follow-up and starts it; StartExecution is throttled through every
    retry. The push is not dropped: the lock already names the follow-up with the push it carries, the execution
    ends LockNotReleased (never Deployed), and the execution-status rule starts the follow-up, which deploys it."""
    pipe.first_release()
    table = LockTable(str(pipe.cloud.ref("LedgerTable")), region=REGION)
    digest = pipe.push("analytics-service", "main-3")
    queued: list[str] = []

    def push_while_deploying(_now: float) -> None:
        held = table.read("staging")
        if not queued and held is not None and held.purpose.value == "deploy":
            queued.extend(pipe.deliver(pipe.push_event("clinical-trials/analytics-service", digest, "main-3")))

    pipe.cloud.clock.subscribe(push_while_deploying)
    release_lock = function_name(pipe, "ReleaseLockFunction")
    pipe.cloud.aws_faults.add("sfn", "StartExecution", function=release_lock, times=None)

    holder = pipe.push_and_deploy("edc-service", "main-2", timeout=180)

    assert holder.status == "FAILED"
    assert holder.states_entered()[-1] == "LockNotReleased"
    assert holder.error == "AwsThrottledError"
    assert "Deployed" not in holder.states_entered()
    [arn] = queued
    assert pipe.cloud.wait_execution(arn, timeout=60).output["lock"]["outcome"] == "QUEUED"
    handed = table.read("staging")
    assert handed is not None
    assert handed.handed_off_by == holder.arn
    assert [p.reference for p in handed.carried.values()] == [digest]

    pipe.cloud.aws_faults.clear()
    pipe.cloud.deliver_event(status_change(pipe, holder.arn, "FAILED"))
    follow_up = pipe.cloud.wait_execution(handed.owner, timeout=180)

    assert follow_up.status == "SUCCEEDED", (follow_up.error, follow_up.cause)
    assert pipe.deployment_image("analytics-service").endswith(digest)
    assert_invariants(pipe, follow_up, new_release=pipe.planned_release(follow_up))


def test_a_field_added_by_hand_survives_a_deploy_only_reported_in_its_outcome(pipe: Pipeline) -> None:
    """Drift (issue 12): someone ran `kubectl set env` on a workload; the next deploy's server-side apply keeps the
    variable (it is not the control plane's field to remove), so the deploy says so in its outcome, which is the SNS
    notification's message (DRIFT KEPT, the object, the path, the manager), instead of keeping it silently."""
    pipe.first_release()
    api = api_client(pipe.cluster)  # the official client, as a person would
    try:
        apps = AppsV1Api(api)
        edc = api.sanitize_for_serialization(apps.read_namespaced_deployment("edc-service", "clinical-trials"))
        edc["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append({"name": "DEBUG", "value": "1"})
        apps.replace_namespaced_deployment("edc-service", "clinical-trials", edc, field_manager="kubectl-set")
    finally:
        api.close()
    pipe.cluster.advance(30)

    result = pipe.push_and_deploy("analytics-service", "main-2", timeout=180)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    message = result.output["outcome"]["message"]
    kept = message.split("DRIFT KEPT: ", 1)[1].split(": ", 1)[1].split("; ")
    env = "spec.template.spec.containers[name=edc-service].env[name=DEBUG]"
    assert kept == [f"Deployment.apps/clinical-trials/edc-service {env} (by kubectl-set)"], message
    api = api_client(pipe.cluster)
    try:
        live = AppsV1Api(api).read_namespaced_deployment("edc-service", "clinical-trials")
    finally:
        api.close()
    assert "DEBUG" in [e.name for e in live.spec.template.spec.containers[0].env or []]  # kept, and said so
    assert_invariants(pipe, result, new_release=pipe.planned_release(result))
