"""The HorizontalPodAutoscaler controller (no metrics): clamps its target into the bounds as a ``/scale`` write would,
leaves a target at 0 alone, and reports what it did in the HPA's status."""

from __future__ import annotations

import pytest

from local.cluster.controllers import HPA_MANAGER
from local.cluster.objects import DEPLOYMENTS, HORIZONTALPODAUTOSCALERS, STATEFULSETS, fmt_time, get_condition
from local.cluster.store import Obj

from .conftest import FIELD_MANAGER, START, Sim, deployment

pytestmark = pytest.mark.unit


def hpa(target: str, high: int, low: int | None = None, *, kind: str = "Deployment", name: str = "") -> Obj:
    spec: Obj = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target}, "maxReplicas": high}
    if low is not None:
        spec["minReplicas"] = low
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name or target, "namespace": "default"},
        "spec": spec,
    }


def condition(sim: Sim, name: str, type_: str) -> tuple[str, str]:
    found = get_condition(sim.get(HORIZONTALPODAUTOSCALERS, name).get("status") or {}, type_)
    assert found is not None, f"no {type_} condition"
    return found["status"], found["reason"]


def replicas_managers(obj: Obj) -> list[tuple[str, str, str]]:
    return [
        (m["manager"], m["operation"], m.get("subresource", ""))
        for m in obj["metadata"].get("managedFields") or []
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    ]


def test_a_target_below_min_is_scaled_up_with_generation_managed_fields_and_status(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("web", "web:1", replicas=1))
    generation = sim.get(DEPLOYMENTS, "web")["metadata"]["generation"]
    sim.advance(5)

    sim.apply(HORIZONTALPODAUTOSCALERS, hpa("web", 5, 3))

    web = sim.get(DEPLOYMENTS, "web")
    assert web["spec"]["replicas"] == 3
    assert web["metadata"]["generation"] == generation + 1  # a spec change: the API server would bump it
    assert replicas_managers(web) == [(HPA_MANAGER, "Update", "scale")]
    assert len(sim.pods_of("web")) == 3  # the deployment controller followed
    status = sim.get(HORIZONTALPODAUTOSCALERS, "web")["status"]
    assert (status["currentReplicas"], status["desiredReplicas"]) == (3, 3)
    assert status["lastScaleTime"] == fmt_time(START + 5)
    assert condition(sim, "web", "ScalingActive") == ("True", "ValidMetricFound")
    assert condition(sim, "web", "ScalingLimited") == ("False", "DesiredWithinRange")


def test_a_target_above_max_is_scaled_down_and_min_defaults_to_one(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("web", "web:1", replicas=6))
    sim.apply(HORIZONTALPODAUTOSCALERS, hpa("web", 4))
    assert sim.get(DEPLOYMENTS, "web")["spec"]["replicas"] == 4

    sim.apply(DEPLOYMENTS, deployment("web", "web:1", replicas=1))
    assert sim.get(DEPLOYMENTS, "web")["spec"]["replicas"] == 1  # within [1 (default), 4]: left alone


def test_a_target_within_bounds_is_not_written(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("web", "web:1", replicas=2))
    before = sim.get(DEPLOYMENTS, "web")

    sim.apply(HORIZONTALPODAUTOSCALERS, hpa("web", 5, 1))

    after = sim.get(DEPLOYMENTS, "web")
    assert after["spec"]["replicas"] == 2
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert replicas_managers(after) == [(FIELD_MANAGER, "Apply", "")]  # the HPA wrote nothing: the applier owns it
    status = sim.get(HORIZONTALPODAUTOSCALERS, "web")["status"]
    assert (status["currentReplicas"], status["desiredReplicas"]) == (2, 2)
    assert "lastScaleTime" not in status
    assert condition(sim, "web", "AbleToScale") == ("True", "SucceededGetScale")


def test_a_target_at_zero_is_left_alone_with_scaling_disabled(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("web", "web:1", replicas=0))

    sim.apply(HORIZONTALPODAUTOSCALERS, hpa("web", 5, 2))

    assert sim.get(DEPLOYMENTS, "web")["spec"]["replicas"] == 0
    status = sim.get(HORIZONTALPODAUTOSCALERS, "web")["status"]
    assert status["desiredReplicas"] == 0
    assert "currentReplicas" not in status  # omitempty in autoscaling/v2, as the real API serialises a zero
    assert condition(sim, "web", "ScalingActive") == ("False", "ScalingDisabled")

    sim.apply(DEPLOYMENTS, deployment("web", "web:1", replicas=1))  # woken up below min: the HPA takes over again
    assert sim.get(DEPLOYMENTS, "web")["spec"]["replicas"] == 2
    assert condition(sim, "web", "ScalingActive") == ("True", "ValidMetricFound")


def test_a_stateful_set_is_clamped_too(sim: Sim) -> None:
    labels = {"app": "db"}
    sim.apply(
        STATEFULSETS,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "serviceName": "db",
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}},
            },
        },
    )
    sim.apply(HORIZONTALPODAUTOSCALERS, hpa("db", 3, 2, kind="StatefulSet"))
    assert sim.get(STATEFULSETS, "db")["spec"]["replicas"] == 2


def test_a_missing_target_is_reported_not_scaled(sim: Sim) -> None:
    sim.apply(HORIZONTALPODAUTOSCALERS, hpa("ghost", 3, 1))
    assert condition(sim, "ghost", "AbleToScale") == ("False", "FailedGetScale")

    sim.apply(DEPLOYMENTS, deployment("ghost", "ghost:1", replicas=5))  # appears later: clamped then
    assert sim.get(DEPLOYMENTS, "ghost")["spec"]["replicas"] == 3
    assert condition(sim, "ghost", "AbleToScale")[0] == "True"
