"""The fixture state machine runs in moto with in-process handlers: every ASL feature the deployer relies on."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.aws import ExecutionTimeoutError
from tests.eventually import eventually

pytestmark = pytest.mark.e2e


def _wait_for_token(cloud: Any, execution_name: str) -> str:
    table = cloud.client("dynamodb")

    def registered() -> str | None:
        item = table.get_item(TableName=cloud.ref("FixtureTable"), Key={"id": {"S": f"token#{execution_name}"}})
        return str(item["Item"]["token"]["S"]) if "Item" in item else None

    return eventually(registered, what=f"{execution_name} to register its task token")


def test_pipeline_runs_task_choice_wait_map_parallel_retry_and_callback(harness_cloud: Any) -> None:
    cloud = harness_cloud
    clock_before = cloud.clock.now()
    wall_before = time.monotonic()

    arn = cloud.start_execution("Pipeline", {"n": 2, "items": [1, 2, 3]}, name="full-run")
    token = _wait_for_token(cloud, "full-run")
    cloud.send_task_success(token, {"approved": True})
    result = cloud.wait_execution(arn)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output["work"] == {
        "doubled": 4,
        "function_name": "harness-WorkFunction",
        "table": "harness-FixtureTable",
        "stage": "dev-us-east-1",
    }
    assert result.output["mapped"] == [2, 4, 6]
    assert result.output["parallel"] == [{"attempts": 3}, {"approved": True}]
    # Wait 30 s plus Retry back-off 5 s and 10 s, all on the simulated clock, none of it on the wall clock.
    assert cloud.clock.now() - clock_before >= 45
    assert time.monotonic() - wall_before < 10
    assert "Pause" in result.states_entered()
    assert "CallFailing" not in result.states_entered()
    assert result.count("MapIterationSucceeded") == 3
    flaky_failures = [e for e in result.history if e.type == "TaskFailed" and e.details.get("error") == "FlakyError"]
    assert len(flaky_failures) == 2


def test_handler_exception_surfaces_as_lambda_unhandled_error_and_catch_routes_on_error_type(
    harness_cloud: Any,
) -> None:
    result = harness_cloud.run("Pipeline", {"n": 5, "mode": "fail", "items": []})

    assert result.status == "SUCCEEDED"
    assert result.output["route"] == "caught"
    assert result.output["error"] == "PermanentFixtureError"
    cause = json.loads(result.output["cause"])
    assert cause["errorType"] == "PermanentFixtureError"
    assert cause["errorMessage"] == "cannot process 5"
    assert any("fail/app.py" in frame for frame in cause["stackTrace"])
    assert "Unexpected" not in result.states_entered()


def test_context_object_times_follow_the_simulated_clock(harness_cloud: Any) -> None:
    harness_cloud.clock.advance(3600)
    expected = harness_cloud.clock.utcnow().strftime("%Y-%m-%dT%H:%M")

    result = harness_cloud.run("Pipeline", {"n": 1, "mode": "fail", "items": []})

    assert result.output["started"].startswith(expected)
    assert result.output["entered"].startswith(expected)
    assert result.output["started"].endswith("Z")


def test_wait_until_timestamp_advances_the_clock_to_the_timestamp(harness_cloud: Any) -> None:
    cloud = harness_cloud
    target = cloud.clock.now() + 600
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(target))

    arn = cloud.start_execution("Pipeline", {"n": 1, "items": [], "until": until}, name="until-run")
    cloud.send_task_success(_wait_for_token(cloud, "until-run"), {})
    result = cloud.wait_execution(arn)

    assert result.status == "SUCCEEDED"
    assert "WaitUntil" in result.states_entered()
    assert cloud.clock.now() >= int(target)


def test_callback_task_failure_fails_the_execution_with_the_sent_error(harness_cloud: Any) -> None:
    cloud = harness_cloud
    arn = cloud.start_execution("Pipeline", {"n": 1, "items": []}, name="rejected-run")
    cloud.send_task_failure(_wait_for_token(cloud, "rejected-run"), error="ApprovalRejected", cause="no")

    result = cloud.wait_execution(arn)

    assert result.status == "FAILED"
    assert result.error == "ApprovalRejected"


def test_wait_execution_raises_at_its_deadline_while_a_callback_is_pending(harness_cloud: Any) -> None:
    arn = harness_cloud.start_execution("Pipeline", {"n": 1, "items": []}, name="pending-run")
    with pytest.raises(ExecutionTimeoutError, match="still RUNNING"):
        harness_cloud.wait_execution(arn, timeout=0.5)
