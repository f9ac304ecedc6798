"""Off-hours state in the ledger table (same table as releases and the lock; natural keys, conditional writes).

Items (``pk`` / ``sk``):

* ``ENV#<environment>`` / ``OFFHOURS`` — whether the environment sleeps (``AWAKE`` / ``ASLEEP`` / ``WAKING``), the
  snapshot taken before it went to sleep (JSON), when it slept and woke, a ``version`` bumped on every write.
  A new snapshot is written only while the environment is ``AWAKE`` (or has no item): a second scale-down never
  overwrites the snapshot with the sleeping values. Only a finished scale-up makes it ``AWAKE`` again.
* ``ENV#<environment>`` / ``STAY_AWAKE`` — a person's "stay awake until <time>" override.
* ``ENV#<environment>`` / ``OFFHOURS#<time>#<execution name>`` — one per request (console or schedule), its outcome,
  and for a scale-up the night's savings: the audit trail a person reads.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import PermanentError
from controlplane.models.scaling import SleepRecord, SleepStatus, Snapshot, StayAwake

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ser = TypeSerializer()
_de = TypeDeserializer()
_CONDITION_FAILED = "ConditionalCheckFailedException"


class SleepStateConflictError(PermanentError):
    """The off-hours item changed under us (another execution wrote it); the step is re-read, not overwritten."""


def _key(environment: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": f"ENV#{environment}"}, "sk": {"S": sk}}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if type(value).__name__ == "Decimal":
        return int(value)
    return value


class SleepLedger:
    """The off-hours items of the ledger table ``table_name``."""

    def __init__(self, table_name: str, *, region: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client: DynamoDBClient = client or boto3.client("dynamodb", region_name=region)

    # ------------------------------------------------------------------------------------------------------- state
    def read(self, environment: str) -> SleepRecord | None:
        with translate_aws_errors("dynamodb:GetItem"):
            item = self._client.get_item(
                TableName=self.table_name, Key=_key(environment, "OFFHOURS"), ConsistentRead=True
            )
        if "Item" not in item:
            return None
        data = _plain({k: _de.deserialize(v) for k, v in item["Item"].items()})
        snapshot = data.get("snapshot")
        return SleepRecord(
            environment=data["environment"],
            status=SleepStatus(data["status"]),
            snapshot=Snapshot.model_validate_json(snapshot) if snapshot else None,
            slept_at=data.get("slept_at"),
            woke_at=data.get("woke_at"),
            execution_arn=data.get("execution_arn"),
            version=int(data.get("version", 0)),
        )

    def begin_sleep(self, snapshot: Snapshot, *, now: datetime) -> tuple[SleepRecord, bool]:
        """Store ``snapshot`` and mark the environment ``ASLEEP``, unless it already sleeps.

        Returns the record that rules and whether it is the one just written (``False``: an earlier scale-down's
        snapshot is kept and reused).
        """
        environment = snapshot.environment
        item = _key(environment, "OFFHOURS") | {
            "kind": {"S": "offhours"},
            "environment": {"S": environment},
            "status": {"S": SleepStatus.ASLEEP.value},
            "snapshot": {"S": snapshot.model_dump_json()},
            "slept_at": {"S": now.isoformat()},
            "execution_arn": {"S": snapshot.execution_arn},
            "version": {"N": "1"},
        }
        existing = self.read(environment)
        if existing is not None:
            if existing.asleep:
                return existing, False
            item["version"] = {"N": str(existing.version + 1)}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if existing is None
            else {
                "ConditionExpression": "#version = :version AND #status = :awake",
                "ExpressionAttributeNames": {"#version": "version", "#status": "status"},
                "ExpressionAttributeValues": {
                    ":version": {"N": str(existing.version)},
                    ":awake": {"S": SleepStatus.AWAKE.value},
                },
            }
        )
        try:
            with translate_aws_errors("dynamodb:PutItem"):
                self._client.put_item(TableName=self.table_name, Item=item, **condition)
        except ClientError as exc:
            if error_code(exc) != _CONDITION_FAILED:
                raise
            again = self.read(environment)
            if again is not None and again.asleep:
                return again, False
            raise SleepStateConflictError(f"off-hours state of {environment} changed while snapshotting") from None
        record = self.read(environment)
        assert record is not None  # just written; read back consistently
        return record, True

    def set_status(
        self, environment: str, status: SleepStatus, *, expected: tuple[SleepStatus, ...], now: datetime
    ) -> SleepRecord | None:
        """Move the state to ``status`` if it is one of ``expected``; ``None`` when there is no snapshot to act on."""
        record = self.read(environment)
        if record is None or record.status not in (*expected, status):
            return None
        if record.status is status:
            return record
        extra = ", #woke = :now" if status is SleepStatus.AWAKE else ""
        try:
            with translate_aws_errors("dynamodb:UpdateItem"):
                self._client.update_item(
                    TableName=self.table_name,
                    Key=_key(environment, "OFFHOURS"),
                    UpdateExpression=f"SET #status = :status{extra} ADD #version :one",
                    ConditionExpression="#version = :version",
                    ExpressionAttributeNames={"#status": "status", "#version": "version"}
                    | ({"#woke": "woke_at"} if extra else {}),
                    ExpressionAttributeValues={
                        ":status": {"S": status.value},
                        ":version": {"N": str(record.version)},
                        ":one": {"N": "1"},
                    }
                    | ({":now": {"S": now.isoformat()}} if extra else {}),
                )
        except ClientError as exc:
            if error_code(exc) == _CONDITION_FAILED:
                raise SleepStateConflictError(f"off-hours state of {environment} changed concurrently") from None
            raise
        return self.read(environment)

    def replace_snapshot(self, record: SleepRecord, snapshot: Snapshot) -> None:
        """A deploy while asleep: the snapshot now refers to the new release (condition: version unchanged)."""
        try:
            with translate_aws_errors("dynamodb:UpdateItem"):
                self._client.update_item(
                    TableName=self.table_name,
                    Key=_key(record.environment, "OFFHOURS"),
                    UpdateExpression="SET #snapshot = :snapshot ADD #version :one",
                    ConditionExpression="#version = :version",
                    ExpressionAttributeNames={"#snapshot": "snapshot", "#version": "version"},
                    ExpressionAttributeValues={
                        ":snapshot": {"S": snapshot.model_dump_json()},
                        ":version": {"N": str(record.version)},
                        ":one": {"N": "1"},
                    },
                )
        except ClientError as exc:
            if error_code(exc) == _CONDITION_FAILED:
                raise SleepStateConflictError(f"off-hours state of {record.environment} changed concurrently") from None
            raise

    # ------------------------------------------------------------------------------------------------- stay awake
    def put_stay_awake(self, override: StayAwake) -> None:
        item = _key(override.environment, "STAY_AWAKE") | {
            k: _ser.serialize(v) for k, v in override.model_dump(mode="json").items() if v not in (None, "")
        }
        with translate_aws_errors("dynamodb:PutItem"):
            self._client.put_item(TableName=self.table_name, Item=item | {"kind": {"S": "stay_awake"}})

    def stay_awake(self, environment: str) -> StayAwake | None:
        with translate_aws_errors("dynamodb:GetItem"):
            item = self._client.get_item(
                TableName=self.table_name, Key=_key(environment, "STAY_AWAKE"), ConsistentRead=True
            )
        if "Item" not in item:
            return None
        data = {k: _de.deserialize(v) for k, v in item["Item"].items() if k not in ("pk", "sk", "kind")}
        return StayAwake.model_validate(data)

    # ------------------------------------------------------------------------------------------------------ audit
    def record_event(
        self, environment: str, *, at: datetime, execution_arn: str, action: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        """One audit item per request and outcome (same keys on a retry: overwritten, not duplicated)."""
        name = execution_arn.rsplit(":", 1)[-1]
        item = _key(environment, f"OFFHOURS#{at.isoformat()}#{name}#{action}") | {
            "kind": {"S": "offhours_event"},
            "action": {"S": action},
            "outcome": {"S": outcome},
            "execution_arn": {"S": execution_arn},
            "detail": {"S": json.dumps(detail, sort_keys=True, default=str)},
        }
        with translate_aws_errors("dynamodb:PutItem"):
            self._client.put_item(TableName=self.table_name, Item=item)

    def events(self, environment: str) -> list[dict[str, Any]]:
        """The audit items of ``environment``, oldest first (details decoded)."""
        found: list[dict[str, Any]] = []
        with translate_aws_errors("dynamodb:Query"):
            for page in self._client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": f"ENV#{environment}"}, ":prefix": {"S": "OFFHOURS#"}},
                ConsistentRead=True,
            ):
                for item in page["Items"]:
                    data = {k: _de.deserialize(v) for k, v in item.items()}
                    data["detail"] = json.loads(str(data.get("detail") or "{}"))
                    found.append(data)
        return found
