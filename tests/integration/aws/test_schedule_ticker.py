"""A long-running cloud fires its schedules by itself when they come due on its clock (make up's ScheduleTicker)."""

from __future__ import annotations

from typing import Any

import pytest

from local.aws.schedules import ScheduleTicker

pytestmark = pytest.mark.integration


def test_the_nightly_schedule_fires_once_when_its_time_comes(harness_cloud: Any) -> None:
    ticker = ScheduleTicker(harness_cloud)
    clock = harness_cloud.clock
    assert ticker.tick(clock.utcnow()) == []  # nothing is due at the start

    clock.advance(24 * 3600 + 60)  # past the next 03:00 UTC (cron(0 3 * * ? *))
    assert ticker.tick(clock.utcnow()) == ["PipelineNightly"]
    assert ticker.tick(clock.utcnow()) == []  # once per due time

    sfn = harness_cloud.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=harness_cloud.arn("Pipeline"))["executions"]
    result = harness_cloud.wait_execution(execution["executionArn"])
    assert result.status == "SUCCEEDED"
    assert result.output["request"]["n"] == 7  # the schedule's input
