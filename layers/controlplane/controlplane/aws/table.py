"""The ledger table: the one adapter that speaks DynamoDB. Everything else speaks records (plain dicts and models).

One table holds everything the control plane remembers, under natural keys (``pk`` / ``sk``):

=====================================  ==============================================  ==========================
``pk``                                 ``sk``                                          written by
=====================================  ==============================================  ==========================
``RELEASE#<release id>``               ``META``                                        ``aws.ledger``
``RELEASE#<release id>``               ``OBJECT#<order>#<kind>#<namespace>#<name>``    ``aws.ledger``
``RELEASE#<release id>``               ``OBJECTS_DIGEST``                              ``aws.ledger``
``RELEASE#<release id>``               ``STATE#<batch>``                               ``aws.ledger``
``RELEASE#<release id>``               ``APPROVAL``                                    ``aws.approval``
``DECISION#<release id>``              ``DECISION``                                    ``aws.decision``
``DIGEST#<digest>``                    ``QUARANTINE``                                  ``aws.ledger``
``ENV#<environment>``                  ``LAST_KNOWN_GOOD``                             ``aws.ledger``
``ENV#<environment>``                  ``APPLIED``                                     ``aws.ledger``
``ENV#<environment>``                  ``DEGRADED``                                    ``aws.ledger``
``ENV#<environment>``                  ``LOCK``                                        ``aws.lock``
``ENV#<environment>``                  ``SEQUENCE``, ``REQUEST#<request id>``          ``aws.lock``
``ENV#<environment>``                  ``FREEZE_OVERRIDE#<release id>``                ``aws.freeze``
``ENV#<environment>``                  ``STACK#<stack name>``                          ``aws.provision``
``ENV#<environment>``                  ``OFFHOURS``, ``STAY_AWAKE``, ``OFFHOURS#...``  ``aws.offhours``
=====================================  ==============================================  ==========================

Values are encoded and decoded with boto3's ``TypeSerializer`` / ``TypeDeserializer`` (numbers come back as ``int``
or ``float``, binaries as ``bytes``, string sets as sorted lists). A write whose condition does not hold raises
:class:`ConditionFailedError` (a transaction cancelled by a condition too), so each adapter decides what a lost race
means; throttling and 5xx become :class:`~controlplane.errors.AwsThrottledError` as everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import AwsThrottledError, LockLostError, PermanentError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ser = TypeSerializer()
_de = TypeDeserializer()
_BATCH_WRITE = 25
_BATCH_GET = 100
_TRANSACT_ITEMS = 100
"""TransactWriteItems: at most 100 actions per transaction ..."""
_TRANSACT_BYTES = 3_500_000
"""... and at most 4 MB of items in all; this much (keys, names and values counted) leaves room for the rest."""
_MAX_UNPROCESSED_ROUNDS = 5
KEY_ATTRIBUTES = ("pk", "sk")


class ConditionFailedError(PermanentError):
    """A conditional write (or a transaction) was refused because its condition did not hold."""

    def __init__(self, message: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


# --------------------------------------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class Key:
    """An item's natural key."""

    pk: str
    sk: str

    def encoded(self) -> dict[str, Any]:
        return {"pk": {"S": self.pk}, "sk": {"S": self.sk}}


def release_key(release_id: str) -> Key:
    return Key(f"RELEASE#{release_id}", "META")


