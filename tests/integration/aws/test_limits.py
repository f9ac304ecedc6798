"""AWS's limits and events in the local cloud: payload quotas, timeouts, item size, parameter validation, ECR pushes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from local.aws import LocalCloud

REPO = Path(__file__).resolve().parents[3]


def _machine(cloud: LocalCloud, states: dict[str, object]) -> str:
    return str(
        cloud.client("stepfunctions").create_state_machine(
            name="limits",
            definition=json.dumps({"StartAt": next(iter(states)), "States": states}),
            roleArn=f"arn:aws:iam::{cloud.account_id}:role/limits",
        )["stateMachineArn"]
    )


def test_step_functions_refuses_an_input_over_256_kib_and_fails_a_state_whose_output_exceeds_it() -> None:
    with LocalCloud(None) as cloud:
        arn = _machine(cloud, {"Grow": {"Type": "Pass", "Result": "x" * (256 * 1024), "End": True}})
        with pytest.raises(ClientError) as refused:
            cloud.start_execution(arn, {"blob": "y" * (256 * 1024)})
        started = cloud.start_execution(arn, {"blob": "small"})
        result = cloud.wait_execution(started)

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 262144" in refused.value.response["Error"]["Message"]
    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"


_FUNCTIONS = """
import time


def slow(event, context):
    time.sleep(event["seconds"])
    return {"slept": event["seconds"]}


def big(event, context):
    return "x" * event["bytes"]
"""


def _template(tmp_path: Path) -> Path:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(_FUNCTIONS)
    path = tmp_path / "template.yaml"
    path.write_text(
        """Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: python3.13, CodeUri: fn/, Timeout: 1}
Resources:
  Slow:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.slow}
  Big:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.big}
