"""StatefulSet, DaemonSet and Job controllers: the status fields kubectl rollout status and health checks read."""

from __future__ import annotations

import copy

import pytest

from local.cluster.kubelet import Behaviour
from local.cluster.objects import CONTROLLERREVISIONS, DAEMONSETS, JOBS, PODS, STATEFULSETS, get_condition
from local.cluster.store import Obj

from .conftest import Sim

pytestmark = pytest.mark.unit


def _template(app: str, image: str, **pod_spec: object) -> Obj:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": app, "image": image}], **pod_spec},
    }


def _workload(kind: str, name: str, image: str, **spec: object) -> Obj:
    return {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": _template(name, image), **spec},
    }


def _sts_rollout_status(sts: Obj) -> tuple[str, bool]:
    """kubectl's StatefulSetStatusViewer for the RollingUpdate strategy without partition."""
    status = sts.get("status", {})
    if not status.get("observedGeneration") or sts["metadata"]["generation"] > status["observedGeneration"]:
        return "Waiting for statefulset spec update to be observed...", False
    if status.get("readyReplicas", 0) < sts["spec"]["replicas"]:
        return f"Waiting for {sts['spec']['replicas'] - status.get('readyReplicas', 0)} pods to be ready...", False
    if status["updateRevision"] != status["currentRevision"]:
        return "waiting for statefulset rolling update to complete", False
    return f"statefulset rolling update complete {status['currentReplicas']} pods", True


def _ds_rollout_status(ds: Obj) -> tuple[str, bool]:
    """kubectl's DaemonSetStatusViewer."""
    status = ds.get("status", {})
    if ds["metadata"]["generation"] > status.get("observedGeneration", 0):
        return "Waiting for daemon set spec update to be observed...", False
    if status.get("updatedNumberScheduled", 0) < status["desiredNumberScheduled"]:
        return "new pods have been updated...", False
    if status.get("numberAvailable", 0) < status["desiredNumberScheduled"]:
        return "updated pods are available...", False
    return "successfully rolled out", True


def _pod_names(sim: Sim, owner_gr: object, name: str) -> list[str]:
    owner = sim.get(owner_gr, name)  # type: ignore[arg-type]
    return sorted(p["metadata"]["name"] for p in sim.owned(PODS, owner))


def test_statefulset_creates_pods_in_order_one_ready_pod_at_a_time(sim: Sim) -> None:
    sim.apply(STATEFULSETS, _workload("StatefulSet", "db", "repo/db:v1", replicas=3, serviceName="db"))

    assert _pod_names(sim, STATEFULSETS, "db") == ["db-0"]
    sim.advance(2)
    assert _pod_names(sim, STATEFULSETS, "db") == ["db-0", "db-1"]
    assert not _sts_rollout_status(sim.get(STATEFULSETS, "db"))[1]
    sim.advance(4)

    sts = sim.get(STATEFULSETS, "db")
    assert _sts_rollout_status(sts)[1]
    status = sts["status"]
    assert status["replicas"] == status["readyReplicas"] == status["currentReplicas"] == status["updatedReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"]
    assert status["currentRevision"].startswith("db-")
    assert status["observedGeneration"] == 1
    pod = sim.get(PODS, "db-2")
    assert pod["spec"]["hostname"] == "db-2"
    assert pod["spec"]["subdomain"] == "db"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-2"
    assert pod["metadata"]["labels"]["controller-revision-hash"] == status["currentRevision"]
    assert sim.get(CONTROLLERREVISIONS, status["currentRevision"])["revision"] == 1


def test_statefulset_update_replaces_pods_from_the_highest_ordinal(sim: Sim) -> None:
    body = _workload("StatefulSet", "db", "repo/db:v1", replicas=3)
    sim.apply(STATEFULSETS, body)
    sim.advance(6)
    old_revision = sim.get(STATEFULSETS, "db")["status"]["currentRevision"]
    changed = copy.deepcopy(body)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "repo/db:v2"

    sim.apply(STATEFULSETS, changed)

    sts = sim.get(STATEFULSETS, "db")
    assert sts["status"]["currentRevision"] == old_revision
    assert sts["status"]["updateRevision"] != old_revision
    assert not _sts_rollout_status(sts)[1]
    images = {}
    for _ in range(3):
        sim.advance(2)
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in sim.store.list(PODS)}
        if images.get("db-2") == "repo/db:v2" and images.get("db-0") == "repo/db:v1":
            break
    assert images["db-0"] == "repo/db:v1"  # the lowest ordinal goes last
    sim.advance(10)
    sts = sim.get(STATEFULSETS, "db")
    assert _sts_rollout_status(sts)[1]
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"] != old_revision
    assert {p["spec"]["containers"][0]["image"] for p in sim.store.list(PODS)} == {"repo/db:v2"}