def applied_object_key(release_id: str, order: int, obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata", {})
    return Key(
        f"RELEASE#{release_id}",
        f"OBJECT#{order:05d}#{obj.get('kind', '')}#{meta.get('namespace', '')}#{meta.get('name', '')}",
    )


def objects_digest_key(release_id: str) -> Key:
    """The sha256 of each applied object of the release, by its sort key (written after the objects)."""
    return Key(f"RELEASE#{release_id}", "OBJECTS_DIGEST")


def objects_digest_shard_key(release_id: str, shard: int) -> Key:
    """One shard of the release's object digests (:func:`objects_digest_key` names how many and their sha256)."""
    return Key(f"RELEASE#{release_id}", f"OBJECTS_DIGEST#{shard:05d}")


def applied_state_key(release_id: str, chunk: int) -> Key:
    """One batch of what the apply of the release reported per object (digest, resourceVersion, generation, uid)."""
    return Key(f"RELEASE#{release_id}", f"STATE#{chunk:05d}")


def rollout_key(release_id: str, purpose: str, chunk: int) -> Key:
    """One batch of the workloads and smoke targets an apply of the release (``purpose``) handed to the next states."""
    return Key(f"RELEASE#{release_id}", f"ROLLOUT#{purpose}#{chunk:05d}")


def approval_key(release_id: str) -> Key:
    return Key(f"RELEASE#{release_id}", "APPROVAL")


def quarantine_key(digest: str) -> Key:
    return Key(f"DIGEST#{digest}", "QUARANTINE")


def unquarantined_key(digest: str, at: str) -> Key:
    """An operator's release of ``digest`` from quarantine at ``at`` (ISO time): who, why, what it was."""
    return Key(f"DIGEST#{digest}", f"UNQUARANTINED#{at}")


def environment_key(environment: str, sk: str) -> Key:
    """``ENV#<environment>`` / ``sk``: LAST_KNOWN_GOOD, LOCK, OFFHOURS, STAY_AWAKE, FREEZE_OVERRIDE#..., STACK#..."""
    return Key(f"ENV#{environment}", sk)


# ------------------------------------------------------------------------------------------------ (de)serialising
def _storable(value: Any) -> Any:
    """Floats as Decimals (the serializer refuses floats: DynamoDB numbers are exact)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def encode(data: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values of ``data``; ``None`` values are left out (DynamoDB has no use for them)."""
    return {k: encode_value(v) for k, v in data.items() if v is not None}


def encode_value(value: Any) -> dict[str, Any]:
    return dict(_ser.serialize(_storable(value)))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value.value)  # type: ignore[attr-defined]  # the stubs leave out the value attribute
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def decode(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored item as plain Python values (without its key attributes)."""
    return {k: _plain(_de.deserialize(v)) for k, v in item.items() if k not in KEY_ATTRIBUTES}


# ------------------------------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Condition:
    """A condition (or update) expression with its ``#name`` / ``:value`` placeholders (values as plain Python)."""

    expression: str
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    def params(self, *, key: str = "ConditionExpression") -> dict[str, Any]:
        params: dict[str, Any] = {key: self.expression}
        if self.names:
            params["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            params["ExpressionAttributeValues"] = {k: encode_value(v) for k, v in self.values.items()}
        return params


def _merge(update: Condition, condition: Condition | None) -> dict[str, Any]:
    params = update.params(key="UpdateExpression")
    if condition is not None:
        extra = condition.params()
        params["ConditionExpression"] = extra["ConditionExpression"]
        params["ExpressionAttributeNames"] = params.get("ExpressionAttributeNames", {}) | extra.get(
            "ExpressionAttributeNames", {}
        )
        params["ExpressionAttributeValues"] = params.get("ExpressionAttributeValues", {}) | extra.get(
            "ExpressionAttributeValues", {}
        )
    return params


NOT_EXISTS = Condition("attribute_not_exists(pk)")
EXISTS = Condition("attribute_exists(pk)")


# ------------------------------------------------------------------------------------------------ transactions
@dataclass(frozen=True)
class Put:
    key: Key
    data: Mapping[str, Any]
    condition: Condition | None = None


@dataclass(frozen=True)
class Update:
    key: Key
    update: Condition
    condition: Condition | None = None


@dataclass(frozen=True)
class Delete:
    key: Key
    condition: Condition | None = None


@dataclass(frozen=True)
class Check:
    key: Key
    condition: Condition


TransactItem = Put | Update | Delete | Check


@dataclass(frozen=True)
class Fence:
    """A lock holder's lease as a write condition: ``check`` (on the lock item) goes first in every fenced write's
    transaction; when it does not hold, the holder lost its lease (``LockLostError`` naming holder and lease)."""

    check: Check
    holder: str
    lease: str


# ------------------------------------------------------------------------------------------------------- table
class Table:
    """The ledger table ``name``; ``client`` is injectable (tests, fault injection), else one per instance."""

    def __init__(self, name: str, *, region: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.name = name
        self.client: DynamoDBClient = client or boto3.client("dynamodb", region_name=region)

    # ------------------------------------------------------------------------------------------------- reads
    def get(self, key: Key) -> dict[str, Any] | None:
        """The item (decoded, strongly consistent), ``None`` when there is none."""
        with translate_aws_errors("dynamodb:GetItem"):
            response = self.client.get_item(TableName=self.name, Key=key.encoded(), ConsistentRead=True)
        return decode(response["Item"]) if "Item" in response else None

    def get_many(self, keys: Iterable[Key]) -> list[dict[str, Any]]:
        """The items of ``keys`` that exist (decoded, strongly consistent; in no particular order)."""
        encoded = [k.encoded() for k in keys]
        found: list[dict[str, Any]] = []
        for start in range(0, len(encoded), _BATCH_GET):
            pending: Any = {self.name: {"Keys": encoded[start : start + _BATCH_GET], "ConsistentRead": True}}
            for _ in range(_MAX_UNPROCESSED_ROUNDS):
                with translate_aws_errors("dynamodb:BatchGetItem"):
                    response = self.client.batch_get_item(RequestItems=pending)
                found += [decode(item) for item in response["Responses"].get(self.name, [])]
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise AwsThrottledError("dynamodb:BatchGetItem left keys unprocessed (throttled)")
        return found

    def query(self, pk: str, *, sk_prefix: str) -> Iterator[tuple[Key, dict[str, Any]]]:
        """The items under ``pk`` whose sort key starts with ``sk_prefix``, in sort-key order: (key, decoded)."""
        with translate_aws_errors("dynamodb:Query"):
            for page in self.client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
                ConsistentRead=True,
            ):
                for item in page["Items"]:
                    yield Key(str(item["pk"]["S"]), str(item["sk"]["S"])), decode(item)

    # ------------------------------------------------------------------------------------------------ writes
    def put(self, key: Key, data: Mapping[str, Any], *, condition: Condition | None = None) -> None:
        """Write the whole item; :class:`ConditionFailedError` when ``condition`` does not hold."""
        params = condition.params() if condition else {}
        with _conditional("dynamodb:PutItem", key):
            self.client.put_item(TableName=self.name, Item=key.encoded() | encode(data), **params)

    def put_if_absent(self, key: Key, data: Mapping[str, Any]) -> bool:
        """Write the item unless one exists; ``False`` when it did (the first write stays)."""
        try:
            self.put(key, data, condition=NOT_EXISTS)
        except ConditionFailedError:
            return False
        return True

    def update(
        self, key: Key, update: Condition, *, condition: Condition | None = None, return_new: bool = False
    ) -> dict[str, Any] | None:
        """One ``UpdateItem``; the item as written when ``return_new``. :class:`ConditionFailedError` when refused."""
        extra: dict[str, Any] = {"ReturnValues": "ALL_NEW"} if return_new else {}
        with _conditional("dynamodb:UpdateItem", key):
            response = self.client.update_item(
                TableName=self.name, Key=key.encoded(), **_merge(update, condition), **extra
            )
        return decode(response["Attributes"]) if return_new else None

    def delete(
        self, key: Key, *, condition: Condition | None = None, return_old: bool = False
    ) -> dict[str, Any] | None:
        """One ``DeleteItem``; the item as it was (``None`` if there was none) when ``return_old``."""
        params: dict[str, Any] = condition.params() if condition else {}
        if return_old:
            params["ReturnValues"] = "ALL_OLD"
        with _conditional("dynamodb:DeleteItem", key):
            response = self.client.delete_item(TableName=self.name, Key=key.encoded(), **params)
        old = response.get("Attributes")
        return decode(old) if return_old and old else None

    def put_many(self, items: Sequence[tuple[Key, Mapping[str, Any]]]) -> int:
        """Unconditional puts in batches of 25 (same keys on a rerun: overwritten, not duplicated)."""
        requests = [{"PutRequest": {"Item": key.encoded() | encode(data)}} for key, data in items]
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: Any = {self.name: requests[start : start + _BATCH_WRITE]}
            for _ in range(_MAX_UNPROCESSED_ROUNDS):
                with translate_aws_errors("dynamodb:BatchWriteItem"):
                    pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise AwsThrottledError("dynamodb:BatchWriteItem left items unprocessed (throttled)")
        return len(requests)

    def write(self, item: TransactItem) -> None:
        """One write of any kind (a :class:`Check` alone is a transaction of one)."""
        if isinstance(item, Put):
            self.put(item.key, item.data, condition=item.condition)
        elif isinstance(item, Update):
            self.update(item.key, item.update, condition=item.condition)
        elif isinstance(item, Delete):
            self.delete(item.key, condition=item.condition)
        else:
            self.transact([item])

    def transact(self, items: Sequence[TransactItem]) -> None:
        """All of ``items`` or none (``TransactWriteItems``); :class:`ConditionFailedError` naming the cancellation
        reasons when a condition does not hold."""
        with _conditional("dynamodb:TransactWriteItems", None):
            self.client.transact_write_items(TransactItems=[self._transact_item(i) for i in items])  # type: ignore[misc]

    def _transact_item(self, item: TransactItem) -> dict[str, Any]:
        common: dict[str, Any] = {"TableName": self.name}
        if isinstance(item, Put):
            params = item.condition.params() if item.condition else {}
            return {"Put": common | {"Item": item.key.encoded() | encode(item.data)} | params}
        if isinstance(item, Update):
            return {"Update": common | {"Key": item.key.encoded()} | _merge(item.update, item.condition)}
        if isinstance(item, Delete):
            params = item.condition.params() if item.condition else {}
            return {"Delete": common | {"Key": item.key.encoded()} | params}
        return {"ConditionCheck": common | {"Key": item.key.encoded()} | item.condition.params()}


@contextmanager
def _conditional(operation: str, key: Key | None) -> Iterator[None]:
    """Run one write; a refused condition becomes :class:`ConditionFailedError`, the rest is translated."""
    try:
        with translate_aws_errors(operation):
            yield
    except ClientError as exc:
        reasons = _refusals(exc)
        if reasons is None:
            raise
        where = f"{key.pk}/{key.sk}" if key else "transaction"
        raise ConditionFailedError(f"{operation} {where}: condition failed", reasons=reasons) from None


def _refusals(exc: ClientError) -> list[str] | None:
    """The cancellation reasons when ``exc`` is a refused condition; ``None`` for any other error."""
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return ["ConditionalCheckFailed"]
    if code != "TransactionCanceledException":
        return None
    reasons = [str(r.get("Code", "")) for r in exc.response.get("CancellationReasons", [])]
    if reasons and "ConditionalCheckFailed" not in reasons:
        # cancelled by a conflicting transaction or throttling: worth a retry, not a refused condition
        raise AwsThrottledError(f"dynamodb:TransactWriteItems cancelled ({', '.join(reasons)})") from exc
    return reasons


class Items:
    """Base of an adapter for one kind of item in the ledger table: ``table_name`` and its :class:`Table`.

    ``fence``: the adapter writes for a lock holder; every write (:meth:`write`) is then one transaction with the
    fence's check first, so a holder that lost its lease writes nothing (``LockLostError``)."""

    def __init__(
        self,
        table_name: str,
        *,
        region: str | None = None,
        client: DynamoDBClient | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.table_name = table_name
        self.table = Table(table_name, region=region, client=client)
        self.fence = fence

    def write(self, *items: TransactItem) -> None:
        """``items``, all or none: one transaction (behind the fence's check when fenced); a single unfenced item is
        an ordinary write. :class:`ConditionFailedError` when an item's own condition does not hold (its
        ``reasons`` are the items' own, the fence's left out); ``LockLostError`` when the fence's does not."""
        if self.fence is None and len(items) == 1:
            self.table.write(items[0])
            return
        checks = [self.fence.check] if self.fence is not None else []
        try:
            self.table.transact([*checks, *items])
        except ConditionFailedError as exc:
            if self.fence is not None and exc.reasons[:1] == ("ConditionalCheckFailed",):
                raise LockLostError(
                    f"{self.fence.holder} no longer holds {self.fence.lease}: nothing more is written"
                ) from None
            raise ConditionFailedError(str(exc), reasons=exc.reasons[len(checks) :]) from None

    def put_all(self, items: Sequence[tuple[Key, Mapping[str, Any]]]) -> int:
        """Unconditional puts of many items (same keys on a rerun: overwritten, not duplicated). Fenced: in
        transactions of up to 99 items and ~3.5 MB, each behind the fence's check (a holder that lost its lease writes
        no further batch: ``LockLostError``); unfenced: ``BatchWriteItem`` batches."""
        if self.fence is None:
            return self.table.put_many(items)
        for batch in _transaction_batches([Put(key, data) for key, data in items], room=_TRANSACT_ITEMS - 1):
            self.write(*batch)
        return len(items)


def item_size(key: Key, data: Mapping[str, Any]) -> int:
    """An estimate (from above) of an item's size as DynamoDB counts it: attribute names and values."""
    return len(json.dumps(key.encoded() | encode(data), default=_sized).encode())


def _sized(value: Any) -> str:
    """``json.dumps``'s stand-in for what JSON cannot hold: as many characters as the value has bytes."""
    if isinstance(value, Binary):
        value = value.value  # type: ignore[attr-defined]  # the stubs leave out the value attribute
    return "x" * len(value) if isinstance(value, bytes | bytearray) else str(value)


def _transaction_batches(puts: Sequence[Put], *, room: int) -> list[list[Put]]:
    batches: list[list[Put]] = [[]]
    size = 0
    for put in puts:
        weight = item_size(put.key, put.data)
        if batches[-1] and (len(batches[-1]) >= room or size + weight > _TRANSACT_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(put)
        size += weight
    return [b for b in batches if b]
