"""Payloads that grow with the platform, for 7, 100 and 1,000 services (``python -m bench payload``).

A synthetic platform (``bench.kube_bench.platform_objects``: copies of edc-service's objects) is rendered, not
applied. Measured against the limits the local cloud enforces as AWS does:

* the deploy state machine's state at its largest (the failure path: plan, add-ons, apply, a health look with every
  workload pending, the rollback target, the rollback's apply and health, the error), built from the steps' own
  output models, against Step Functions' 256 KiB (``States.DataLimitExceeded``);
* every ledger item ApplyRelease writes for the release (objects, digest shards and head, applied state, rollout),
  written by the ledger adapter itself into moto's DynamoDB and read back, against DynamoDB's 400 KB item limit
  (size counted as DynamoDB does: attribute names plus values);
* the time to digest every object (what deciding "unchanged" costs per deploy).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from controlplane.aws.ledger import Ledger
from controlplane.models.kube import AppliedObject, ObjectRef, canonical_sha256
from controlplane.models.release import (
    ApplyOutput,
    ApplyPurpose,
    HealthOutput,
    PlanOutput,
    ReleaseRef,
    RollbackTarget,
    Rollout,
    Trigger,
    TriggerKind,
)
from controlplane.steps.apply import smoke_targets_of, workloads_of
from moto import mock_aws

from bench.kube_bench import platform_objects

STATE_PAYLOAD_LIMIT = 256 * 1024
ITEM_LIMIT = 400 * 1000
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _largest_state(objects: list[dict[str, Any]], release: ReleaseRef, ledger: Ledger) -> dict[str, Any]:
    """The deploy state on its failure path, every step output as the step returns it."""
    names = sorted(release.images)
    rollout = ledger.record_rollout(
        release.release_id,
        ApplyPurpose.DEPLOY,
        Rollout(workloads=workloads_of(objects), smoke_targets=smoke_targets_of(objects, names)),
    )
    apply = ApplyOutput(
        release_id=release.release_id,
        applied=len(objects),
        pruned=0,
        rollout=rollout,
        applied_at=NOW,
        source="render",
    ).model_dump(mode="json")
    plan = PlanOutput(
        action="deploy",
        reason="push of clinical-trials/edc-service:v2",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:deploy:" + "e" * 36,
        started_at=NOW,
        deadline_at=NOW + timedelta(minutes=30),
        trigger=Trigger(kind=TriggerKind.ECR_PUSH, reason="push", event_id="e" * 36, repository="r", tag="v2"),
        release=release,
        previous_release_id="rel-" + "0" * 20,
        changed=dict(list(release.images.items())[:1]),
    ).model_dump(mode="json")
    pending = [f"{w.key}: 0 of 2 updated replicas are available" for w in workloads_of(objects)]
    health = HealthOutput(release_id=release.release_id, healthy=False, checked_at=NOW, pending=pending)
    target = RollbackTarget(found=True, reason="previous", started_at=NOW, deadline_at=NOW, release=release)
    return {
        "lock": {"lease": {"environment": "staging", "owner": plan["execution_arn"], "token": 7}},
        "plan": plan,
        "addons": apply,
        "apply": apply,
        "health": health.model_dump(mode="json"),
        "rollback": target.model_dump(mode="json"),
        "rollback_apply": apply,
        "rollback_health": health.model_dump(mode="json"),
        "error": {"Error": "RolloutFailedError", "Cause": "x" * 4000},
    }


def _item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: each attribute's name plus its value (strings and binaries by length, numbers ~21)."""

    def value(v: dict[str, Any]) -> int:
        (kind, data), *_ = v.items()
        if kind in {"S", "B"}:
            return len(data.encode() if isinstance(data, str) else data)
        if kind == "N":
            return 21
        if kind == "M":
            return 3 + sum(len(k.encode()) + value(x) + 1 for k, x in data.items())
        if kind == "L":
            return 3 + sum(value(x) + 1 for x in data)
        if kind in {"SS", "NS", "BS"}:
            return sum(len(str(x).encode()) for x in data)
        return 1

    return sum(len(name.encode()) + value(v) for name, v in item.items())


def _measure(services: int) -> None:
    objects = platform_objects(services)
    names = sorted({str(o["metadata"]["name"]) for o in objects if o["kind"] == "Deployment"})
    images = {n: f"sha256:{hashlib.sha256(n.encode()).hexdigest()}" for n in names}
    release = ReleaseRef.build("staging", images, "sha256:" + "b" * 64)
    started = time.perf_counter()
    digests = [canonical_sha256(o) for o in objects]
    digest_ms = (time.perf_counter() - started) * 1000
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="ledger",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        ledger = Ledger("ledger", region="us-east-1")
        state = _largest_state(objects, release, ledger)
        ledger.record_applied(release.release_id, objects)
        ledger.record_applied_state(
            "staging",
            release.release_id,
            [
                AppliedObject(ref=ObjectRef.of(o), action="created", resource_version="12345", uid="0" * 36, sha256=d)
                for o, d in zip(objects, digests, strict=True)
            ],
        )
        assert ledger.applied_objects(release.release_id) == objects  # every item read back and verified
        items = [i for page in ddb.get_paginator("scan").paginate(TableName="ledger") for i in page["Items"]]
    payload = len(json.dumps(state).encode())
    largest = max(items, key=_item_size)
    print(
        f"{services:>5} services, {len(objects):>5} objects: largest state payload {payload / 1024:6.1f} KiB "
        f"({'OK' if payload <= STATE_PAYLOAD_LIMIT else 'OVER'} 256 KiB); {len(items)} ledger items, largest "
        f"{_item_size(largest) / 1000:.0f} KB ({largest['sk']['S'].split('#')[0]}; "
        f"{'OK' if _item_size(largest) <= ITEM_LIMIT else 'OVER'} 400 KB); digests {digest_ms:.0f} ms"
    )


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    for services in (7, 100, 1000):
        _measure(services)


if __name__ == "__main__":
    main()
