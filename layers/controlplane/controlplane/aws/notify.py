"""Amazon SNS: one notification per release outcome, with attributes subscribers can filter on.

Notifications are best-effort: what happened is in the ledger and the execution's history whatever SNS does, so a
failed publish is a ``NotificationsFailed`` metric and an error log line, never a failed step
(:func:`notify_outcome`). :func:`publish_outcome` raises, for callers that must know.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import ControlPlaneError
from controlplane.observability import logger, metrics

SUBJECT_LIMIT = 100


def publish_outcome(
    topic_arn: str, *, subject: str, outcome: str, environment: str, body: dict[str, Any], region: str
) -> str:
    """Publish ``body`` as JSON; returns the message id."""
    client = boto3.client("sns", region_name=region)
    with translate_aws_errors("sns:Publish"):
        response = client.publish(
            TopicArn=topic_arn,
            Subject=subject[:SUBJECT_LIMIT],
            Message=json.dumps(body, sort_keys=True, default=str),
            MessageAttributes={
                "outcome": {"DataType": "String", "StringValue": outcome},
                "environment": {"DataType": "String", "StringValue": environment},
            },
        )
    return str(response["MessageId"])


def notify_outcome(
    topic_arn: str, *, subject: str, outcome: str, environment: str, body: dict[str, Any], region: str
) -> str | None:
    """:func:`publish_outcome`, best-effort: the message id, or ``None`` (metric + log line) when SNS failed."""
    try:
        return publish_outcome(
            topic_arn, subject=subject, outcome=outcome, environment=environment, body=body, region=region
        )
    except (ClientError, BotoCoreError, ControlPlaneError) as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        metrics.add_metric(name="NotificationsFailed", unit="Count", value=1)
        logger.error(
            "notification not sent (best-effort; the outcome is recorded in the ledger)",
            extra={"outcome": outcome, "subject": subject[:SUBJECT_LIMIT], "error": code, "detail": str(exc)[:300]},
        )
        return None
