"""Function URLs on the local cloud: AuthType AWS_IAM authenticates SigV4 and authorizes ``lambda:InvokeFunctionUrl``
as AWS does, before the function runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from local.aws.function_urls import FunctionUrl
from local.pipeline import call_operator_api

pytestmark = pytest.mark.integration


@pytest.fixture
def url() -> Iterator[tuple[FunctionUrl, list[dict[str, Any]], Any]]:
    from local.aws import LocalCloud  # noqa: PLC0415

    events: list[dict[str, Any]] = []

    def invoke(_arn: str, payload: bytes) -> tuple[bytes, str | None]:
        event = json.loads(payload)
        events.append(event)
        if json.loads(event["body"] or "{}").get("fail"):
            return json.dumps({"errorType": "Boom"}).encode(), "Unhandled"
        return json.dumps({"statusCode": 201, "headers": {"x-a": "1"}, "body": '{"ok": true}'}).encode(), None

    with LocalCloud(None) as cloud:
        endpoint = FunctionUrl(
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
            auth_type="AWS_IAM",
            region="us-east-1",
            account_id="123456789012",
            invoke=invoke,
            authorize=cloud.iam.may_invoke_function_url,
        )
        try:
            yield endpoint, events, cloud
        finally:
            endpoint.close()


FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"
INVOKE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunctionUrl",
            "Resource": FUNCTION,
            "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
        }
    ],
}


def session(
    cloud: Any, role: str = "ops", name: str = "jane", policy: dict[str, Any] | None = INVOKE
) -> tuple[Credentials, str]:
    iam = cloud.client("iam")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=role, PolicyName="invoke", PolicyDocument=json.dumps(policy))
    creds = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName=name)
    c = creds["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), creds["AssumedRoleUser"]["Arn"]


def test_a_signed_request_reaches_the_function_with_the_callers_identity(url: Any) -> None:
    endpoint, events, cloud = url
    credentials, arn = session(cloud)

    status, answer = call_operator_api(endpoint.url, {"hello": 1}, credentials)

    assert (status, answer) == (201, {"ok": True})
    iam = events[0]["requestContext"]["authorizer"]["iam"]
    assert iam["userArn"] == arn
    assert iam["accessKey"] == credentials.access_key
    assert iam["accountId"] == "123456789012"
    assert events[0]["version"] == "2.0"
    assert json.loads(events[0]["body"]) == {"hello": 1}
    assert "authorization" not in events[0]["headers"]


def test_an_iam_users_access_key_is_accepted_too(url: Any) -> None:
    endpoint, events, cloud = url
    iam = cloud.client("iam")
    user = iam.create_user(UserName="ci")["User"]
    managed = iam.create_policy(PolicyName="invoke", PolicyDocument=json.dumps(INVOKE))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="ci", PolicyArn=managed)
    key = iam.create_access_key(UserName="ci")["AccessKey"]

    status, _ = call_operator_api(endpoint.url, {}, Credentials(key["AccessKeyId"], key["SecretAccessKey"]))

    assert status == 201
    assert events[0]["requestContext"]["authorizer"]["iam"]["userArn"] == user["Arn"]


def test_unsigned_unknown_tampered_or_tokenless_requests_are_forbidden_and_never_invoke(url: Any) -> None:
    endpoint, events, cloud = url
    credentials, _ = session(cloud)

    answers = [
        call_operator_api(endpoint.url, {}, None),
        call_operator_api(endpoint.url, {}, Credentials("AKIAIOSFODNN7EXAMPLE", "x" * 40)),
        call_operator_api(endpoint.url, {}, Credentials(credentials.access_key, "y" * 40, credentials.token)),
        call_operator_api(endpoint.url, {}, Credentials(credentials.access_key, credentials.secret_key)),
        call_operator_api(endpoint.url, {}, credentials, region="eu-west-1"),
    ]

    assert answers == [(403, {"Message": "Forbidden"})] * 5
    assert events == []


def test_a_function_error_is_a_502(url: Any) -> None:
    endpoint, _, cloud = url
    credentials, _ = session(cloud)

    assert call_operator_api(endpoint.url, {"fail": True}, credentials) == (502, {"Message": "Internal Server Error"})


def test_an_authenticated_caller_without_invoke_permission_is_forbidden_and_never_invokes(url: Any) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html: the caller also needs lambda:InvokeFunctionUrl
    (identity or resource policy); an explicit deny wins; the auth-type condition must hold."""
    endpoint, events, cloud = url
    deny = {"Effect": "Deny", "Action": "lambda:*", "Resource": "*"}
    other_function = {**INVOKE["Statement"][0], "Resource": FUNCTION + "-other"}
    public_only = {**INVOKE["Statement"][0], "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}}
    callers = [
        session(cloud, "nothing", policy=None)[0],
        session(cloud, "denied", policy={"Version": "2012-10-17", "Statement": [*INVOKE["Statement"], deny]})[0],
        session(cloud, "elsewhere", policy={"Version": "2012-10-17", "Statement": [other_function]})[0],
        session(cloud, "public", policy={"Version": "2012-10-17", "Statement": [public_only]})[0],
    ]

    answers = [call_operator_api(endpoint.url, {}, c) for c in callers]

    assert answers == [(403, {"Message": "Forbidden"})] * len(callers)
    assert events == []
    denied = [d for d in cloud.iam.decisions if d[1] == "lambda:InvokeFunctionUrl"]
    assert [d[3] for d in denied] == ["ImplicitDeny", "ExplicitDeny", "ImplicitDeny", "ImplicitDeny"]
