"""Resources come from the SAM template (Globals, intrinsics, conditions), not from a hand-kept list."""

from __future__ import annotations

import json
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
    with harness_cloud.runtime._lock:  # no invocation in progress (another test's execution may still be running)
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
        "      Runtime: python3.13\n"
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


# --- layers mounted at /opt ----------------------------------------------------------------------------------------
FIXTURE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "harness"


def test_opt_paths_in_a_function_environment_resolve_against_its_layers(harness_cloud: Any) -> None:
    result = harness_cloud.invoke("OptReaderFunction", {})

    assert result.function_error is None, result.json()
    body = result.json()
    assert body["greeting"] == "hello from the data layer"
    assert body["paths"]["GREETING_FILE"] == str(FIXTURE_DIR / "data_layer" / "config" / "greeting.txt")
    # A Python-built layer (BuildMethod python3.13) is packaged under python/, so it appears at /opt/python.
    assert body["paths"]["LAYER_MODULE"] == str(FIXTURE_DIR / "layer" / "harness_fixture_layer.py")
    assert body["module_exists"] is True
    # What no layer holds stays as written (it would not exist on AWS either); other values are untouched.
    assert body["paths"]["MISSING_FILE"] == "/opt/config/missing.txt"
    assert body["missing_exists"] is False
    assert body["paths"]["NOT_OPT"] == "/optional/config"
    # Lambda's configuration keeps what the template says, as on AWS.
    config = harness_cloud.client("lambda").get_function_configuration(
        FunctionName=harness_cloud.ref("OptReaderFunction")
    )
    assert config["Environment"]["Variables"]["GREETING_FILE"] == "/opt/config/greeting.txt"


def test_opt_paths_a_later_layer_shadows_an_earlier_one(tmp_path: Path) -> None:
    for layer, text in (("first", "one"), ("second", "two")):
        (tmp_path / layer / "config").mkdir(parents=True)
        (tmp_path / layer / "config" / "shared.txt").write_text(text)
    (tmp_path / "first" / "only-first.txt").write_text("1")
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        "import os\nfrom pathlib import Path\n\n\ndef handler(event, context):\n"
        "    read = {k: Path(os.environ[k]).read_text() for k in ('SHARED', 'ONLY_FIRST')}\n"
        "    return read | {'ROOT': os.environ['ROOT']}\n"
    )
    resources = (
        "  First:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: first/}\n"
        "  Second:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: second/}\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: fn/\n      Handler: app.handler\n"
        "      Runtime: python3.13\n"
        "      Layers: [!Ref First, !Ref Second]\n"
        "      Environment:\n        Variables:\n"
        "          SHARED: /opt/config/shared.txt\n          ONLY_FIRST: /opt/only-first.txt\n          ROOT: /opt\n"
    )
    with LocalCloud(_write_template(tmp_path, resources), layers_on_path=False) as cloud:
        result = cloud.invoke("Fn", {})

    assert result.function_error is None, result.json()
    assert result.json() == {"SHARED": "two", "ONLY_FIRST": "1", "ROOT": str(tmp_path / "second")}


def test_globals_references_order_creation(tmp_path: Path) -> None:
    """A layer declared after the functions that get it from Globals is still created first."""
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("import os\n\n\ndef handler(event, context):\n    return os.environ['D']\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.txt").write_text("x")
    path = tmp_path / "template.yaml"
    path.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Globals:\n  Function:\n    Layers: [!Ref Data]\n    Environment: {Variables: {D: /opt/d.txt}}\n"
        "Resources:\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: fn/, Handler: app.handler, Runtime: python3.13}\n"
        "  Data:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: data/}\n"
    )
    with LocalCloud(path, layers_on_path=False) as cloud:
        assert cloud.invoke("Fn", {}).json() == str(tmp_path / "data" / "d.txt")


# --- KMS -----------------------------------------------------------------------------------------------------------
def test_kms_key_and_alias_are_created_and_the_topic_uses_the_key(harness_cloud: Any) -> None:
    cloud = harness_cloud
    kms = cloud.client("kms")
    key_id = cloud.ref("AlertsKey")
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyId"] == key_id  # Ref -> KeyId
    assert cloud.arn("AlertsKey") == metadata["Arn"] == f"arn:aws:kms:us-east-1:123456789012:key/{key_id}"
    assert metadata["Description"] == "harness alerts"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(KeyId=key_id)["Aliases"]}
    assert aliases == {"alias/harness-alerts": key_id}
    assert cloud.ref("AlertsKeyAlias") == "alias/harness-alerts"

    sns = cloud.client("sns")
    attributes = sns.get_topic_attributes(TopicArn=cloud.ref("AlertsTopic"))["Attributes"]
    assert attributes["KmsMasterKeyId"] == key_id
    assert attributes["DisplayName"] == "harness alerts"
    assert sns.publish(TopicArn=cloud.ref("AlertsTopic"), Message="alarm")["MessageId"]


def test_a_given_key_arn_skips_the_conditional_key() -> None:
    template = FIXTURE_DIR / "template.yaml"
    given = "arn:aws:kms:us-east-1:123456789012:key/given"
    with LocalCloud(template, stack_name="givenkey", parameters={"AlertsKeyArn": given}) as cloud:
        assert "AlertsKey" not in cloud.resources
        assert "AlertsKeyAlias" not in cloud.resources
        attributes = cloud.client("sns").get_topic_attributes(TopicArn=cloud.ref("AlertsTopic"))["Attributes"]
        assert attributes["KmsMasterKeyId"] == given
