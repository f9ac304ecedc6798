"""Deployment and ReplicaSet controllers on a bare Store + SimClock: rollouts as kubectl and the deployer see them."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from local.cluster.kubelet import Behaviour
from local.cluster.objects import DEPLOYMENTS, EVENTS, PODS, REPLICASETS, condition_true, get_condition
from local.cluster.store import Event, Obj
from tests.eventually import eventually

from .conftest import RolloutDeadlineExceededError, Sim, deployment, rollout_status, with_image

pytestmark = pytest.mark.unit


def _advance_until_rolled_out(sim: Sim, name: str, limit: float = 120) -> float:
    """Advance 1s at a time until kubectl would report success; returns the simulated seconds it took."""
    start = sim.clock.now()

    def rolled_out() -> bool:
        message, done = rollout_status(sim.get(DEPLOYMENTS, name))
        assert done, message
        return True

    eventually(rolled_out, what=f"deployment {name} to roll out", timeout=limit, advance=sim.advance)
    return sim.clock.now() - start


def _condition(obj: Obj, type_: str) -> Obj:
    cond = get_condition(obj.get("status"), type_)
    assert cond is not None, f"no {type_} condition in {obj.get('status')}"
    return cond


def test_new_deployment_rolls_out_and_reports_what_kubectl_rollout_status_needs(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=3))

    message, done = rollout_status(sim.get(DEPLOYMENTS, "api"))
    assert not done, message
    _advance_until_rolled_out(sim, "api")

    d = sim.get(DEPLOYMENTS, "api")
    status = d["status"]
    assert status["observedGeneration"] == 1
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (
        3,
        3,
        3,
        3,
    )
    assert "unavailableReplicas" not in status  # omitempty, as the real API serialises a zero
    assert _condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert _condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    [rs] = sim.replicasets("api")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"api-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "api", "pod-template-hash": pod_hash}
    assert rs["metadata"]["ownerReferences"][0] | {"uid": None} == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "api",
        "uid": None,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert rs["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }
    pods = sim.owned(PODS, rs)
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"api-{pod_hash}-")
        assert len(pod["metadata"]["name"]) == len(f"api-{pod_hash}-") + 5
        assert pod["metadata"]["labels"] == {"app": "api", "pod-template-hash": pod_hash}
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"]
        assert pod["spec"]["nodeName"].endswith(".ec2.internal")
        [container] = pod["status"]["containerStatuses"]
        assert container["ready"] is True
        assert container["started"] is True
        assert container["imageID"].startswith("repo/api@sha256:")
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]} == {
            "PodReadyToStartContainers": "True",
            "Initialized": "True",
            "Ready": "True",
            "ContainersReady": "True",
            "PodScheduled": "True",
        }


def test_spec_change_is_not_reported_done_until_observed_and_updated(sim: Sim) -> None:
    body = deployment("api", "repo/api:v1", replicas=2)
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")

    sim.apply(DEPLOYMENTS, with_image(body, "repo/api:v2"))

    d = sim.get(DEPLOYMENTS, "api")
    assert d["metadata"]["generation"] == 2
    assert d["status"]["observedGeneration"] == 2
    assert not rollout_status(d)[1]
    assert _advance_until_rolled_out(sim, "api") <= 10
    d = sim.get(DEPLOYMENTS, "api")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert {p["spec"]["containers"][0]["image"] for p in sim.pods_of("api")} == {"repo/api:v2"}
    replica_counts = sorted((rs["spec"]["replicas"], rs["status"]["replicas"]) for rs in sim.replicasets("api"))
    assert replica_counts == [(0, 0), (2, 2)]


@pytest.mark.parametrize(
    ("replicas", "rolling_update", "surge", "unavailable"),
    [
        (3, None, 1, 0),  # defaults 25%/25%: surge rounds up, unavailable rounds down
        (4, None, 1, 1),
        (4, {"maxSurge": 0, "maxUnavailable": 1}, 0, 1),
        (5, {"maxSurge": "40%", "maxUnavailable": "40%"}, 2, 2),
        (3, {"maxSurge": 3, "maxUnavailable": 0}, 3, 0),
    ],
)
def test_rolling_update_keeps_surge_and_unavailability_bounds_at_every_write(
    sim: Sim, replicas: int, rolling_update: dict[str, Any] | None, surge: int, unavailable: int
) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": rolling_update} if rolling_update else None
    body = deployment("api", "repo/api:v1", replicas=replicas, strategy=strategy)
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")
    uid = sim.get(DEPLOYMENTS, "api")["metadata"]["uid"]
    seen: dict[str, int] = {"max_pods": 0, "min_ready": replicas, "checks": 0}

    def check(event: Event) -> None:
        if event.gr not in (PODS, REPLICASETS):
            return
        rs_uids = {
            rs["metadata"]["uid"]
            for rs in sim.store.list(REPLICASETS)
            if rs["metadata"]["ownerReferences"][0]["uid"] == uid
        }
        pods = [p for p in sim.store.list(PODS) if p["metadata"]["ownerReferences"][0]["uid"] in rs_uids]
        seen["max_pods"] = max(seen["max_pods"], len(pods))
        seen["min_ready"] = min(seen["min_ready"], sum(1 for p in pods if condition_true(p, "Ready")))
        seen["checks"] += 1

    sim.store.subscribe(check)
    sim.apply(DEPLOYMENTS, with_image(body, "repo/api:v2"))
    _advance_until_rolled_out(sim, "api")

    assert seen["checks"] > replicas * 3
    assert seen["max_pods"] <= replicas + surge
    assert seen["min_ready"] >= replicas - unavailable
    if surge:
        assert seen["max_pods"] == replicas + surge  # the surge is actually used
    else:
        assert seen["min_ready"] == replicas - unavailable


def test_rollout_with_pods_that_never_turn_ready_exceeds_progress_deadline(sim: Sim) -> None:
    sim.images.set("repo/api:broken", Behaviour.never_ready())
    body = deployment("api", "repo/api:v1", replicas=2, progressDeadlineSeconds=60)
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")

    sim.apply(DEPLOYMENTS, with_image(body, "repo/api:broken"))
    sim.advance(55)
    d = sim.get(DEPLOYMENTS, "api")
    progressing = _condition(d, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    assert "1 out of 2 new replicas have been updated" in rollout_status(d)[0]

    sim.advance(10)

    d = sim.get(DEPLOYMENTS, "api")
    progressing = _condition(d, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    new_rs = next(
        rs
        for rs in sim.replicasets("api")
        if rs["spec"]["template"]["spec"]["containers"][0]["image"].endswith("broken")
    )
    assert progressing["message"] == f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out progressing.'
    assert _condition(d, "Available")["status"] == "True"  # the old pods still serve
    with pytest.raises(RolloutDeadlineExceededError):
        rollout_status(d)


def test_new_deployment_with_crashing_image_is_unavailable(sim: Sim) -> None:
    sim.images.set("repo/api:crash", Behaviour.crash_loop())
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:crash", replicas=2, progressDeadlineSeconds=30))
    sim.advance(20)
    d = sim.get(DEPLOYMENTS, "api")
    available = _condition(d, "Available")
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert d["status"]["unavailableReplicas"] == 2
    assert "availableReplicas" not in d["status"]
    sim.advance(15)
    assert _condition(sim.get(DEPLOYMENTS, "api"), "Progressing")["reason"] == "ProgressDeadlineExceeded"


def test_reverting_the_template_reuses_the_old_replicaset_with_a_new_revision(sim: Sim) -> None:
    v1 = deployment("api", "repo/api:v1", replicas=2)
    sim.apply(DEPLOYMENTS, v1)
    _advance_until_rolled_out(sim, "api")
    [first] = sim.replicasets("api")
    sim.apply(DEPLOYMENTS, with_image(v1, "repo/api:v2"))
    _advance_until_rolled_out(sim, "api")

    sim.apply(DEPLOYMENTS, v1)  # what `kubectl rollout undo` does: put the old template back
    _advance_until_rolled_out(sim, "api")

    replicasets = {rs["metadata"]["name"]: rs for rs in sim.replicasets("api")}
    assert len(replicasets) == 2
    reused = replicasets[first["metadata"]["name"]]
    assert reused["metadata"]["uid"] == first["metadata"]["uid"]
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert reused["spec"]["replicas"] == 2
    assert sim.get(DEPLOYMENTS, "api")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert {p["spec"]["containers"][0]["image"] for p in sim.pods_of("api")} == {"repo/api:v1"}


def test_revision_history_limit_prunes_the_oldest_idle_replicasets(sim: Sim) -> None:
    body = deployment("api", "repo/api:v0", replicas=1, revisionHistoryLimit=2)
    sim.apply(DEPLOYMENTS, body)
    for version in range(1, 5):
        sim.apply(DEPLOYMENTS, with_image(body, f"repo/api:v{version}"))
        _advance_until_rolled_out(sim, "api")

    revisions = sorted(
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for rs in sim.replicasets("api")
    )
    assert revisions == [3, 4, 5]


def test_recreate_strategy_never_runs_old_and_new_pods_together(sim: Sim) -> None:
    body = deployment("api", "repo/api:v1", replicas=3, strategy={"type": "Recreate"})
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")
    images_seen: list[set[str]] = []

    def check(event: Event) -> None:
        if event.gr == PODS:
            images_seen.append({p["spec"]["containers"][0]["image"] for p in sim.store.list(PODS)})

    sim.store.subscribe(check)
    sim.apply(DEPLOYMENTS, with_image(body, "repo/api:v2"))
    _advance_until_rolled_out(sim, "api")

    assert set() in images_seen  # everything old went away first
    assert all(len(images) <= 1 for images in images_seen)
    assert images_seen[-1] == {"repo/api:v2"}


def test_paused_deployment_does_not_start_a_new_rollout_until_resumed(sim: Sim) -> None:
    body = deployment("api", "repo/api:v1", replicas=2)
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")

    paused = with_image(body, "repo/api:v2")
    paused["spec"]["paused"] = True
    sim.apply(DEPLOYMENTS, paused)
    sim.advance(10)

    assert len(sim.replicasets("api")) == 1
    assert _condition(sim.get(DEPLOYMENTS, "api"), "Progressing")["reason"] == "DeploymentPaused"
    sim.apply(DEPLOYMENTS, with_image(body, "repo/api:v2"))
    _advance_until_rolled_out(sim, "api")
    assert {p["spec"]["containers"][0]["image"] for p in sim.pods_of("api")} == {"repo/api:v2"}


def test_min_ready_seconds_delays_availability(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=2, minReadySeconds=10))
    sim.advance(5)
    d = sim.get(DEPLOYMENTS, "api")
    assert d["status"]["readyReplicas"] == 2
    assert "availableReplicas" not in d["status"]
    elapsed = _advance_until_rolled_out(sim, "api")
    assert 10 <= elapsed + 5 <= 14


def test_scaling_a_deployment_scales_its_replicaset(sim: Sim) -> None:
    body = deployment("api", "repo/api:v1", replicas=2)
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")
    body["spec"]["replicas"] = 4
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")
    assert len(sim.pods_of("api")) == 4
    body["spec"]["replicas"] = 1
    sim.apply(DEPLOYMENTS, body)
    assert len(sim.pods_of("api")) == 1
    assert [rs["spec"]["replicas"] for rs in sim.replicasets("api")] == [1]


def test_deleted_pod_is_replaced_by_its_replicaset(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=2))
    _advance_until_rolled_out(sim, "api")
    victim = sim.pods_of("api")[0]

    sim.store.remove(PODS, "default", victim["metadata"]["name"])
    sim.manager.reconcile()

    names = {p["metadata"]["name"] for p in sim.pods_of("api")}
    assert len(names) == 2
    assert victim["metadata"]["name"] not in names


def test_controllers_tolerate_a_replicaset_vanishing_mid_rollout(sim: Sim) -> None:
    body = deployment("api", "repo/api:v1", replicas=2)
    sim.apply(DEPLOYMENTS, body)
    _advance_until_rolled_out(sim, "api")
    sim.apply(DEPLOYMENTS, with_image(body, "repo/api:v2"))
    for rs in sim.replicasets("api"):
        sim.store.remove(REPLICASETS, "default", rs["metadata"]["name"])

    _advance_until_rolled_out(sim, "api")

    assert {p["spec"]["containers"][0]["image"] for p in sim.pods_of("api")} == {"repo/api:v2"}


def test_seven_service_rolling_update_completes_on_the_simulated_clock(sim: Sim) -> None:
    """Correctness only: the wall-time target (< 1 s) is measured by bench/rollout_bench.py, never in a test."""
    bodies = [deployment(f"svc-{i}", f"repo/svc-{i}:v1", replicas=2 + i % 2) for i in range(7)]
    for body in bodies:
        sim.apply(DEPLOYMENTS, body)
    for body in bodies:
        _advance_until_rolled_out(sim, body["metadata"]["name"])

    for body in bodies:
        sim.apply(DEPLOYMENTS, with_image(body, body["spec"]["template"]["spec"]["containers"][0]["image"][:-2] + "v2"))
    eventually(
        lambda: all(rollout_status(sim.get(DEPLOYMENTS, b["metadata"]["name"]))[1] for b in bodies),
        what="all seven deployments to roll out v2",
        timeout=60,
        advance=sim.advance,
    )
    assert {p["spec"]["containers"][0]["image"][-2:] for b in bodies for p in sim.pods_of(b["metadata"]["name"])} == {
        "v2"
    }


def test_concurrent_writers_reconcilers_and_clock_ticks_do_not_deadlock(sim: Sim) -> None:
    bodies = [deployment(f"svc-{i}", f"repo/svc-{i}:v1", replicas=2) for i in range(4)]
    errors: list[BaseException] = []

    def writer(body: Obj) -> None:
        try:
            for version in range(2, 6):
                sim.apply(DEPLOYMENTS, with_image(body, f"repo/{body['metadata']['name']}:v{version}"))
                sim.manager.reconcile()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def ticker() -> None:
        try:
            sim.advance(20)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in bodies] + [threading.Thread(target=ticker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a reconcile deadlocked"
    assert errors == []
    sim.advance(20)
    for body in bodies:
        d = sim.get(DEPLOYMENTS, body["metadata"]["name"])
        assert rollout_status(d)[1]
        assert {p["spec"]["containers"][0]["image"] for p in sim.pods_of(body["metadata"]["name"])} == {
            f"repo/{body['metadata']['name']}:v5"
        }


def test_rollout_records_scaling_events_that_expire_after_an_hour(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=2))
    _advance_until_rolled_out(sim, "api")
    reasons = {e["reason"] for e in sim.store.list(EVENTS, "default")}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled"} <= reasons

    sim.clock.advance(3601, step=100)

    assert sim.store.list(EVENTS, "default") == []