"""
    )
    return path


def test_lambda_timeout_and_payload_quotas_fail_as_on_aws(tmp_path: Path) -> None:
    with LocalCloud(_template(tmp_path), stack_name="limits") as cloud:
        fast = cloud.invoke("Slow", {"seconds": 0})
        slow = cloud.invoke("Slow", {"seconds": 1.2})
        big = cloud.invoke("Big", {"bytes": 6_291_557})
        with pytest.raises(ClientError) as too_large:
            cloud.invoke("Big", {"bytes": 1, "padding": "p" * 6_291_456})

    assert fast.function_error is None
    assert slow.function_error == "Unhandled"
    assert slow.json()["errorType"] == "Sandbox.Timedout"
    assert slow.json()["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert big.function_error == "Unhandled"
    assert big.json()["errorType"] == "Function.ResponseSizeTooLarge"
    assert too_large.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_dynamodb_refuses_an_item_over_400_kb() -> None:
    with LocalCloud(None) as cloud:
        ddb = cloud.client("dynamodb")
        ddb.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        big = {"pk": {"S": "a"}, "blob": {"B": b"x" * 410_000}}
        refusals = []
        # every path the ledger adapter writes by: PutItem, BatchWriteItem (put_many), TransactWriteItems (fenced)
        for write in (
            lambda: ddb.put_item(TableName="t", Item=big),
            lambda: ddb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": big}}]}),
            lambda: ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": big}}]),
        ):
            with pytest.raises(ClientError) as refused:
                write()
            refusals.append(refused.value.response["Error"])

    assert [e["Code"] for e in refusals] == ["ValidationException"] * 3
    assert all("Item size has exceeded the maximum allowed size" in e["Message"] for e in refusals)


_PARAMETERS = {
    "Parameters": {
        "Name": {"Type": "String", "AllowedPattern": "[a-z]+", "MinLength": 2, "MaxLength": 5},
        "Env": {"Type": "String", "AllowedValues": ["staging", "production"], "Default": "staging"},
        "Size": {"Type": "Number", "MinValue": 1, "MaxValue": 3, "Default": 2},
        "Mail": {"Type": "String", "AllowedPattern": "^[^@]+@[^@]+$", "ConstraintDescription": "an e-mail address"},
    },
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"Name": "abc"}, "Parameters: [Mail] must have values"),
        ({"Name": "abc", "Mail": "a@b", "Nope": "x"}, "Parameters: [Nope] do not exist in the template"),
        ({"Name": "ab1", "Mail": "a@b"}, "Parameter 'Name' must match pattern [a-z]+"),
        ({"Name": "a", "Mail": "a@b"}, "Parameter 'Name' must contain at least 2 characters"),
        ({"Name": "abcdef", "Mail": "a@b"}, "Parameter 'Name' must contain at most 5 characters"),
        ({"Name": "abc", "Mail": "a@b", "Env": "dev"}, "Parameter 'Env' must be one of AllowedValues"),
        ({"Name": "abc", "Mail": "a@b", "Size": "4"}, "Parameter 'Size' must be a number not greater than 3"),
        ({"Name": "abc", "Mail": "a@b", "Size": "many"}, "Parameter 'Size' must be a number"),
        ({"Name": "abc", "Mail": ""}, "Parameter 'Mail' failed to satisfy constraint: an e-mail address"),
    ],
)
def test_cloudformation_validates_parameters_before_creating_anything(parameters: dict[str, str], message: str) -> None:
    with LocalCloud(None) as cloud:
        cfn = cloud.client("cloudformation")
        with pytest.raises(ClientError) as refused:
            cfn.create_stack(
                StackName="params",
                TemplateBody=json.dumps(_PARAMETERS),
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            )
        stacks = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]

    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("ValidationError", message)
    assert stacks == []


def test_the_storage_stack_accepts_the_empty_alert_email_the_control_plane_passes() -> None:
    from local.aws.limits import RequestRejected, validate_parameters  # noqa: PLC0415
    from local.aws.template import _CfnLoader  # noqa: PLC0415

    text = (REPO / "manifests" / "cloudformation" / "storage.yaml").read_text()
    template = yaml.load(text, Loader=_CfnLoader)
    required = {
        name: spec for name, spec in template["Parameters"].items() if "Default" not in spec and name != "AlertEmail"
    }
    given = [{"ParameterKey": name, "ParameterValue": _valid(spec)} for name, spec in required.items()]

    validate_parameters(template, [*given, {"ParameterKey": "AlertEmail", "ParameterValue": ""}])
    validate_parameters(template, [*given, {"ParameterKey": "AlertEmail", "ParameterValue": "ops@example.com"}])
    with pytest.raises(RequestRejected, match="AlertEmail"):
        validate_parameters(template, [*given, {"ParameterKey": "AlertEmail", "ParameterValue": "not an e-mail"}])


def _valid(spec: dict[str, object]) -> str:
    allowed = spec.get("AllowedValues")
    return str(allowed[0]) if isinstance(allowed, list) else "staging"


def test_every_successful_put_image_is_an_ecr_image_action_event_retags_included() -> None:
    with LocalCloud(None) as cloud:
        digest = cloud.push_image("clinical-trials/web", "main-1")
        ecr = cloud.client("ecr")
        manifest = ecr.batch_get_image(repositoryName="clinical-trials/web", imageIds=[{"imageDigest": digest}])[
            "images"
        ][0]["imageManifest"]
        ecr.put_image(repositoryName="clinical-trials/web", imageManifest=manifest, imageTag="staging")
        with pytest.raises(ClientError):  # the same tag on the same digest again: refused, no event
            ecr.put_image(repositoryName="clinical-trials/web", imageManifest=manifest, imageTag="staging")

    assert [(e["detail"]["image-tag"], e["detail"]["image-digest"]) for e in cloud.ecr_events] == [
        ("main-1", digest),
        ("staging", digest),
    ]
    assert {
        "action-type": "PUSH",
        "result": "SUCCESS",
        "repository-name": "clinical-trials/web",
    }.items() <= cloud.ecr_events[1]["detail"].items()
    assert cloud.ecr_events[1]["detail-type"] == "ECR Image Action"
    assert cloud.ecr_events[1]["source"] == "aws.ecr"


def test_an_execution_whose_history_would_pass_the_quota_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from local.aws import seams  # noqa: PLC0415

    assert seams.HISTORY_LIMIT == 25_000
    monkeypatch.setattr(seams, "HISTORY_LIMIT", 40)  # the same rule on a loop that reaches it quickly
    loop = {
        "Spin": {"Type": "Pass", "Next": "Again"},
        "Again": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Spin"}]},
    }
    with LocalCloud(None) as cloud:
        result = cloud.wait_execution(cloud.start_execution(_machine(cloud, loop), {"go": True}), timeout=60)

    assert result.status == "FAILED"
    assert "The execution reached the maximum number of history events (40)." in str(result.cause)
    assert len(result.history) == 40
    assert result.history[-1].type == "ExecutionFailed"
