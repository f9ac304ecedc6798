"""EventBridge rules and schedules from the template deliver to their targets the way AWS does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.aws.eventbridge import transform

pytestmark = pytest.mark.integration


def _release_event(detail: dict[str, Any], source: str = "fixture.releases") -> dict[str, Any]:
    return {"Source": source, "DetailType": "Release Requested", "Detail": json.dumps(detail)}


def test_matching_event_starts_the_state_machine_with_the_transformed_input(harness_cloud: Any) -> None:
    deliveries = harness_cloud.put_events([_release_event({"n": 6, "mode": "fail", "release": "r-42"})])

    assert len(deliveries) == 1
    assert deliveries[0].target_arn == harness_cloud.arn("Pipeline")
    assert json.loads(deliveries[0].input) == {
        "n": 6,
        "mode": "fail",
        "items": [],
        "note": "release r-42 requested",
    }
    result = harness_cloud.wait_execution(deliveries[0].execution_arn)
    assert result.status == "SUCCEEDED"
    assert result.output["request"]["note"] == "release r-42 requested"


def test_non_matching_event_starts_nothing(harness_cloud: Any) -> None:
    sfn = harness_cloud.client("stepfunctions")

    deliveries = harness_cloud.put_events([_release_event({"n": 1}, source="someone.else")])

    assert deliveries == []
    assert sfn.list_executions(stateMachineArn=harness_cloud.arn("Pipeline"))["executions"] == []


def test_standalone_rule_delivers_input_path_to_a_lambda_target(harness_cloud: Any) -> None:
    deliveries = harness_cloud.put_events(
        [{"Source": "fixture.audit", "DetailType": "Audit", "Detail": json.dumps({"n": 21})}]
    )

    assert [d.source for d in deliveries] == [harness_cloud.ref("AuditRule")]
    assert deliveries[0].invocation is not None
    assert deliveries[0].invocation.json()["doubled"] == 42


def test_fire_schedule_by_name_starts_the_target_with_the_schedule_input(harness_cloud: Any) -> None:
    schedule = harness_cloud.client("scheduler").get_schedule(Name="PipelineNightly")
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"

    delivery = harness_cloud.fire_schedule("PipelineNightly")

    result = harness_cloud.wait_execution(delivery.execution_arn)
    assert result.status == "SUCCEEDED"
    assert result.output["request"]["n"] == 7


def test_input_transformer_quotes_strings_outside_json_strings_only() -> None:
    event = {"detail": {"name": "web", "count": 3, "tags": ["a"]}, "time": "2024-01-01T00:00:00Z"}
    transformer = {
        "InputPathsMap": {
            "name": "$.detail.name",
            "count": "$.detail.count",
            "tags": "$.detail.tags",
            "gone": "$.nope",
        },
        "InputTemplate": (
            '{"svc": <name>, "n": <count>, "tags": <tags>, "msg": "deploy <name> x<count>", "gone": <gone>}'
        ),
    }

    out = json.loads(transform(transformer, event, rule_name="r", rule_arn="arn:r"))

    assert out == {"svc": "web", "n": 3, "tags": ["a"], "msg": "deploy web x3", "gone": None}


def test_input_transformer_plain_text_template() -> None:
    out = transform(
        {"InputPathsMap": {"n": "$.detail.n"}, "InputTemplate": "rule <aws.events.rule-name> saw <n>"},
        {"detail": {"n": 5}},
        rule_name="my-rule",
        rule_arn="arn:r",
    )
    assert out == "rule my-rule saw 5"
