"""make up's AWS endpoint: decoding a call from the wire (JSON and REST-JSON protocols) with botocore's models."""

from __future__ import annotations

import base64
import datetime as dt
import json

import botocore.session
import pytest

from local.aws.gateway import GatewayError, _encode, _json_call, _rest_json_call, _scope

pytestmark = pytest.mark.unit

MODELS = botocore.session.get_session()


def test_json_protocol_calls_name_their_operation_in_x_amz_target() -> None:
    model = MODELS.get_service_model("stepfunctions")
    operation, params = _json_call(
        model,
        {"x-amz-target": "AWSStepFunctions.StartExecution"},
        json.dumps({"stateMachineArn": "arn", "input": "{}"}).encode(),
    )
    assert (operation.name, params) == ("StartExecution", {"stateMachineArn": "arn", "input": "{}"})
    with pytest.raises(GatewayError, match="unknown operation"):
        _json_call(model, {"x-amz-target": "AWSStepFunctions.Nope"}, b"{}")


def test_blobs_and_timestamps_come_off_the_wire_as_python_values() -> None:
    model = MODELS.get_service_model("dynamodb")
    body = {"TableName": "t", "Item": {"pk": {"B": base64.b64encode(b"\x00\x01").decode()}}}
    _, params = _json_call(model, {"x-amz-target": "DynamoDB_20120810.PutItem"}, json.dumps(body).encode())
    assert params["Item"]["pk"]["B"] == b"\x00\x01"
    moment = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert _encode({"at": moment, "blob": b"\x00", "ResponseMetadata": {}}) == {
        "at": moment.timestamp(),
        "blob": "AA==",
    }


def test_rest_json_calls_are_matched_by_method_and_uri() -> None:
    model = MODELS.get_service_model("eks")
    operation, params = _rest_json_call(model, "GET", "/clusters/sts-staging", "", {}, b"")
    assert (operation.name, params) == ("DescribeCluster", {"name": "sts-staging"})
    operation, params = _rest_json_call(model, "GET", "/clusters", "maxResults=5", {}, b"")
    assert (operation.name, params) == ("ListClusters", {"maxResults": 5})
    with pytest.raises(GatewayError, match="no operation serves"):
        _rest_json_call(model, "GET", "/nothing/here", "", {}, b"")


def test_a_request_without_a_signature_is_refused() -> None:
    with pytest.raises(GatewayError, match="Authentication Token"):
        _scope({})
    assert _scope({"authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20261201/us-east-1/states/aws4_request, x"}) == (
        "us-east-1",
        "states",
    )
