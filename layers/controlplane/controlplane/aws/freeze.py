"""Freeze overrides in the ledger: who deployed through a freeze window, when, and which window it was."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from controlplane.aws.table import Key, Table, environment_key
from controlplane.models.freeze import FreezeDecision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def override_key(environment: str, release_id: str) -> Key:
    return environment_key(environment, f"FREEZE_OVERRIDE#{release_id}")


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
    Table(table_name, region=region, client=client).put_if_absent(
        override_key(decision.environment, decision.release_id),
        {
            "kind": "freeze_override",
            "release_id": decision.release_id,
            "forced_by": decision.forced_by or "",
            "window_reason": decision.window_reason or "",
            "force_reason": reason or "",
            "execution_arn": execution_arn,
            "forced_at": now.isoformat(),
        },
    )


def read_override(
    table_name: str,
    environment: str,
    release_id: str,
    *,
    region: str | None = None,
    client: DynamoDBClient | None = None,
) -> dict[str, str] | None:
    """The recorded override of ``release_id``, as plain strings; ``None`` when there is none."""
    data = Table(table_name, region=region, client=client).get(override_key(environment, release_id))
    return {k: str(v) for k, v in data.items()} if data is not None else None
