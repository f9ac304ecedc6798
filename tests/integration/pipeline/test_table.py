"""The one DynamoDB adapter against moto: keys, (de)serialisation, conditional writes, transactions, batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from controlplane.aws import table as t
from controlplane.aws.ledger import Ledger
from controlplane.errors import AwsThrottledError
from moto import mock_aws

pytestmark = pytest.mark.integration

NAME = "ledger"
REGION = "us-east-1"


@pytest.fixture
def client(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName=NAME,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        yield ddb


@pytest.fixture
def table(client: Any) -> t.Table:
    return t.Table(NAME, client=client)


def test_values_round_trip_as_plain_python(table: t.Table, client: Any) -> None:
    data = {"n": 3, "f": 1.5, "s": "x", "b": b"\x00z", "m": {"k": [1, "two"]}, "ss": {"b", "a"}, "none": None}
    table.put(t.Key("A", "B"), data)
    stored = client.get_item(TableName=NAME, Key={"pk": {"S": "A"}, "sk": {"S": "B"}})["Item"]
    assert "none" not in stored  # None is left out, not stored as NULL
    assert stored["ss"] == {"SS": ["a", "b"]} or sorted(stored["ss"]["SS"]) == ["a", "b"]
    assert table.get(t.Key("A", "B")) == {"n": 3, "f": 1.5, "s": "x", "b": b"\x00z", "m": {"k": [1, "two"]},
                                          "ss": ["a", "b"]}  # fmt: skip
    assert table.get(t.Key("A", "missing")) is None


def test_a_refused_condition_is_a_condition_failed_error_and_changes_nothing(table: t.Table) -> None:
    key = t.Key("ENV#staging", "LOCK")
    assert table.put_if_absent(key, {"owner": "a", "version": 1})
    assert not table.put_if_absent(key, {"owner": "b", "version": 1})
    bump = t.Condition("SET #owner = :me ADD #version :one", {"#owner": "owner", "#version": "version"},
                       {":me": "c", ":one": 1})  # fmt: skip
    with pytest.raises(t.ConditionFailedError, match="ENV#staging/LOCK"):
        table.update(key, bump, condition=t.Condition("#version = :v", values={":v": 7}))
    assert table.get(key) == {"owner": "a", "version": 1}
    written = table.update(key, bump, condition=t.Condition("#version = :v", values={":v": 1}), return_new=True)
    assert written == {"owner": "c", "version": 2}
    with pytest.raises(t.ConditionFailedError):
        table.delete(key, condition=t.Condition("#owner = :x", {"#owner": "owner"}, {":x": "a"}))
    table.delete(key, condition=t.Condition("#owner = :x", {"#owner": "owner"}, {":x": "c"}))
    assert table.get(key) is None


def test_a_transaction_writes_all_or_nothing_and_names_the_refusal(table: t.Table) -> None:
    table.put(t.Key("R#1", "APPROVAL"), {"status": "APPROVED"})
    pending = t.Condition("attribute_not_exists(pk) OR #s = :p", {"#s": "status"}, {":p": "PENDING"})
    with pytest.raises(t.ConditionFailedError) as refused:
        table.transact(
            [t.Put(t.Key("R#1", "APPROVAL"), {"status": "PENDING"}, condition=pending), t.Put(t.Key("T#x", "A"), {})]
        )
    assert "ConditionalCheckFailed" in refused.value.reasons
    assert table.get(t.Key("T#x", "A")) is None  # the unconditional half was not written either
    assert table.get(t.Key("R#1", "APPROVAL")) == {"status": "APPROVED"}
    table.transact(
        [
            t.Put(t.Key("R#2", "APPROVAL"), {"status": "PENDING"}, condition=pending),
            t.Update(t.Key("R#1", "APPROVAL"), t.Condition("SET #s = :d", {"#s": "status"}, {":d": "DONE"})),
            t.Check(t.Key("T#absent", "A"), t.NOT_EXISTS),
        ]
    )
    assert table.get(t.Key("R#2", "APPROVAL")) == {"status": "PENDING"}
    assert table.get(t.Key("R#1", "APPROVAL")) == {"status": "DONE"}
    table.transact([t.Delete(t.Key("R#2", "APPROVAL"), condition=t.EXISTS)])
    assert table.get(t.Key("R#2", "APPROVAL")) is None


def test_batches_go_past_the_service_limits_and_queries_keep_sort_key_order(table: t.Table) -> None:
    written = table.put_many([(t.Key("RELEASE#r", f"OBJECT#{i:05d}"), {"i": i}) for i in range(60)])
    assert written == 60
    found = list(table.query("RELEASE#r", sk_prefix="OBJECT#"))
    assert [item["i"] for _, item in found] == list(range(60))
    assert found[0][0] == t.Key("RELEASE#r", "OBJECT#00000")
    keys = [t.Key("RELEASE#r", f"OBJECT#{i:05d}") for i in range(150)]  # 90 of them do not exist
    assert sorted(item["i"] for item in table.get_many(keys)) == list(range(60))


def test_a_transaction_cancelled_by_a_conflict_is_retryable_not_a_refusal() -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    error = ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
            "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
        },
        "TransactWriteItems",
    )
    with pytest.raises(AwsThrottledError, match="TransactionConflict"):
        t._refusals(error)


def test_the_key_builders_name_every_item_the_way_the_table_docstring_says() -> None:
    assert t.release_key("r1") == t.Key("RELEASE#r1", "META")
    assert t.approval_key("r1") == t.Key("RELEASE#r1", "APPROVAL")
    assert t.quarantine_key("sha256:ab") == t.Key("DIGEST#sha256:ab", "QUARANTINE")
    assert t.environment_key("staging", "LOCK") == t.Key("ENV#staging", "LOCK")
    obj = {"kind": "Service", "metadata": {"namespace": "ns", "name": "api"}}
    assert t.applied_object_key("r1", 7, obj) == t.Key("RELEASE#r1", "OBJECT#00007#Service#ns#api")


def test_the_ledger_takes_an_injected_client(client: Any) -> None:
    ledger = Ledger(NAME, client=client)
    assert ledger.table.client is client
    assert ledger.last_known_good("staging") is None
