"""IAM in the local cloud: who a call runs as, which policies it has after the SAM transform, and AWS's answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.aws import LocalCloud
from local.aws.authz import UnmappedOperationError
from local.aws.iam import Policy, PolicyError, evaluate, managed_policy

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ledger"


def policy(*statements: dict[str, Any]) -> list[Policy]:
    return [Policy.parse("p", {"Version": "2012-10-17", "Statement": list(statements)})]


# --- evaluation ----------------------------------------------------------------------------------------------------
def test_allow_needs_a_matching_action_and_resource_and_deny_wins() -> None:
    allow = {"Effect": "Allow", "Action": ["dynamodb:Get*", "dynamodb:PutItem"], "Resource": TABLE}
    assert evaluate(policy(allow), "dynamodb:GetItem", TABLE) == "Allow"
    assert evaluate(policy(allow), "DynamoDB:getitem", TABLE) == "Allow"  # actions are case-insensitive
    assert evaluate(policy(allow), "dynamodb:DeleteItem", TABLE) == "ImplicitDeny"
    assert evaluate(policy(allow), "dynamodb:GetItem", TABLE + "2") == "ImplicitDeny"
    assert evaluate(policy(allow), "dynamodb:GetItem", TABLE.upper()) == "ImplicitDeny"  # resources are not
    deny = {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "*"}
    assert evaluate(policy(allow, deny), "dynamodb:PutItem", TABLE) == "ExplicitDeny"


def test_not_action_and_not_resource_match_everything_else() -> None:
    statement = {"Effect": "Allow", "NotAction": "iam:*", "NotResource": f"{TABLE}/index/*"}
    assert evaluate(policy(statement), "dynamodb:Query", TABLE) == "Allow"
    assert evaluate(policy(statement), "iam:PassRole", TABLE) == "ImplicitDeny"
    assert evaluate(policy(statement), "dynamodb:Query", f"{TABLE}/index/by-env") == "ImplicitDeny"


def test_conditions_as_iam_evaluates_them() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/stacks"
    passed = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": role,
        "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
    }
    assert evaluate(policy(passed), "iam:PassRole", role, {"iam:PassedToService": ["cloudformation.amazonaws.com"]})
    assert evaluate(policy(passed), "iam:PassRole", role, {"iam:PassedToService": ["lambda.amazonaws.com"]}) == (
        "ImplicitDeny"
    )
    assert evaluate(policy(passed), "iam:PassRole", role, {}) == "ImplicitDeny"  # missing key: positive op is false
    negated = {**passed, "Condition": {"StringNotEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}}
    assert evaluate(policy(negated), "iam:PassRole", role, {}) == "Allow"  # ... and a negated one true
    arn_like = {**passed, "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:events:*:*:rule/*"}}}
    assert evaluate(policy(arn_like), "iam:PassRole", role, {"aws:SourceArn": ["arn:aws:events:us-east-1:1:rule/r"]})
    if_exists = {**passed, "Condition": {"StringEqualsIfExists": {"aws:RequestedRegion": "us-east-1"}}}
    assert evaluate(policy(if_exists), "iam:PassRole", role, {}) == "Allow"


def test_an_unknown_condition_operator_or_managed_policy_fails_loudly() -> None:
    with pytest.raises(PolicyError, match=r"StringSoundsLike"):
        policy({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringSoundsLike": {"a": "b"}}})
    with pytest.raises(PolicyError, match=r"AdministratorAccess.*add its document"):
        managed_policy("arn:aws:iam::aws:policy/AdministratorAccess")


# --- the harness ---------------------------------------------------------------------------------------------------
_CALLER = """
import json, os
import boto3


def handler(event, context):
    identity = boto3.client("sts").get_caller_identity()
    ddb = boto3.client("dynamodb")
    table = os.environ["TABLE"]
    ddb.get_item(TableName=table, Key={"pk": {"S": "a"}})
    try:
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}})
        denied = None
    except ddb.exceptions.ClientError as error:
        denied = error.response["Error"]
    return {"arn": identity["Arn"], "key": os.environ["AWS_ACCESS_KEY_ID"], "denied": denied}
