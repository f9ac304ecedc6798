"""What AWS enforces, enforced on the pipeline: IAM on every call, and ECR's push events for promotion retags."""

from __future__ import annotations

import json
from typing import Any

from local.aws.seams import pattern_matches
from local.pipeline import Pipeline


def _role_of(pipe: Pipeline, function: str) -> str:
    lam = pipe.cloud.client("lambda")
    return str(lam.get_function_configuration(FunctionName=pipe.cloud.ref(function))["Role"])


def test_a_function_whose_policy_lacks_one_action_fails_the_release_with_access_denied_naming_it(
    pipe: Pipeline,
) -> None:
    pipe.cloud.iam.remove_action(_role_of(pipe, "PlanFunction"), "ecr:DescribeImages")

    result = pipe.cloud.wait_execution(pipe.start_first_release(), timeout=60.0)

    assert result.status == "FAILED"
    assert "AccessDeniedException" in str(result.cause)
    assert "is not authorized to perform: ecr:DescribeImages on resource: arn:aws:ecr:" in str(result.cause)


def test_the_deploy_state_machine_role_without_invoke_on_a_step_fails_naming_lambda_invoke(pipe: Pipeline) -> None:
    machine = pipe.cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=pipe.cloud.arn("DeployStateMachine")
    )
    pipe.cloud.iam.remove_action(machine["roleArn"], "lambda:InvokeFunction")

    result = pipe.cloud.wait_execution(pipe.start_first_release(), timeout=60.0)

    assert result.status == "FAILED"
    assert "not authorized to perform: lambda:InvokeFunction on resource" in json.dumps(
        [e.details for e in result.history]
    )


def test_a_promotion_retag_is_an_ecr_push_event_and_the_deploy_rule_ignores_it(pipe: Pipeline) -> None:
    result = pipe.first_release()

    promoted = [e for e in pipe.cloud.ecr_events if e["detail"].get("image-tag", "").startswith("staging")]
    executions = pipe.cloud.client("stepfunctions").list_executions(
        stateMachineArn=pipe.cloud.arn("DeployStateMachine")
    )["executions"]
    rule = next(r for r in pipe.cloud.client("events").list_rules()["Rules"] if "aws.ecr" in str(r.get("EventPattern")))
    pattern: dict[str, Any] = json.loads(rule["EventPattern"])
    without_exclusion = json.loads(rule["EventPattern"])
    del without_exclusion["detail"]["image-tag"]

    assert result.status == "SUCCEEDED"
    # PromoteImages retagged every digest <env> and <env>-<release>: ECR emitted a PUSH/SUCCESS event for each.
    assert {e["detail"]["image-tag"] for e in promoted} >= {"staging"}
    event = promoted[0]
    assert event["detail-type"] == "ECR Image Action"
    assert {"action-type": "PUSH", "result": "SUCCESS"}.items() <= event["detail"].items()
    assert event["detail"]["image-digest"].startswith("sha256:")
    # Without the image-tag exclusion the deploy rule would start a deploy per retag; with it, none started.
    assert pattern_matches(json.dumps(without_exclusion), event)
    assert not pattern_matches(json.dumps(pattern), event)
    assert [e["executionArn"] for e in executions] == [result.arn]
