"""Handlers invoked one by one (as Step Functions would) against moto and the emulator: safe to run twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from controlplane.aws import eks

from local.pipeline import Pipeline, pipeline

pytestmark = pytest.mark.integration

_emulator = pytest.importorskip("local.cluster")
Cluster = _emulator.Cluster


@pytest.fixture
def pipe() -> Iterator[Pipeline]:
    eks.clear_cache()
    with Cluster("sts-staging") as cluster, pipeline(cluster) as p:
        yield p
    eks.clear_cache()


def _written(pipe: Pipeline) -> dict[str, str]:
    """resourceVersions of the owned objects. CRDs are left out: the emulator's CRD controller rewrites their status
    conditions once the clock moved (a real API server keeps lastTransitionTime), which bumps their version."""
    return {k: v for k, v in pipe.resource_versions().items() if not k.startswith("CustomResourceDefinition")}


def _ledger_items(pipe: Pipeline) -> int:
    table = str(pipe.cloud.ref("LedgerTable"))
    return int(pipe.cloud.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


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
    assert "workloads" in error["errorMessage"]
    assert "deadline_at" in error["errorMessage"]
