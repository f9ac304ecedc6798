"""The Kubernetes payloads cross state boundaries: immutable, strict, and exact through JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from controlplane.models.kube import (
    AppliedObject,
    ApplyResult,
    FieldChange,
    HealthReport,
    ObjectDiff,
    ObjectRef,
    PodFailure,
    RolloutStatus,
    SmokeResult,
)
from pydantic import BaseModel, ValidationError

pytestmark = pytest.mark.unit

DEPLOYMENT = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="clinical-trials", name="api-gateway")
NAMESPACE = ObjectRef(api_version="v1", kind="Namespace", name="clinical-trials")
SINCE = datetime(2026, 1, 26, 10, 15, 3, tzinfo=UTC)

EXAMPLES: list[BaseModel] = [
    DEPLOYMENT,
    ApplyResult(
        release_id="rel-1",
        objects=(
            AppliedObject(ref=NAMESPACE, action="unchanged", resource_version="12", uid="u-1"),
            AppliedObject(ref=DEPLOYMENT, action="configured", resource_version="40", generation=3, uid="u-2"),
        ),
    ),
    ObjectDiff(
        ref=DEPLOYMENT,
        action="configured",
        changes=(
            FieldChange(path="spec.replicas", op="replace", live=3, desired=5),
            FieldChange(path="metadata.labels.x", op="add", desired={"nested": [1, 2.5, None, True]}),
        ),
    ),
    HealthReport(
        checked_at=SINCE,
        healthy=False,
        workloads=(RolloutStatus(ref=DEPLOYMENT, done=False, reason="UpdatingReplicas", message="1 of 3"),),
        failures=(
            PodFailure(
                namespace="clinical-trials",
                pod="api-gateway-6f8b9d7c5e-q9wzr",
                container="api-gateway",
                reason="CrashLoopBackOff",
                message="exit code 1",
                since=SINCE,
                restart_count=4,
                workload=DEPLOYMENT,
            ),
        ),
    ),
    SmokeResult(namespace="clinical-trials", service="api-gateway", port=8000, path="/health", status_code=200),
    SmokeResult(namespace="clinical-trials", service="api-gateway", port="http", path="/health", status_code=503),
]


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda m: type(m).__name__)
def test_json_round_trip_is_exact(model: BaseModel) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model
    assert type(model).model_validate(model.model_dump(mode="json")) == model


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        DEPLOYMENT.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        ObjectRef.model_validate({**DEPLOYMENT.model_dump(), "uid": "x"})


def test_key_names_group_kind_namespace_and_name_without_version() -> None:
    assert DEPLOYMENT.key == "Deployment.apps/clinical-trials/api-gateway"
    assert NAMESPACE.key == "Namespace/clinical-trials"
    assert DEPLOYMENT.model_copy(update={"api_version": "apps/v1beta2"}).key == DEPLOYMENT.key
    assert str(DEPLOYMENT) == DEPLOYMENT.key


def test_ref_of_an_object() -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clinical-trials", "namespace": ""}}
    assert ObjectRef.of(obj) == NAMESPACE


def test_apply_result_and_health_summaries() -> None:
    result = EXAMPLES[1]
    assert isinstance(result, ApplyResult)
    assert result.refs("configured") == (DEPLOYMENT,)
    assert result.changed
    report = EXAMPLES[3]
    assert isinstance(report, HealthReport)
    assert report.failed
    assert not HealthReport(checked_at=SINCE, healthy=False).failed
    assert SmokeResult(namespace="n", service="s", port=1, path="/", status_code=204).ok