"""


def _template(tmp_path: Path) -> Path:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(_CALLER)
    path = tmp_path / "template.yaml"
    path.write_text(
        """Transform: AWS::Serverless-2016-10-31
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handler
      Runtime: python3.13
      Environment: {Variables: {TABLE: !Ref Table}}
      Policies:
        - DynamoDBReadPolicy: {TableName: !Ref Table}
"""
    )
    return path


def test_a_handler_runs_as_its_role_and_a_call_its_policy_lacks_is_denied_as_aws_words_it(tmp_path: Path) -> None:
    with LocalCloud(_template(tmp_path), stack_name="iam") as cloud:
        result = cloud.invoke("Reader", {})
        body = result.json()
        table_arn = cloud.arn("Table")
        caller = cloud.caller_arn(body["key"])

    assert result.function_error is None, body
    session = "arn:aws:sts::123456789012:assumed-role/iam-Reader-Role/iam-Reader"
    assert body["arn"] == caller == session  # STS, the harness and the handler agree on who it is
    assert body["denied"] == {
        "Code": "AccessDeniedException",
        "Message": f"User: {session} is not authorized to perform: dynamodb:PutItem on resource: {table_arn} "
        "because no identity-based policy allows the dynamodb:PutItem action",
    }


def test_removing_an_action_from_the_role_denies_the_call_that_needed_it(tmp_path: Path) -> None:
    with LocalCloud(_template(tmp_path), stack_name="iam") as cloud:
        role = cloud.client("lambda").get_function_configuration(FunctionName=cloud.ref("Reader"))["Role"]
        cloud.iam.remove_action(role, "dynamodb:GetItem")
        result = cloud.invoke("Reader", {})

    assert result.function_error == "Unhandled"
    error = result.json()
    assert error["errorType"] == "ClientError"  # DynamoDB does not model the error: botocore's generic class
    assert "(AccessDeniedException) when calling the GetItem operation" in error["errorMessage"]
    assert "not authorized to perform: dynamodb:GetItem on resource" in error["errorMessage"]


def test_sns_s3_and_cloudformation_answer_with_their_own_error_codes() -> None:
    with LocalCloud(None) as cloud:
        iam = cloud.client("iam")
        trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}]}
        arn = iam.create_role(RoleName="nothing", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        topic = cloud.client("sns").create_topic(Name="t")["TopicArn"]
        cloud.client("s3").create_bucket(Bucket="iam-bucket")
        creds = cloud.iam.credentials(arn, "session")
        session = cloud.iam.session(creds)
        errors = {}
        for service, call in (
            ("sns", lambda c: c.publish(TopicArn=topic, Message="m")),
            ("s3", lambda c: c.put_object(Bucket="iam-bucket", Key="k", Body=b"x")),
            ("cloudformation", lambda c: c.describe_stacks(StackName="s")),
        ):
            with pytest.raises(ClientError) as caught:
                call(session.client(service, region_name="us-east-1"))
            errors[service] = caught.value.response["Error"]
        with pytest.raises(UnmappedOperationError, match=r"sqs:ListQueues.*add it to the table"):
            session.client("sqs", region_name="us-east-1").list_queues()

    assert errors["sns"]["Code"] == "AuthorizationError"
    assert "perform: SNS:Publish on resource: " + topic in errors["sns"]["Message"]
    assert errors["s3"]["Code"] == "AccessDenied"
    assert "s3:PutObject on resource: arn:aws:s3:::iam-bucket/k" in errors["s3"]["Message"]
    assert errors["cloudformation"]["Code"] == "AccessDenied"


def test_enforcement_can_be_switched_off_for_harness_self_tests_only() -> None:
    with LocalCloud(None) as cloud:
        iam = cloud.client("iam")
        arn = iam.create_role(RoleName="nothing", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client = cloud.iam.session(cloud.iam.credentials(arn, "session")).client("sns", region_name="us-east-1")
        topic = cloud.client("sns").create_topic(Name="t")["TopicArn"]
        with pytest.raises(ClientError):
            client.publish(TopicArn=topic, Message="m")
        cloud.iam.enforce = False
        client.publish(TopicArn=topic, Message="m")


def test_the_project_template_roles_get_the_transformed_policies() -> None:
    from local.pipeline import parameters  # noqa: PLC0415

    with LocalCloud(parameters=parameters()) as cloud:
        lam = cloud.client("lambda")
        role = lam.get_function_configuration(FunctionName=cloud.ref("RecordFunction"))["Role"]
        names = {p.name for p in cloud.iam.policies(role)}
        machine = cloud.client("stepfunctions").describe_state_machine(stateMachineArn=cloud.arn("DeployStateMachine"))
        invoke = [
            p for p in cloud.iam.policies(machine["roleArn"]) if p.name.startswith("DeployStateMachineRolePolicy")
        ]
        plan = cloud.arn("PlanFunction")
        # The deploy lock's owner may be a deploy, a rollback or an off-hours run: AcquireLock must see each status.
        acquire = lam.get_function_configuration(FunctionName=cloud.ref("AcquireLockFunction"))["Role"]
        owners = {
            machine: evaluate(
                cloud.iam.policies(acquire),
                "states:DescribeExecution",
                cloud.arn(machine).replace(":stateMachine:", ":execution:") + ":run-1",
            )
            for machine in ("DeployStateMachine", "RollbackStateMachine", "OffHoursStateMachine")
        }

    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" in names
    assert "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess" in names  # Tracing: Active (Globals), added by SAM
    assert any(evaluate([p], "lambda:InvokeFunction", plan) == "Allow" for p in invoke)  # LambdaInvokePolicy
    assert owners == dict.fromkeys(owners, "Allow")


def test_a_tls_only_bucket_policy_lets_tls_requests_in_and_a_deny_for_everyone_keeps_them_out() -> None:
    tls_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::iam-tls", "arn:aws:s3:::iam-tls/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    no_writes = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::iam-tls/*"}
        ],
    }
    with LocalCloud(None) as cloud:
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="iam-tls")
        s3.put_bucket_policy(Bucket="iam-tls", Policy=json.dumps(tls_only))
        s3.put_object(Bucket="iam-tls", Key="a", Body=b"x")
        s3.put_bucket_policy(Bucket="iam-tls", Policy=json.dumps(no_writes))
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket="iam-tls", Key="b", Body=b"x")

    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


_WAITER = """
import os, pathlib, time
import boto3


