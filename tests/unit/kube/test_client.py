"""The client is built explicitly from endpoint, CA and token; the token never shows; every request has a timeout."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from controlplane.kube.client import (
    TOKEN_REFRESH_S,
    WATCH_READ_SLACK_S,
    ClusterAccess,
    Resource,
    WatchExpiredError,
    build_api_client,
    dynamic_client,
    watch_objects,
)
from controlplane.kube.errors import ApiError
from pydantic import SecretStr, ValidationError

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
    assert config.retries is False
    assert TOKEN not in repr(api)


def test_same_ca_reuses_one_file() -> None:
    first = build_api_client(access()).configuration.ssl_ca_cert
    second = build_api_client(access(token="other")).configuration.ssl_ca_cert
    assert first == second


class Recorder:
    """Stands in for the urllib3 pool: records each request, answers ``status`` with ``body``."""

    def __init__(self, status: int = 200, body: bytes = b"{}") -> None:
        self.calls: list[dict[str, Any]] = []
        self.status, self.body = status, body

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "url": url, **kwargs})
        return SimpleNamespace(status=self.status, reason="Reason", data=self.body, headers={"Retry-After": "3"})


def test_every_request_gets_the_default_timeout_and_the_bearer_header() -> None:
    api = build_api_client(access(), timeout=3.5)
    recorder = Recorder()
    api.pool = recorder  # type: ignore[assignment]  # no socket: capture what would be sent
    api.call_api("/version", "GET", _preload_content=False)
    api.call_api("/api/v1/pods", "GET", query_params=[("watch", True), ("limit", 5)], _request_timeout=1)
    first, second = recorder.calls
    assert (first["timeout"].connect_timeout, first["timeout"].read_timeout) == (3.5, 3.5)
    assert (second["timeout"].connect_timeout, second["timeout"].read_timeout) == (1, 1)
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert first["redirect"] is False
    assert second["url"].endswith("/api/v1/pods?watch=true&limit=5")


def test_an_error_answer_is_an_api_error_with_status_body_and_headers() -> None:
    api = build_api_client(access())
    api.retry_after_budget_s = 0  # Retry-After 3 is then the state machine's to honour
    api.pool = Recorder(status=429, body=b'{"kind":"Status"}')  # type: ignore[assignment]
    with pytest.raises(ApiError) as info:
        api.call_api("/api/v1/namespaces/x/pods", "PATCH", body={"a": 1}, header_params={"Content-Type": "x"})
    assert (info.value.status, info.value.body, info.value.headers) == (429, b'{"kind":"Status"}', {"Retry-After": "3"})
    assert TOKEN not in str(info.value)


class Answers(Recorder):
    """Answers each request with the next (status, Retry-After) of ``answers``."""

    def __init__(self, *answers: tuple[int, str | None]) -> None:
        super().__init__()
        self.answers = list(answers)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "url": url, **kwargs})
        status, retry_after = self.answers.pop(0)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return SimpleNamespace(status=status, reason="Reason", data=b"{}", headers=headers)


@pytest.mark.parametrize(
    ("answers", "slept", "status"),
    [
        ([(429, "2"), (200, None)], [2.0], 200),  # waited out, sent once more
        ([(503, "1"), (503, "1")], [1.0], 503),  # once per call: the second answer is raised
        ([(429, "30"), (200, None)], [], 429),  # beyond the budget: raised, the state machine's backoff waits
        ([(429, None), (200, None)], [], 429),  # no Retry-After: raised at once
        ([(500, "1"), (200, None)], [], 500),  # a 500 may have been processed: never re-sent here
        ([(429, "Wed, 21 Oct 2026 07:28:00 GMT"), (200, None)], [], 429),  # an HTTP-date: not waited here
    ],
    ids=["waits-then-succeeds", "one-retry-only", "too-long", "no-header", "not-retryable", "http-date"],
)
def test_retry_after_is_honoured_within_the_budget_and_never_shortened(
    answers: list[tuple[int, str | None]], slept: list[float], status: int
) -> None:
    api = build_api_client(access())
    pool = Answers(*answers)
    api.pool = pool  # type: ignore[assignment]
    sleeps: list[float] = []
    api.sleep = sleeps.append  # type: ignore[method-assign]

    if status == 200:
        assert api.call_api("/api/v1/namespaces/x/configmaps", "PATCH", body={}).status == 200
    else:
        with pytest.raises(ApiError) as info:
            api.call_api("/api/v1/namespaces/x/configmaps", "PATCH", body={})
        assert info.value.status == status

    assert sleeps == slept
    assert len(pool.calls) == 1 + len(slept)


class StreamingPool:
    """Stands in for the urllib3 pool of a watch: answers ``status`` with the given chunks of an event stream."""

    def __init__(self, chunks: list[bytes], status: int = 200) -> None:
        self.chunks, self.status = chunks, status
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "url": url, **kwargs})
        chunks = self.chunks
        return SimpleNamespace(
            status=self.status,
            reason="Gone" if self.status == 410 else "OK",
            data=b"".join(chunks),
            headers={"Date": "Tue, 01 Dec 2026 21:00:05 GMT"},
            stream=lambda amt, decode_content: iter(chunks),
            release_conn=lambda: None,
            shutdown=lambda: None,
        )


PODS = Resource("", "v1", "Pod", "pods", namespaced=True)


def test_a_watch_asks_for_bookmarks_and_a_timeout_and_reads_events_split_across_chunks() -> None:
    api = build_api_client(access(), timeout=3.0)
    lines = [
        b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"7"}}}\n',
        b'{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"9"}}}\n',
    ]
    joined = b"".join(lines)
    pool = StreamingPool([joined[:30], joined[30:95], joined[95:]])
    api.pool = pool  # type: ignore[assignment]
    stream = watch_objects(dynamic_client(api), PODS, "ns", resource_version="5", timeout_s=60)
    events = list(stream)
    assert [(kind, obj["metadata"]["resourceVersion"]) for kind, obj in events] == [("ADDED", "7"), ("BOOKMARK", "9")]
    assert (events[0][1]["apiVersion"], events[0][1]["kind"]) == ("v1", "Pod")  # list items omit them on the wire
    assert stream.opened_at == datetime(2026, 12, 1, 21, 0, 5, tzinfo=UTC)
    [call] = pool.calls
    assert call["url"].endswith(
        "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=5&timeoutSeconds=60&allowWatchBookmarks=true"
    )
    assert call["timeout"].read_timeout == 60 + WATCH_READ_SLACK_S  # the server ends it; reads wait a little longer
    assert call["preload_content"] is False


def test_an_expired_resource_version_is_watch_expired_as_an_error_event_or_a_410_answer() -> None:
    api = build_api_client(access())
    gone = b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}\n'
    api.pool = StreamingPool([gone])  # type: ignore[assignment]
    with pytest.raises(WatchExpiredError, match="too old"):
        list(watch_objects(dynamic_client(api), PODS, "ns", resource_version="1", timeout_s=5))
    api.pool = StreamingPool([b'{"kind":"Status","code":410}'], status=410)  # type: ignore[assignment]
    with pytest.raises(WatchExpiredError, match="resource version 1 expired"):
        watch_objects(dynamic_client(api), PODS, "ns", resource_version="1", timeout_s=5)
    failed = b'{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError","message":"boom"}}\n'
    api.pool = StreamingPool([failed])  # type: ignore[assignment]
    with pytest.raises(ApiError) as other:
        list(watch_objects(dynamic_client(api), PODS, "ns", resource_version="1", timeout_s=5))
    assert other.value.status == 500


class Tokens:
    """A token source: ``token-1``, ``token-2``... one per call."""

    def __init__(self) -> None:
        self.signed = 0

    def __call__(self) -> SecretStr:
        self.signed += 1
        return SecretStr(f"token-{self.signed}")


def test_a_401_signs_a_new_token_once_and_sends_the_request_again() -> None:
    tokens = Tokens()
    api = build_api_client(access(), token_source=tokens)
    pool = Answers((401, None), (200, None))
    api.pool = pool  # type: ignore[assignment]

    assert api.call_api("/api/v1/namespaces/x/configmaps", "PATCH", body={}).status == 200

    assert [c["headers"]["Authorization"] for c in pool.calls] == [f"Bearer {TOKEN}", "Bearer token-1"]
    assert api.token_refreshes == 1


def test_a_second_401_is_raised_without_the_token() -> None:
    api = build_api_client(access(), token_source=Tokens())
    api.pool = Answers((401, None), (401, None), (200, None))  # type: ignore[assignment]
    with pytest.raises(ApiError) as info:
        api.call_api("/api/v1/namespaces/x/configmaps", "GET")
    assert info.value.status == 401
    assert "token-1" not in str(info.value)
    assert "token-1" not in repr(api)


def test_without_a_token_source_a_401_is_raised_at_once() -> None:
    api = build_api_client(access())
    pool = Answers((401, None), (200, None))
    api.pool = pool  # type: ignore[assignment]
    with pytest.raises(ApiError):
        api.call_api("/api/v1/namespaces/x/configmaps", "GET")
    assert len(pool.calls) == 1


def test_a_token_older_than_the_refresh_age_is_renewed_before_the_request() -> None:
    """EKS accepts a token for 15 minutes after signing: a client older than TOKEN_REFRESH_S signs anew first."""
    tokens = Tokens()
    clock = [1000.0]
    api = build_api_client(access(), token_source=tokens)
    api.monotonic = lambda: clock[0]  # type: ignore[method-assign]
    api._signed_at = 1000.0
    pool = Recorder()
    api.pool = pool  # type: ignore[assignment]

    api.call_api("/version", "GET")
    clock[0] += TOKEN_REFRESH_S - 1
    api.call_api("/version", "GET")
    clock[0] += 1
    api.call_api("/version", "GET")
    api.call_api("/version", "GET")

    assert [c["headers"]["Authorization"] for c in pool.calls] == [
        f"Bearer {TOKEN}",
        f"Bearer {TOKEN}",
        "Bearer token-1",
        "Bearer token-1",
    ]
