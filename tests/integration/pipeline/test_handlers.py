"""Handlers invoked one by one (as Step Functions would) against moto and the emulator: safe to run twice."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from controlplane.aws.lock import LockTable
from controlplane.models.lock import LockPurpose, LockRequest

from local.pipeline import Pipeline

pytestmark = pytest.mark.integration


def _written(pipe: Pipeline) -> dict[str, str]:
    """resourceVersions of the owned objects. CRDs are left out: the emulator's CRD controller rewrites their status
    conditions once the clock moved (a real API server keeps lastTransitionTime), which bumps their version."""
    return {k: v for k, v in pipe.resource_versions().items() if not k.startswith("CustomResourceDefinition")}


def _ledger_items(pipe: Pipeline) -> int:
    table = str(pipe.cloud.ref("LedgerTable"))
    return int(pipe.cloud.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


def _hold_lock(pipe: Pipeline, arn: str, payload: dict[str, Any]) -> None:
    """Step Functions runs ApplyRelease only while its execution holds the environment's lock, and passes the
    lease it got (the apply is fenced by it)."""
    table = LockTable(str(pipe.cloud.ref("LedgerTable")), region="us-east-1")
    request = LockRequest(environment="staging", owner=arn, purpose=LockPurpose.ROLLBACK)
    token = table.try_acquire(request, now=int(pipe.cloud.clock.now()), ttl_s=3600)
    assert token is not None
    payload["lease"] = {"environment": "staging", "owner": arn, "token": token}


def test_an_execution_that_does_not_hold_the_lock_applies_nothing(pipe: Pipeline) -> None:
    result = pipe.first_release()  # ended: its lock is released
    plan = result.output["plan"]
    writes = len(pipe.writes())
    payload = {
        "release": plan["release"],
        "purpose": "deploy",
        "prune": True,
        "execution_arn": result.arn,
        "now": plan["started_at"],
        "lease": result.output["lock"]["lease"],  # the lease the execution held while it ran
    }

    out = pipe.cloud.invoke("ApplyFunction", payload)

    assert out.json()["errorType"] == "LockLostError"
    assert "no longer holds the lock of staging" in out.json()["errorMessage"]
    assert len(pipe.writes()) == writes


def test_apply_twice_changes_nothing_the_second_time(pipe: Pipeline) -> None:
    result = pipe.first_release()
    plan = result.output["plan"]
    payload: dict[str, Any] = {
        "release": plan["release"],
        "purpose": "deploy",
        "prune": True,
        "execution_arn": result.arn,
        "now": plan["started_at"],
    }
    _hold_lock(pipe, result.arn, payload)
    items = _ledger_items(pipe)
    versions = _written(pipe)

    first = pipe.cloud.invoke("ApplyFunction", payload)
    second = pipe.cloud.invoke("ApplyFunction", payload)

    assert first.function_error is None, first.json()
    assert second.function_error is None, second.json()
    assert first.json() == second.json()
    assert second.json()["pruned"] == 0
    assert _ledger_items(pipe) == items
    assert _written(pipe) == versions


def test_a_step_input_the_asl_got_wrong_fails_naming_the_field(pipe: Pipeline) -> None:
    out = pipe.cloud.invoke("HealthFunction", {"release_id": "rel-x", "execution_arn": "arn"})
    assert out.function_error == "Unhandled"
    error = out.json()
    assert error["errorType"] == "InputValidationError"
    assert "lease" in error["errorMessage"]
    assert "deadline_at" in error["errorMessage"]


def test_a_release_from_an_older_manifests_bundle_is_replayed_from_the_ledger(pipe: Pipeline) -> None:
    result = pipe.first_release()
    release = result.output["plan"]["release"]
    recorded = pipe.ledger.applied_objects(release["release_id"])
    older = {**release, "release_id": "rel-" + "a" * 20, "bundle_hash": "sha256:" + "0" * 64}
    pipe.ledger.record_applied(older["release_id"], recorded)
    payload: dict[str, Any] = {
        "release": older,
        "purpose": "rollback",
        "prune": True,
        "execution_arn": result.arn,
        "now": result.output["plan"]["started_at"],
    }

    _hold_lock(pipe, result.arn, payload)
    out = pipe.cloud.invoke("ApplyFunction", payload)

    assert out.function_error is None, out.json()
    assert out.json()["source"] == "ledger"
    assert out.json()["applied"] == len(recorded)


def test_a_release_whose_ledger_objects_were_tampered_with_is_refused_before_any_write(pipe: Pipeline) -> None:
    result = pipe.first_release()
    release = result.output["plan"]["release"]
    recorded = pipe.ledger.applied_objects(release["release_id"])
    older = {**release, "release_id": "rel-" + "c" * 20, "bundle_hash": "sha256:" + "0" * 64}
    pipe.ledger.record_applied(older["release_id"], recorded)
    # Someone with write access to the ledger changes one recorded object (a ConfigMap: still passes validation).
    table = pipe.cloud.client("dynamodb")
    key = {"pk": {"S": f"RELEASE#{older['release_id']}"}}
    objects = table.query(
        TableName=pipe.ledger.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": key["pk"], ":p": {"S": "OBJECT#"}},
    )["Items"]
    victim = next(item for item in objects if "#ConfigMap#" in item["sk"]["S"])
    obj = json.loads(zlib.decompress(victim["manifest"]["B"]))
    obj["data"] = {**obj.get("data", {}), "INJECTED": "1"}
    table.put_item(
        TableName=pipe.ledger.table_name, Item={**victim, "manifest": {"B": zlib.compress(json.dumps(obj).encode())}}
    )
    writes = len(pipe.writes())
    payload = {
        "release": older,
        "purpose": "rollback",
        "prune": True,
        "execution_arn": result.arn,
        "now": result.output["plan"]["started_at"],
    }

    _hold_lock(pipe, result.arn, payload)
    out = pipe.cloud.invoke("ApplyFunction", payload)

    assert out.json()["errorType"] == "LedgerIntegrityError"
    assert f"{victim['sk']['S']}: sha256 mismatch" in out.json()["errorMessage"]
    assert len(pipe.writes()) == writes


def test_a_release_that_can_be_neither_rendered_nor_replayed_is_refused_before_any_write(pipe: Pipeline) -> None:
    result = pipe.first_release()
    release = result.output["plan"]["release"]
    unknown = {**release, "release_id": "rel-" + "b" * 20, "bundle_hash": "sha256:" + "0" * 64}
    writes = len(pipe.writes())
    payload = {
        "release": unknown,
        "purpose": "rollback",
        "prune": True,
        "execution_arn": result.arn,
        "now": result.output["plan"]["started_at"],
    }

    _hold_lock(pipe, result.arn, payload)
    out = pipe.cloud.invoke("ApplyFunction", payload)

    assert out.json()["errorType"] == "PlanError"
    assert "holds no applied objects" in out.json()["errorMessage"]
    assert len(pipe.writes()) == writes


def test_a_holder_that_lost_its_lease_plans_and_verifies_nothing(pipe: Pipeline) -> None:
    """Fencing (issue 12): PlanRelease writes the planned release behind the lease and VerifyApproval renews it first;
    with a lease the lock no longer names (the execution ended and released it) both end LockLostError and the
    ledger gains nothing."""
    result = pipe.first_release()  # ended: its lock is released
    stale = result.output["lock"]["lease"]
    digest = pipe.push("edc-service", "main-2")
    items = _ledger_items(pipe)
    plan = {
        "input": pipe.push_event("clinical-trials/edc-service", digest, "main-2"),
        "execution_arn": result.arn,
        "started_at": result.output["plan"]["started_at"],
        "lease": stale,
    }
    verify = {
        "release": result.output["plan"]["release"],
        "execution_arn": result.arn,
        "requested_by": None,
        "lease": stale,
        "now": result.output["plan"]["started_at"],
    }

    for function, payload in (("PlanFunction", plan), ("VerifyApprovalFunction", verify)):
        out = pipe.cloud.invoke(function, payload)
        assert out.json()["errorType"] == "LockLostError", (function, out.json())
        assert "no longer holds the lock of staging" in out.json()["errorMessage"]
    assert _ledger_items(pipe) == items