def test_daemonset_runs_one_pod_per_ready_node_including_nodes_that_join(sim: Sim) -> None:
    sim.apply(DAEMONSETS, _workload("DaemonSet", "agent", "repo/agent:v1"))
    sim.advance(2)
    ds = sim.get(DAEMONSETS, "agent")
    assert _ds_rollout_status(ds)[1]
    assert ds["status"] | {"observedGeneration": 0} == {
        "currentNumberScheduled": 3,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 3,
        "numberReady": 3,
        "observedGeneration": 0,
        "updatedNumberScheduled": 3,
        "numberAvailable": 3,
    }
    pods = sim.owned(PODS, ds)
    assert len({p["spec"]["nodeName"] for p in pods}) == 3

    sim.nodes.set_group("general", 4)
    assert sim.get(DAEMONSETS, "agent")["status"]["desiredNumberScheduled"] == 3  # the new node is still booting
    sim.advance(32)

    ds = sim.get(DAEMONSETS, "agent")
    assert ds["status"]["desiredNumberScheduled"] == ds["status"]["numberAvailable"] == 4
    assert _ds_rollout_status(ds)[1]


def test_daemonset_update_rolls_one_node_at_a_time(sim: Sim) -> None:
    body = _workload("DaemonSet", "agent", "repo/agent:v1")
    sim.apply(DAEMONSETS, body)
    sim.advance(2)
    changed = copy.deepcopy(body)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "repo/agent:v2"

    sim.apply(DAEMONSETS, changed)
    ds = sim.get(DAEMONSETS, "agent")
    assert ds["status"]["numberUnavailable"] == 1
    assert not _ds_rollout_status(ds)[1]
    updated = [ds["status"]["updatedNumberScheduled"]]
    for _ in range(3):
        sim.advance(2)  # each replacement turns ready after 2s, then the next node's pod is replaced
        updated.append(sim.get(DAEMONSETS, "agent")["status"]["updatedNumberScheduled"])
    assert updated == [1, 2, 3, 3]
    assert _ds_rollout_status(sim.get(DAEMONSETS, "agent"))[1]


def test_job_completes_after_its_pods_run_to_completion(sim: Sim) -> None:
    body = _workload("Job", "migrate", "repo/migrate:v1", completions=2, parallelism=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    sim.images.set("repo/migrate:v1", Behaviour.ready(after=1, completes_after=10))
    sim.apply(JOBS, body)
    sim.advance(5)
    job = sim.get(JOBS, "migrate")
    assert job["status"]["active"] == 2
    assert job["status"]["ready"] == 2
    assert get_condition(job["status"], "Complete") is None

    sim.advance(6)

    job = sim.get(JOBS, "migrate")
    assert job["status"]["succeeded"] == 2
    assert "active" not in job["status"]
    assert get_condition(job["status"], "Complete")["status"] == "True"  # type: ignore[index]
    assert job["status"]["completionTime"]
    assert {p["status"]["phase"] for p in sim.owned(PODS, job)} == {"Succeeded"}
    assert all(p["metadata"]["labels"]["job-name"] == "migrate" for p in sim.owned(PODS, job))


def test_job_fails_once_failed_pods_exceed_the_backoff_limit(sim: Sim) -> None:
    body = _workload("Job", "migrate", "repo/migrate:bad", backoffLimit=1)
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    sim.images.set("repo/migrate:bad", Behaviour.crash_loop(run_for=2))
    sim.apply(JOBS, body)
    sim.advance(10)

    job = sim.get(JOBS, "migrate")
    failed = get_condition(job["status"], "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2
    assert len(sim.owned(PODS, job)) == 2
