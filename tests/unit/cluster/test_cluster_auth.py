"""EKS bearer tokens: built like ``aws eks get-token`` and checked like aws-iam-authenticator."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from local.cluster.auth import TokenError, decode_token, forbidden_message, make_token, verify_token

pytestmark = pytest.mark.unit


def _url(token: str) -> str:
    return decode_token(token)


def _token(url: str) -> str:
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def test_make_token_is_a_presigned_get_caller_identity_url() -> None:
    token = make_token("sts-staging", "eu-west-1", access_key="AKIAEXAMPLE", secret_key="secret")
    assert token.startswith("k8s-aws-v1.")
    assert "=" not in token
    parts = urlsplit(_url(token))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "https"
    assert parts.hostname == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == "60"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert query["X-Amz-Credential"].startswith("AKIAEXAMPLE/")
    assert verify_token(token).access_key_id == "AKIAEXAMPLE"


def test_expired_and_malformed_tokens_are_refused() -> None:
    token = make_token("c")
    with pytest.raises(TokenError, match="expired"):
        verify_token(token, now=time.time() + 16 * 60)
    with pytest.raises(TokenError, match="prefix"):
        verify_token("Bearer nope")
    url = _url(token)
    with pytest.raises(TokenError, match="x-k8s-aws-id"):
        verify_token(_token(url.replace("x-k8s-aws-id", "x-other")))
    with pytest.raises(TokenError, match="hostname"):
        verify_token(_token(url.replace("amazonaws.com", "example.com")))
    with pytest.raises(TokenError, match="action"):
        verify_token(_token(url.replace("GetCallerIdentity", "AssumeRole")))
    with pytest.raises(TokenError, match="non-whitelisted"):
        verify_token(_token(url + "&Extra=1"))


def test_forbidden_message_shape() -> None:
    message = forbidden_message(
        "kubernetes-admin",
        "patch",
        resource="deployments",
        subresource="scale",
        group="apps",
        namespace="default",
        name="web",
    )
    assert message == (
        'deployments.apps "web" is forbidden: User "kubernetes-admin" cannot patch resource "deployments/scale" '
        'in API group "apps" in the namespace "default"'
    )
    assert forbidden_message("u", "list", resource="nodes", subresource="", group="", namespace="", name="") == (
        'nodes is forbidden: User "u" cannot list resource "nodes" in API group "" at the cluster scope'
    )
