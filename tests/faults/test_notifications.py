"""Notifications are best-effort: SNS failing after the outcome is recorded is a metric and a log line, never a
failed step."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from controlplane.aws import notify
from controlplane.errors import AwsThrottledError
from controlplane.observability import metrics
from moto import mock_aws

pytestmark = pytest.mark.integration

BODY = {"release_id": "rel-1", "outcome": "SUCCEEDED"}


@pytest.fixture
def sns(aws_credentials: None) -> Iterator[str]:
    with mock_aws():
        yield boto3.client("sns", region_name="us-east-1").create_topic(Name="outcomes")["TopicArn"]


def _send(topic: str) -> str | None:
    return notify.notify_outcome(
        topic, subject="s", outcome="SUCCEEDED", environment="staging", body=BODY, region="us-east-1"
    )


def _failed_count() -> float:
    values = metrics.metric_set.get("NotificationsFailed", {}).get("Value", [])
    return float(sum(values)) if isinstance(values, list) else float(values)


def test_a_published_outcome_returns_its_message_id(sns: str) -> None:
    assert _send(sns)


def test_a_missing_topic_is_logged_and_counted_not_raised(sns: str, caplog: pytest.LogCaptureFixture) -> None:
    before = _failed_count()
    assert _send(sns + "-gone") is None
    assert _failed_count() == before + 1
    assert any("notification not sent" in r.getMessage() for r in caplog.records)


def test_sns_throttling_through_every_attempt_is_counted_not_raised(sns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_client = boto3.client

    def throttled(service: str, **kwargs: Any) -> Any:
        client = real_client(service, **kwargs)
        stub = Stubber(client)
        stub.add_client_error("publish", service_error_code="Throttling", http_status_code=400)
        stub.activate()
        return client

    monkeypatch.setattr(notify.boto3, "client", throttled)
    before = _failed_count()
    assert _send(sns) is None
    assert _failed_count() == before + 1
    with pytest.raises(AwsThrottledError, match="sns:Publish: Throttling"):  # the raising variant still raises
        notify.publish_outcome(sns, subject="s", outcome="x", environment="staging", body=BODY, region="us-east-1")
