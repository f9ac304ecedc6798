"""The client is built explicitly from endpoint, CA and token; the token never shows; every request has a timeout."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from controlplane.kube.client import ClusterAccess, build_api_client
from pydantic import ValidationError

pytestmark = pytest.mark.unit

PEM = b"-----BEGIN CERTIFICATE-----\nMIIBdummyCAforunittests\n-----END CERTIFICATE-----\n"
TOKEN = "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5"


def access(**overrides: Any) -> ClusterAccess:
    values: dict[str, Any] = {
        "endpoint": "https://ABCDEF0123456789.gr7.us-east-1.eks.amazonaws.com",
        "ca_data": base64.b64encode(PEM).decode(),
        "token": TOKEN,
    }
    values.update(overrides)
    return ClusterAccess(**values)


def test_token_never_appears_in_repr_str_or_json() -> None:
    a = access()
    for text in (repr(a), str(a), a.model_dump_json(), str(a.model_dump())):
        assert TOKEN not in text


def test_endpoint_must_be_https_and_ca_must_be_base64_pem() -> None:
    with pytest.raises(ValidationError, match="https"):
        access(endpoint="http://insecure.example")
    with pytest.raises(ValidationError, match="base64"):
        access(ca_data="not base64!")
    with pytest.raises(ValidationError, match="PEM"):
        access(ca_data=base64.b64encode(b"hello").decode())


def test_api_client_is_configured_explicitly() -> None:
    api = build_api_client(access(endpoint="https://example.eks.amazonaws.com/"))
    config = api.configuration
    assert config.host == "https://example.eks.amazonaws.com"
    assert config.verify_ssl is True
    assert Path(config.ssl_ca_cert).read_bytes() == PEM
    assert config.api_key == {"authorization": f"Bearer {TOKEN}"}
    assert config.retries is False
    assert TOKEN not in repr(api)


def test_same_ca_reuses_one_file() -> None:
    first = build_api_client(access()).configuration.ssl_ca_cert
    second = build_api_client(access(token="other")).configuration.ssl_ca_cert
    assert first == second


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def GET(self, url: str, **kwargs: Any) -> Any:
        self.calls.append({"url": url, **kwargs})
        return type("Response", (), {"status": 200, "data": b"{}", "getheaders": lambda _self: {}})()


def test_every_request_gets_the_default_timeout_and_the_bearer_header() -> None:
    api = build_api_client(access(), timeout=3.5)
    recorder = Recorder()
    api.rest_client = recorder  # no socket: capture what would be sent
    api.call_api("/version", "GET", auth_settings=["BearerToken"], _preload_content=False)
    api.call_api("/version", "GET", auth_settings=["BearerToken"], _preload_content=False, _request_timeout=1)
    assert recorder.calls[0]["_request_timeout"] == (3.5, 3.5)
    assert recorder.calls[1]["_request_timeout"] == 1
    assert recorder.calls[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