def handler(event, context):
    here = pathlib.Path(event["dir"])
    (here / "started").write_text(os.environ["AWS_ACCESS_KEY_ID"])
    deadline = time.monotonic() + 20
    while not (here / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"arn": boto3.client("sts").get_caller_identity()["Arn"]}
"""


def test_a_test_threads_call_made_while_a_handler_runs_still_signs_as_the_harness(tmp_path: Path) -> None:
    """The role's credentials are exported to the handler as Lambda does, but only the invoking thread's calls carry
    them: the harness's clients have explicit credentials, and the default session is per thread."""
    import threading  # noqa: PLC0415

    import boto3  # noqa: PLC0415

    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(_WAITER)
    template = tmp_path / "template.yaml"
    template.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Waiter:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: fn/, Handler: app.handler, Runtime: python3.13, Timeout: 30}\n"
    )
    with LocalCloud(template, stack_name="iam") as cloud:
        results: list[Any] = []
        invocation = threading.Thread(target=lambda: results.append(cloud.invoke("Waiter", {"dir": str(tmp_path)})))
        invocation.start()
        try:
            for _ in range(2000):
                if (tmp_path / "started").exists():
                    break
                threading.Event().wait(0.01)
            harness = cloud.client("sts").get_caller_identity()["Arn"]
            default = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Arn"]
        finally:
            (tmp_path / "go").write_text("")
            invocation.join(30)

    handler = results[0].json()["arn"]
    assert handler == "arn:aws:sts::123456789012:assumed-role/iam-Waiter-Role/iam-Waiter"
    assert harness == default != handler
    assert cloud.caller_arn((tmp_path / "started").read_text()) == handler  # the exported key is the role's
