"""Resources come from the SAM template (Globals, intrinsics, conditions), not from a hand-kept list."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from local.aws import SUPPORTED_TYPES, LocalCloud, UnsupportedResourceError
from local.aws.template import TemplateError

pytestmark = pytest.mark.integration


def test_template_resources_exist_in_moto_with_resolved_names(harness_cloud: Any) -> None:
    cloud = harness_cloud
    assert cloud.client("dynamodb").describe_table(TableName="harness-audit")["Table"]["TableStatus"] == "ACTIVE"
    assert cloud.ref("ArtifactBucket") == "harness-artifacts-subnet-a"
    cloud.client("s3").head_bucket(Bucket="harness-artifacts-subnet-a")
    assert "ProdOnlyBucket" not in cloud.resources  # Condition IsProd is false for Stage=dev
    machine = cloud.client("stepfunctions").describe_state_machine(stateMachineArn=cloud.arn("Pipeline"))
    assert machine["name"] == "harness-pipeline"
    assert "${" not in machine["definition"]
    assert cloud.arn("WorkFunction") in machine["definition"]
    alarm = cloud.client("cloudwatch").describe_alarms(AlarmNames=[cloud.ref("FailuresAlarm")])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == [cloud.ref("AlertsTopic")]


def test_function_environment_merges_globals_and_is_applied_only_during_the_call(harness_cloud: Any) -> None:
    config = harness_cloud.client("lambda").get_function_configuration(FunctionName=harness_cloud.ref("FailFunction"))
    variables = config["Environment"]["Variables"]
    assert variables["EXTRA"] == "only-here"
    assert variables["TABLE_NAME"] == "harness-FixtureTable"
    assert config["MemorySize"] == 256

    result = harness_cloud.invoke("WorkFunction", {"n": 4})

    assert result.function_error is None
    assert result.json()["doubled"] == 8
    assert result.json()["remaining_ms"] > 0
    assert "TABLE_NAME" not in os.environ


def test_parameter_overrides_change_conditions_and_substitutions() -> None:
    template = Path(__file__).resolve().parents[2] / "fixtures" / "harness" / "template.yaml"
    with LocalCloud(template, stack_name="prodstack", parameters={"Stage": "prod"}) as cloud:
        assert "ProdOnlyBucket" in cloud.resources
        assert cloud.invoke("WorkFunction", {"n": 1}).json()["stage"] == "production"


def _write_template(tmp_path: Path, resources: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(f"Transform: AWS::Serverless-2016-10-31\nResources:\n{resources}")
    return path


def test_unsupported_resource_type_is_an_error_naming_logical_id_and_type(tmp_path: Path) -> None:
    path = _write_template(tmp_path, "  Api:\n    Type: AWS::AppSync::GraphQLApi\n    Properties: {Name: x}\n")
    assert "AWS::AppSync::GraphQLApi" not in SUPPORTED_TYPES

    with pytest.raises(UnsupportedResourceError, match=r"Api: resource type AWS::AppSync::GraphQLApi") as caught:
        LocalCloud(path).__enter__()

    assert caught.value.logical_id == "Api"


def test_unsupported_event_source_is_an_error_too(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    resources = (
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn/\n      Handler: app.handler\n"
        "      Events:\n        Web:\n          Type: Api\n          Properties: {Path: /, Method: get}\n"
    )
    with pytest.raises(UnsupportedResourceError, match=r"Fn.Events.Web: resource type SAM event source Api"):
        LocalCloud(_write_template(tmp_path, resources)).__enter__()


def test_missing_definition_substitution_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sm.asl.json").write_text(
        '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Nope}", "End": true}}}'
    )
    resources = "  Sm:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      DefinitionUri: sm.asl.json\n"
    with pytest.raises(TemplateError, match=r"DefinitionSubstitutions missing for \['Nope'\]"):
        LocalCloud(_write_template(tmp_path, resources)).__enter__()


def test_a_failed_start_leaves_no_cloud_active(tmp_path: Path) -> None:
    path = _write_template(tmp_path, "  Api:\n    Type: AWS::AppSync::GraphQLApi\n")
    with pytest.raises(UnsupportedResourceError):
        LocalCloud(path).__enter__()
    with LocalCloud(None) as cloud:
        assert cloud.resources == {}
