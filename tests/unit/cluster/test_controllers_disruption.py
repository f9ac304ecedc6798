"""The disruption controller (PodDisruptionBudget status), the root CA publisher (``kube-root-ca.crt``) and the status
fields the API server always serialises."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.cluster.objects import (
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    HORIZONTALPODAUTOSCALERS,
    PODDISRUPTIONBUDGETS,
    REPLICASETS,
    STATEFULSETS,
    get_condition,
)
from local.cluster.store import GroupResource, Obj
from local.cluster.wire import Request

from .conftest import Sim, _bearer, deployment

pytestmark = pytest.mark.unit


def pdb(name: str, app: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
    }


def pdb_status(sim: Sim, name: str) -> tuple[int, int, int, int]:
    status = sim.get(PODDISRUPTIONBUDGETS, name)["status"]
    return status["currentHealthy"], status["desiredHealthy"], status["expectedPods"], status["disruptionsAllowed"]


def allowed_condition(sim: Sim, name: str) -> tuple[str, str]:
    cond = get_condition(sim.get(PODDISRUPTIONBUDGETS, name)["status"], "DisruptionAllowed")
    assert cond is not None
    return cond["status"], cond["reason"]


@pytest.mark.parametrize(
    ("budget", "before_ready", "after_ready"),
    [
        ({"minAvailable": 2}, (0, 2, 3, 0), (3, 2, 3, 1)),
        ({"minAvailable": "50%"}, (0, 2, 3, 0), (3, 2, 3, 1)),
        ({"maxUnavailable": 1}, (0, 2, 3, 0), (3, 2, 3, 1)),
        ({"maxUnavailable": "100%"}, (0, 0, 3, 0), (3, 0, 3, 3)),
    ],
)
def test_pdb_status_follows_the_pods_health_and_the_deployments_scale(
    sim: Sim, budget: Obj, before_ready: tuple[int, ...], after_ready: tuple[int, ...]
) -> None:
    sim.apply(DEPLOYMENTS, deployment("web", "repo/web:v1", replicas=3))
    sim.apply(PODDISRUPTIONBUDGETS, pdb("web", "web", **budget))

    assert pdb_status(sim, "web") == before_ready  # pods not ready yet
    assert allowed_condition(sim, "web") == ("False", "InsufficientPods")

    sim.advance(5)

    assert pdb_status(sim, "web") == after_ready
    expected = ("True", "SufficientPods") if after_ready[3] else ("False", "InsufficientPods")
    assert allowed_condition(sim, "web") == expected
    stored = sim.get(PODDISRUPTIONBUDGETS, "web")
    assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"]


def test_a_pdb_selecting_nothing_allows_no_disruption(sim: Sim) -> None:
    sim.apply(PODDISRUPTIONBUDGETS, pdb("ghost", "nobody", minAvailable=1))

    assert pdb_status(sim, "ghost") == (0, 1, 0, 0)
    assert allowed_condition(sim, "ghost") == ("False", "InsufficientPods")


def test_every_namespace_gets_the_root_ca_configmap_and_it_comes_back(sim: Sim) -> None:
    ca = sim.cluster.ca_pem.decode()
    for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
        cm = sim.store.get(CONFIGMAPS, namespace, "kube-root-ca.crt")
        assert cm is not None, namespace
        assert cm["data"] == {"ca.crt": ca}

    created = sim.cluster.api.handle(
        Request(
            method="POST",
            path="/api/v1/namespaces",
            query={},
            headers={"Authorization": _bearer(), "Content-Type": "application/json"},
            body=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}).encode(),
        )
    )
    assert created.status == 201, created.body
    assert sim.store.get(CONFIGMAPS, "team", "kube-root-ca.crt") is not None

    sim.store.remove(CONFIGMAPS, "team", "kube-root-ca.crt")
    sim.advance(1)
    restored = sim.store.get(CONFIGMAPS, "team", "kube-root-ca.crt")
    assert restored is not None
    assert restored["data"] == {"ca.crt": ca}


def _daemonset() -> Obj:
    labels = {"app": "agent"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
        },
    }


def _statefulset() -> Obj:
    labels = {"app": "db"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "replicas": 0,
            "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}},
        },
    }


@pytest.mark.parametrize(
    ("gr", "obj", "fields"),
    [
        (STATEFULSETS, _statefulset(), {"replicas": 0, "availableReplicas": 0}),
        (
            DAEMONSETS,
            _daemonset(),
            {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3, "numberReady": 0},
        ),
        (PODDISRUPTIONBUDGETS, pdb("none", "none", minAvailable=0), {"currentHealthy": 0, "disruptionsAllowed": 0}),
    ],
)
def test_status_carries_the_fields_the_go_types_always_serialise(
    sim: Sim, gr: GroupResource, obj: Obj, fields: dict[str, int]
) -> None:
    sim.apply(gr, obj)
    status = sim.get(gr, obj["metadata"]["name"])["status"]
    assert {k: status.get(k) for k in fields} == fields


def test_a_replicaset_scaled_to_zero_still_reports_replicas_and_an_hpa_its_desired_count(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("web", "repo/web:v1", replicas=0))
    [rs] = sim.replicasets("web")
    assert sim.get(REPLICASETS, rs["metadata"]["name"])["status"]["replicas"] == 0
    sim.apply(
        HORIZONTALPODAUTOSCALERS,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "missing", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nope"},
                "maxReplicas": 2,
            },
        },
    )
    assert sim.get(HORIZONTALPODAUTOSCALERS, "missing")["status"]["desiredReplicas"] == 0
