"""The release ledger: one DynamoDB table, natural keys, conditional writes (every write is safe to repeat).

Items (``pk`` / ``sk``):

* ``RELEASE#<release id>`` / ``META`` — the release: environment, digests, bundle hash, trigger, status, timings,
  the executions that worked on it (a string set: a rerun adds nothing new).
* ``RELEASE#<release id>`` / ``OBJECT#<order>#<kind>#<namespace>#<name>`` — one per applied object, the manifest as
  applied (zlib-compressed JSON): what the cluster was given, object by object, and what a rollback replays.
* ``RELEASE#<release id>`` / ``OBJECTS_DIGEST`` — the sha256 of each applied object's canonical JSON by sort key,
  written after the objects; a replay verifies every object against it (and that none is missing or added) and
  refuses the release on any mismatch (``LedgerIntegrityError``) before anything reaches the cluster.
* ``ENV#<environment>`` / ``LAST_KNOWN_GOOD`` — the environment's pointer (updated with a condition on its old value).
* ``DIGEST#<digest>`` / ``QUARANTINE`` — a digest an earlier release failed with.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import AwsThrottledError, PermanentError
from controlplane.models.release import LastKnownGood, ReleaseRecord, ReleaseStatus

_ser = TypeSerializer()
_de = TypeDeserializer()
_BATCH = 25
_MAX_UNPROCESSED_ROUNDS = 5


class LedgerConflictError(PermanentError):
    """The environment's last-known-good pointer moved under us (a concurrent release recorded first)."""


class ReleaseNotFoundError(PermanentError):
    """The ledger has no release with that id."""


class LedgerIntegrityError(PermanentError):
    """A release's recorded objects do not match the digests recorded with them: refused, never replayed."""


def _release_key(release_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RELEASE#{release_id}"}, "sk": {"S": "META"}}


def _env_key(environment: str) -> dict[str, Any]:
    return {"pk": {"S": f"ENV#{environment}"}, "sk": {"S": "LAST_KNOWN_GOOD"}}


def _digest_key(digest: str) -> dict[str, Any]:
    return {"pk": {"S": f"DIGEST#{digest}"}, "sk": {"S": "QUARANTINE"}}


def _to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in data.items() if v is not None and v != {}}


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the models want ints."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    if type(value).__name__ == "Decimal":
        return int(value)
    return value


_OBJECTS_DIGEST_SK = "OBJECTS_DIGEST"


