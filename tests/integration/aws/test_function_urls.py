"""Function URLs on the local cloud: AuthType AWS_IAM authenticates SigV4 as AWS does, before the function runs."""

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
        )
        try:
            yield endpoint, events, cloud
        finally:
            endpoint.close()


def session(cloud: Any, role: str = "ops", name: str = "jane") -> tuple[Credentials, str]:
    iam = cloud.client("iam")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
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
