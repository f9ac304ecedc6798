"""Freeze overrides in the ledger: who deployed through a freeze window, when, and which window it was."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.models.gates import FreezeDecision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def override_key(environment: str, release_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"ENV#{environment}"}, "sk": {"S": f"FREEZE_OVERRIDE#{release_id}"}}


def record_override(
    table_name: str,
    decision: FreezeDecision,
    *,
    execution_arn: str,
    reason: str | None,
    now: datetime,
    region: str | None = None,
    client: DynamoDBClient | None = None,
) -> None:
    """Record that ``decision.forced_by`` forced ``decision.release_id`` through a freeze (the first record stays)."""
    ddb: DynamoDBClient = client or boto3.client("dynamodb", region_name=region)
    item = override_key(decision.environment, decision.release_id) | {
        "kind": {"S": "freeze_override"},
        "release_id": {"S": decision.release_id},
        "forced_by": {"S": decision.forced_by or ""},
        "window_reason": {"S": decision.window_reason or ""},
        "force_reason": {"S": reason or ""},
        "execution_arn": {"S": execution_arn},
        "forced_at": {"S": now.isoformat()},
    }
    try:
        with translate_aws_errors("dynamodb:PutItem"):
            ddb.put_item(TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def read_override(
    table_name: str,
    environment: str,
    release_id: str,
    *,
    region: str | None = None,
    client: DynamoDBClient | None = None,
) -> dict[str, str] | None:
    """The recorded override of ``release_id``, as plain strings; ``None`` when there is none."""
    ddb: DynamoDBClient = client or boto3.client("dynamodb", region_name=region)
    with translate_aws_errors("dynamodb:GetItem"):
        item = ddb.get_item(TableName=table_name, Key=override_key(environment, release_id), ConsistentRead=True)
    if "Item" not in item:
        return None
    return {k: str(v.get("S", "")) for k, v in item["Item"].items()}