def canonical_sha256(obj: Any) -> str:
    """``sha256:<hex>`` of ``obj``'s canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def object_sort_key(order: int, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"OBJECT#{order:05d}#{obj.get('kind', '')}#{meta.get('namespace', '')}#{meta.get('name', '')}"


def _verify_applied(release_id: str, found: Mapping[str, Any], recorded: Mapping[str, str] | None) -> None:
    """Every recorded object is there, unchanged, and nothing else is."""
    if recorded is None:
        raise LedgerIntegrityError(
            f"release {release_id}: the ledger holds {len(found)} applied object(s) but no digests for them; "
            "refusing to replay unverified objects"
        )
    problems = [f"{sk}: recorded but missing" for sk in sorted(set(recorded) - set(found))]
    problems += [f"{sk}: not recorded with the release" for sk in sorted(set(found) - set(recorded))]
    problems += [
        f"{sk}: sha256 mismatch (recorded {recorded[sk]}, stored object is {canonical_sha256(obj)})"
        for sk, obj in found.items()
        if sk in recorded and canonical_sha256(obj) != recorded[sk]
    ]
    if problems:
        raise LedgerIntegrityError(
            f"release {release_id}: the ledger's applied objects fail their integrity check; refusing to replay "
            "them:\n  " + "\n  ".join(problems)
        )


class Ledger:
    """The ledger table ``table_name`` in ``region``; one boto3 client per instance (create it inside a step)."""

    def __init__(self, table_name: str, *, region: str) -> None:
        self.table_name = table_name
        self._client = boto3.client("dynamodb", region_name=region)

    # ---------------------------------------------------------------------------------------------------- releases
    def get_release(self, release_id: str) -> ReleaseRecord | None:
        with translate_aws_errors("dynamodb:GetItem"):
            item = self._client.get_item(TableName=self.table_name, Key=_release_key(release_id), ConsistentRead=True)
        if "Item" not in item:
            return None
        data = _plain(_from_item(item["Item"]))
        for key in ("pk", "sk", "executions", "kind"):
            data.pop(key, None)
        return ReleaseRecord.model_validate(data)

    def require_release(self, release_id: str) -> ReleaseRecord:
        record = self.get_release(release_id)
        if record is None:
            raise ReleaseNotFoundError(f"release {release_id!r} is not in the ledger")
        return record

    def put_planned(self, record: ReleaseRecord) -> None:
        """Create the release item, or on a rerun add this execution to it; never duplicates, never demotes."""
        data = record.model_dump(mode="json", exclude={"status", "execution_arn"}, exclude_none=True)
        names = {f"#{k}": k for k in data}
        values = {f":{k}": _ser.serialize(v) for k, v in data.items()}
        sets = [f"#{k} = if_not_exists(#{k}, :{k})" for k in data]
        sets += ["#status = if_not_exists(#status, :status)", "#execution_arn = :execution_arn", "#kind = :kind"]
        names |= {"#status": "status", "#execution_arn": "execution_arn", "#kind": "kind", "#executions": "executions"}
        values |= {
            ":status": {"S": ReleaseStatus.PLANNED.value},
            ":execution_arn": {"S": record.execution_arn},
            ":kind": {"S": "release"},
            ":executions": {"SS": [record.execution_arn]},
        }
        with translate_aws_errors("dynamodb:UpdateItem"):
            self._client.update_item(
                TableName=self.table_name,
                Key=_release_key(record.release_id),
                UpdateExpression="SET " + ", ".join(sets) + " ADD #executions :executions",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def update_release(self, release_id: str, **fields: Any) -> None:
        """Set fields of an existing release (conditional on it existing)."""
        data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items() if v is not None}
        data = {k: v.value if isinstance(v, ReleaseStatus) else v for k, v in data.items()}
        if not data:
            return
        try:
            with translate_aws_errors("dynamodb:UpdateItem"):
                self._client.update_item(
                    TableName=self.table_name,
                    Key=_release_key(release_id),
                    UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in data),
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={f"#{k}": k for k in data},
                    ExpressionAttributeValues={f":{k}": _ser.serialize(v) for k, v in data.items()},
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ReleaseNotFoundError(f"release {release_id!r} is not in the ledger") from None
            raise

    # ----------------------------------------------------------------------------------------------- applied objects
    def record_applied(self, release_id: str, objects: Sequence[Mapping[str, Any]]) -> int:
        """Store each applied object under the release, then the digest of each (same keys on a rerun: overwritten,
        not duplicated). Until the digest item is written, the objects cannot be replayed."""
        pk = {"S": f"RELEASE#{release_id}"}
        digests = {object_sort_key(order, obj): canonical_sha256(obj) for order, obj in enumerate(objects)}
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": pk,
                        "sk": {"S": object_sort_key(order, obj)},
                        "kind": {"S": "applied_object"},
                        "manifest": {"B": zlib.compress(json.dumps(obj, sort_keys=True).encode())},
                    }
                }
            }
            for order, obj in enumerate(objects)
        ]
        for start in range(0, len(requests), _BATCH):
            self._batch_write(requests[start : start + _BATCH])
        # Same action as the objects (the apply role needs nothing more), strictly after them.
        digest_item = {
            "pk": pk,
            "sk": {"S": _OBJECTS_DIGEST_SK},
            "kind": {"S": "applied_objects_digest"},
            "digests": {"M": {sk: {"S": digest} for sk, digest in digests.items()}},
        }
        self._batch_write([{"PutRequest": {"Item": digest_item}}])
        return len(requests)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending: Any = {self.table_name: requests}
        for _ in range(_MAX_UNPROCESSED_ROUNDS):
            with translate_aws_errors("dynamodb:BatchWriteItem"):
                pending = self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
        raise AwsThrottledError("dynamodb:BatchWriteItem left items unprocessed (throttled)")

    def applied_objects(self, release_id: str) -> list[dict[str, Any]]:
        """The objects applied for ``release_id``, in apply order, each verified against the digest recorded with
        it; ``LedgerIntegrityError`` naming the release and the object when one was changed, added or removed (or
        the digests are missing), ``[]`` when nothing was recorded."""
        paginator = self._client.get_paginator("query")
        found: dict[str, dict[str, Any]] = {}
        recorded: dict[str, str] | None = None
        with translate_aws_errors("dynamodb:Query"):
            # One query: "OBJECT" prefixes both the objects (OBJECT#...) and their digests (OBJECTS_DIGEST).
            for page in paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": f"RELEASE#{release_id}"}, ":prefix": {"S": "OBJECT"}},
                ConsistentRead=True,
            ):
                for item in page["Items"]:
                    if item["sk"]["S"] == _OBJECTS_DIGEST_SK:
                        recorded = {sk: value["S"] for sk, value in item["digests"]["M"].items()}
                    elif item["sk"]["S"].startswith("OBJECT#"):
                        raw = item["manifest"]["B"]
                        blob = raw.value if isinstance(raw, Binary) else raw
                        found[item["sk"]["S"]] = json.loads(zlib.decompress(blob))
        if not found and recorded is None:
            return []
        _verify_applied(release_id, found, recorded)
        return list(found.values())

    # ------------------------------------------------------------------------------------------ last known good
    def last_known_good(self, environment: str) -> LastKnownGood | None:
        with translate_aws_errors("dynamodb:GetItem"):
            item = self._client.get_item(TableName=self.table_name, Key=_env_key(environment), ConsistentRead=True)
        if "Item" not in item:
            return None
        data = _plain(_from_item(item["Item"]))
        return LastKnownGood.model_validate({k: v for k, v in data.items() if k not in ("pk", "sk")})

    def promote(
        self, environment: str, release_id: str, *, expected_previous: str | None, execution_arn: str, now: datetime
    ) -> LastKnownGood:
        """Make ``release_id`` the last known-good release, if the pointer still is ``expected_previous``.

        Idempotent: when the pointer already names ``release_id`` nothing changes.
        """
        current = self.last_known_good(environment)
        if current is not None and current.release_id == release_id:
            return current
        pointer = LastKnownGood(
            environment=environment,  # type: ignore[arg-type]
            release_id=release_id,
            previous_release_id=current.release_id if current else None,
            updated_at=now,
            execution_arn=execution_arn,
        )
        extra: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if expected_previous is not None:
            extra = {
                "ConditionExpression": "release_id = :expected",
                "ExpressionAttributeValues": {":expected": {"S": expected_previous}},
            }
        try:
            with translate_aws_errors("dynamodb:PutItem"):
                self._client.put_item(
                    TableName=self.table_name,
                    Item=_env_key(environment) | _to_item(pointer.model_dump(mode="json")),
                    **extra,
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            again = self.last_known_good(environment)
            if again is not None and again.release_id == release_id:
                return again
            raise LedgerConflictError(
                f"last known-good release of {environment} is {again.release_id if again else None!r}, "
                f"expected {expected_previous!r}: another release was recorded concurrently"
            ) from None
        return pointer

    # --------------------------------------------------------------------------------------------------- quarantine
    def quarantined(self, digests: Iterable[str]) -> dict[str, str]:
        """Which of ``digests`` are quarantined, with the release and cause that put them there."""
        keys = [_digest_key(d) for d in sorted(set(digests))]
        found: dict[str, str] = {}
        for start in range(0, len(keys), 100):
            pending: Any = {self.table_name: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            for _ in range(_MAX_UNPROCESSED_ROUNDS):
                with translate_aws_errors("dynamodb:BatchGetItem"):
                    response = self._client.batch_get_item(RequestItems=pending)
                for item in response["Responses"].get(self.table_name, []):
                    data = _from_item(item)
                    found[str(data["digest"])] = f"release {data['release_id']} failed: {data.get('cause', '')}"
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise AwsThrottledError("dynamodb:BatchGetItem left keys unprocessed (throttled)")
        return found

    def quarantine(self, digests: Mapping[str, str], *, release_id: str, cause: str, now: datetime) -> None:
        """Quarantine each ``service -> digest``; the first failure that quarantined a digest is kept."""
        for service, digest in sorted(digests.items()):
            item = _digest_key(digest) | _to_item(
                {
                    "kind": "quarantine",
                    "digest": digest,
                    "service": service,
                    "release_id": release_id,
                    "cause": cause[:1000],
                    "quarantined_at": now.isoformat(),
                }
            )
            try:
                with translate_aws_errors("dynamodb:PutItem"):
                    self._client.put_item(
                        TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
                    )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
