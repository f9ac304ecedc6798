"""Amazon SNS: one notification per release outcome, with attributes subscribers can filter on."""

from __future__ import annotations

import json
from typing import Any

import boto3

from controlplane.aws.errors import translate_aws_errors

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
