"""The EKS bearer token is what `aws eks get-token` prints; DescribeCluster is cached per warm Lambda."""

from __future__ import annotations

import base64
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from controlplane.aws import eks

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("aws_credentials")]


def _decode(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body, "padding must be stripped"
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_token_is_a_presigned_get_caller_identity_url_signing_the_cluster_header() -> None:
    token = eks.get_token("sts-staging", region="us-east-1")
    url = urlsplit(_decode(token.get_secret_value()))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.scheme == "https"
    assert url.netloc == "sts.us-east-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert query["X-Amz-Credential"].startswith("testing/")
    assert len(query["X-Amz-Signature"]) == 64


def test_token_never_shows_in_its_repr() -> None:
    token = eks.get_token("sts-staging", region="us-east-1")
    assert "k8s-aws-v1" not in repr(token)
    assert "k8s-aws-v1" not in str(token)


def test_describe_cluster_is_called_once_per_warm_lambda() -> None:
    response: dict[str, Any] = {
        "cluster": {
            "endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
            "certificateAuthority": {"data": "Q0E="},
            "version": "1.31",
            "arn": "arn:aws:eks:us-east-1:123456789012:cluster/sts-staging",
            "status": "ACTIVE",
        }
    }
    client = mock.Mock()
    client.describe_cluster.return_value = response
    with mock.patch("boto3.client", return_value=client) as factory:
        first = eks.describe_cluster("sts-staging", region="us-east-1")
        second = eks.describe_cluster("sts-staging", region="us-east-1")
    assert first == second
    assert first.endpoint == response["cluster"]["endpoint"]
    assert factory.call_count == 1
    client.describe_cluster.assert_called_once_with(name="sts-staging")
