"""Security hygiene of the control plane's template (and the KMS key policies of every template): a log group with
retention for every function and state machine, state-machine logging with the permissions AWS documents, TLS-only
buckets with access logging, and service principals in key policies scoped to this account's resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = [REPO / "template.yaml", *sorted((REPO / "manifests" / "cloudformation").glob("*.yaml"))]
# https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html#cloudwatch-iam-policy
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# Condition keys that tie a service principal's use of a key to our account / our resources.
SCOPING_KEYS = ("aws:SourceAccount", "aws:SourceArn", "kms:EncryptionContext:", "kms:ViaService", "kms:CallerAccount")


def _load(path: Path) -> dict[str, Any]:
    template, matches = decode_str(path.read_text())
    assert not matches, f"{path.name} does not parse: {matches}"
    assert template is not None
    return dict(template)


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return _load(REPO / "template.yaml")


def _of_type(tpl: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == type_}


def test_every_function_has_its_log_group_with_retention(sam: dict[str, Any]) -> None:
    functions = set(_of_type(sam, "AWS::Serverless::Function"))
    groups = {
        props["LogGroupName"]["Fn::Sub"]: props
        for props in (g["Properties"] for g in _of_type(sam, "AWS::Logs::LogGroup").values())
        if isinstance(props.get("LogGroupName"), dict) and "/aws/lambda/" in str(props["LogGroupName"])
    }
    assert functions
    assert set(groups) == {f"/aws/lambda/${{{name}}}" for name in functions}
    assert all(g["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())
    assert all(g["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]} for g in groups.values())
    assert sam["Parameters"]["LogRetentionDays"]["Default"] >= 365


def test_every_state_machine_logs_transitions_without_execution_data(sam: dict[str, Any]) -> None:
    machines = _of_type(sam, "AWS::Serverless::StateMachine")
    assert len(machines) == 5
    for name, machine in machines.items():
        logging = machine["Properties"]["Logging"]
        assert logging["Level"] in {"ALL", "ERROR"}, name
        assert logging["IncludeExecutionData"] is False, name
        (destination,) = logging["Destinations"]
        group, attribute = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"]
        assert attribute == "Arn"
        group_props = sam["Resources"][group]["Properties"]
        assert sam["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
        assert group_props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group_props["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}
        assert "/aws/vendedlogs/states/" in group_props["LogGroupName"]["Fn::Sub"]
        granted = {
            action
            for policy in machine["Properties"]["Policies"]
            for statement in (policy.get("Statement") or [])
            for action in statement.get("Action", [])
        }
        assert granted >= LOG_DELIVERY_ACTIONS, (name, LOG_DELIVERY_ACTIONS - granted)


def _bucket_policies(tpl: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        r["Properties"]["Bucket"]["Ref"]: r["Properties"]["PolicyDocument"]["Statement"]
        for r in _of_type(tpl, "AWS::S3::BucketPolicy").values()
    }


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_bucket_refuses_requests_without_tls(path: Path) -> None:
    tpl = _load(path)
    policies = _bucket_policies(tpl)
    for bucket in _of_type(tpl, "AWS::S3::Bucket"):
        deny = [
            s
            for s in policies.get(bucket, [])
            if s["Effect"] == "Deny"
            and s["Principal"] == "*"
            and s["Action"] == "s3:*"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert len(deny) == 1, bucket
        assert deny[0]["Resource"] == [
            {"Fn::GetAtt": [bucket, "Arn"]},
            {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
        ], bucket


def test_the_artifacts_bucket_logs_access_to_a_bucket_only_its_log_delivery_may_write(sam: dict[str, Any]) -> None:
    artifacts = sam["Resources"]["ArtifactsBucket"]["Properties"]
    assert artifacts["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    prefix = artifacts["LoggingConfiguration"]["LogFilePrefix"]
    logs = sam["Resources"]["AccessLogsBucket"]
    assert logs["DeletionPolicy"] == "Retain"
    assert all(logs["Properties"]["PublicAccessBlockConfiguration"].values())
    (delivery,) = [s for s in _bucket_policies(sam)["AccessLogsBucket"] if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Action"] == "s3:PutObject"
    assert delivery["Resource"] == {"Fn::Sub": f"${{AccessLogsBucket.Arn}}/{prefix}*"}
    assert delivery["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }


def _service_statements(tpl: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{name}.{statement.get('Sid', '?')}", statement)
        for name, key in _of_type(tpl, "AWS::KMS::Key").items()
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if "Service" in statement.get("Principal", {})
    ]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_kms_key_policies_scope_every_service_principal_to_this_account(path: Path) -> None:
    for where, statement in _service_statements(_load(path)):
        keys = [key for operator in statement.get("Condition", {}).values() for key in operator]
        assert any(key.startswith(SCOPING_KEYS) for key in keys), f"{path.name} {where}: unscoped service principal"


def test_the_kms_scoping_check_sees_service_principals() -> None:
    """The check above is not vacuous: the templates do grant services on keys (CloudWatch, CloudWatch Logs)."""
    found = [where for path in TEMPLATES for where, _ in _service_statements(_load(path))]
    assert len(found) >= 3, found
