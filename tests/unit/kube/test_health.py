"""kubectl's rollout-status rules and the fail-fast pod checks, on objects shaped as the API returns them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controlplane.errors import InputValidationError
from controlplane.kube import health
from controlplane.kube.health import (
    blame_of,
    current_replicaset,
    daemonset_status,
    deployment_status,
    pod_failures,
    rollout_status,
    selector_matches,
    statefulset_status,
)
from controlplane.models.kube import ObjectRef
from controlplane.platform import READINESS_DEADLINE_ANNOTATION

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
# Pods of the fixtures were created at 10:15:02; "now" is set relative to that.
CREATED = datetime(2026, 1, 26, 10, 15, 3, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def pods_by_name() -> dict[str, dict[str, Any]]:
    pods = load("pods_api_gateway")["items"]
    return {p["metadata"]["name"].rsplit("-", 1)[-1]: p for p in pods}


# --- Deployment -----------------------------------------------------------------------------------------------


def test_deployment_with_all_replicas_updated_and_available_is_done() -> None:
    status = deployment_status(load("deployment_rolled_out"))
    assert (status.done, status.failed, status.reason) == (True, False, "RolledOut")
    assert status.message == 'deployment "api-gateway" successfully rolled out'
    assert status.ref == ObjectRef(
        api_version="apps/v1", kind="Deployment", namespace="clinical-trials", name="api-gateway"
    )


def test_deployment_whose_spec_is_not_observed_yet_waits_whatever_its_counts() -> None:
    status = deployment_status(load("deployment_not_observed"))
    assert (status.done, status.failed, status.reason) == (False, False, "SpecNotObserved")


def test_deployment_mid_rollout_waits_for_new_replicas_first() -> None:
    status = deployment_status(load("deployment_progressing"))
    assert (status.done, status.reason) == (False, "UpdatingReplicas")
    assert "2 out of 3 new replicas have been updated" in status.message


def test_deployment_waits_while_old_replicas_are_pending_termination() -> None:
    dep = load("deployment_progressing")
    dep["status"].update(updatedReplicas=3, replicas=4, availableReplicas=3)
    status = deployment_status(dep)
    assert (status.done, status.reason) == (False, "OldReplicasPending")
    assert "1 old replicas are pending termination" in status.message


def test_deployment_waits_until_updated_replicas_are_available() -> None:
    dep = load("deployment_progressing")
    dep["status"].update(updatedReplicas=3, replicas=3, availableReplicas=2)
    status = deployment_status(dep)
    assert (status.done, status.reason) == (False, "ReplicasUnavailable")
    assert "2 of 3 updated replicas are available" in status.message


def test_deployment_past_its_progress_deadline_fails() -> None:
    status = deployment_status(load("deployment_deadline_exceeded"))
    assert (status.done, status.failed, status.reason) == (False, True, "ProgressDeadlineExceeded")
    assert "exceeded its progress deadline" in status.message


def test_progress_deadline_of_an_older_generation_is_not_judged_until_observed() -> None:
    dep = load("deployment_deadline_exceeded")
    dep["metadata"]["generation"] = 8  # a new spec the controller has not seen yet
    assert deployment_status(dep).reason == "SpecNotObserved"


def test_deployment_scaled_to_zero_is_done() -> None:
    dep = load("deployment_rolled_out")
    dep["spec"]["replicas"] = 0
    dep["status"] = {"observedGeneration": 6, "conditions": dep["status"]["conditions"]}
    assert deployment_status(dep).done


# --- StatefulSet and DaemonSet --------------------------------------------------------------------------------


def statefulset(**status: Any) -> dict[str, Any]:
    base = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "redis", "namespace": "clinical-trials", "generation": 2},
        "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "readyReplicas": 3,
            "currentReplicas": 3,
            "updatedReplicas": 3,
            "currentRevision": "redis-5b8f9c7d6",
            "updateRevision": "redis-5b8f9c7d6",
        },
    }
    base["status"].update(status)
    return base


def test_statefulset_never_observed_waits() -> None:
    sts = statefulset(observedGeneration=0)
    assert statefulset_status(sts).reason == "SpecNotObserved"


def test_statefulset_waits_for_ready_pods() -> None:
    status = statefulset_status(statefulset(readyReplicas=1))
    assert (status.done, status.message) == (False, "Waiting for 2 pods to be ready...")


def test_statefulset_partitioned_rollout_waits_for_pods_above_the_partition() -> None:
    sts = statefulset(updatedReplicas=1)
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 1
    assert statefulset_status(sts).reason == "PartitionedRolloutPending"
    sts["status"]["updatedReplicas"] = 2
    assert statefulset_status(sts).done


def test_statefulset_without_rolling_update_block_compares_revisions() -> None:
    sts = statefulset(updateRevision="redis-6c9d")
    del sts["spec"]["updateStrategy"]["rollingUpdate"]
    assert statefulset_status(sts).reason == "RevisionPending"
    sts["status"]["currentRevision"] = "redis-6c9d"
    assert statefulset_status(sts).done


def test_statefulset_with_on_delete_strategy_has_no_rollout_to_wait_for() -> None:
    sts = statefulset(readyReplicas=0)
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    status = statefulset_status(sts)
    assert (status.done, status.reason) == (True, "NoRolloutStatus")


def daemonset(**status: Any) -> dict[str, Any]:
    base = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "log-shipper", "namespace": "clinical-trials", "generation": 3},
        "spec": {"updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": 3,
            "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 3,
            "numberAvailable": 3,
        },
    }
    base["status"].update(status)
    return base


@pytest.mark.parametrize(
    ("status", "reason", "done"),
    [
        ({"observedGeneration": 2}, "SpecNotObserved", False),
        ({"updatedNumberScheduled": 1}, "UpdatingPods", False),
        ({"numberAvailable": 2}, "PodsUnavailable", False),
        ({}, "RolledOut", True),
    ],
)
def test_daemonset_rules_follow_kubectl(status: dict[str, int], reason: str, done: bool) -> None:
    result = daemonset_status(daemonset(**status))
    assert (result.reason, result.done) == (reason, done)


def test_rollout_status_dispatches_by_kind_and_rejects_others() -> None:
    assert rollout_status(load("deployment_rolled_out")).done
    with pytest.raises(InputValidationError, match="ConfigMap"):
        rollout_status({"kind": "ConfigMap", "metadata": {"name": "x"}})


# --- Fail-fast pod checks -------------------------------------------------------------------------------------


def test_healthy_and_young_failing_pods_are_not_failures() -> None:
    pods = [p for name, p in pods_by_name().items() if name != "q9wzr"]  # the crash loop needs no grace (below)
    assert pod_failures(pods, now=CREATED + timedelta(seconds=30)) == []


def test_a_crash_loop_fails_at_the_restart_threshold_without_waiting_out_the_grace() -> None:
    pod = pods_by_name()["q9wzr"]
    [failure] = pod_failures([pod], now=CREATED + timedelta(seconds=5), grace_seconds=60, restart_threshold=1)
    assert failure.reason == "CrashLoopBackOff"


def test_definitive_image_and_config_errors_fail_after_the_short_grace_a_registry_blip_after_the_long_one() -> None:
    pods = pods_by_name()
    judged = {"grace_seconds": 60, "definitive_grace_seconds": 5}
    assert pod_failures([pods["m4hvd"], pods["b8nts"]], now=CREATED + timedelta(seconds=5), **judged) == []
    failures = pod_failures([pods["m4hvd"], pods["b8nts"]], now=CREATED + timedelta(seconds=6), **judged)
    assert [f.reason for f in failures] == ["ImagePullBackOff", "CreateContainerConfigError"]
    blip = json.loads(json.dumps(pods["m4hvd"]))
    [state] = [c["state"] for c in blip["status"]["containerStatuses"]]
    throttled = "unexpected status from GET request: 429 Too Many Requests"
    state["waiting"] = {"reason": "ErrImagePull", "message": throttled}
    assert pod_failures([blip], now=CREATED + timedelta(seconds=60), **judged) == []
    [failure] = pod_failures([blip], now=CREATED + timedelta(seconds=61), **judged)
    assert failure.blame == "platform"


def test_image_pull_and_config_errors_fail_once_the_grace_period_is_over() -> None:
    pods = pods_by_name()
    failures = pod_failures([pods["m4hvd"], pods["b8nts"]], now=CREATED + timedelta(seconds=61))
    assert [(f.pod, f.reason) for f in failures] == [
        ("api-gateway-6f8b9d7c5e-m4hvd", "ImagePullBackOff"),
        ("api-gateway-6f8b9d7c5e-b8nts", "CreateContainerConfigError"),
    ]
    assert failures[1].message == 'secret "api-gateway-secrets" not found'
    assert failures[0].since == CREATED
    assert failures[0].container == "api-gateway"
    assert pod_failures([pods["m4hvd"]], now=CREATED + timedelta(seconds=60)) == []  # exactly the grace: not yet


def test_crash_loop_fails_only_at_the_restart_threshold() -> None:
    pod = pods_by_name()["q9wzr"]
    later = CREATED + timedelta(minutes=3)
    [failure] = pod_failures([pod], now=later, restart_threshold=3)
    assert (failure.reason, failure.restart_count) == ("CrashLoopBackOff", 4)
    assert "exit code 1 (Error): KeyError: 'REDIS_URL'" in failure.message
    assert pod_failures([pod], now=later, restart_threshold=5) == []


def test_unschedulable_pod_fails_after_grace_from_its_condition_time() -> None:
    pod = pods_by_name()["r2jfl"]
    scheduled_at = datetime(2026, 1, 26, 10, 15, 2, tzinfo=UTC)
    assert pod_failures([pod], now=scheduled_at + timedelta(seconds=60)) == []
    [failure] = pod_failures([pod], now=scheduled_at + timedelta(seconds=61))
    assert failure.reason == "Unschedulable"
    assert failure.container is None
    assert "Insufficient cpu" in failure.message


def autoscaler_event(pod: dict[str, Any], reason: str, message: str, at: str, version: str = "900") -> dict[str, Any]:
    """A Normal Event of the cluster autoscaler on ``pod``, as the API serves it."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.1", "namespace": meta["namespace"], "resourceVersion": version},
        "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "cluster-autoscaler"},
        "firstTimestamp": at,
        "lastTimestamp": at,
    }


TRIGGERED = "pod triggered scale-up: [{eks-general-5f2b 3->4 (max: 6)}]"
NOT_TRIGGERED = "pod didn't trigger scale-up: 1 max node group size reached, 3 node(s) didn't match Pod's node affinity"


def test_an_unschedulable_pod_the_autoscaler_adds_a_node_for_waits_up_to_the_readiness_deadline() -> None:
    pod = pods_by_name()["r2jfl"]  # unschedulable since 10:15:02
    scheduled_at = datetime(2026, 1, 26, 10, 15, 2, tzinfo=UTC)
    said = health.autoscaler_verdicts([autoscaler_event(pod, "TriggeredScaleUp", TRIGGERED, "2026-01-26T10:15:10Z")])

    judge = {"grace_seconds": 30, "readiness_seconds": 120, "autoscaler": said}
    assert pod_failures([pod], now=scheduled_at + timedelta(seconds=120), **judge) == []  # type: ignore[arg-type]
    [failure] = pod_failures([pod], now=scheduled_at + timedelta(seconds=121), **judge)  # type: ignore[arg-type]
    assert failure.reason == "Unschedulable"
    assert failure.blame == "platform"
    assert TRIGGERED in failure.message
    assert "Insufficient cpu" in failure.message


def test_an_unschedulable_pod_no_node_group_can_run_fails_once_unschedulable_past_the_definitive_grace() -> None:
    pod = pods_by_name()["r2jfl"]  # unschedulable since 10:15:02
    scheduled_at = datetime(2026, 1, 26, 10, 15, 2, tzinfo=UTC)
    events = [
        autoscaler_event(pod, "TriggeredScaleUp", TRIGGERED, "2026-01-26T10:15:03Z", version="800"),
        autoscaler_event(pod, "NotTriggerScaleUp", NOT_TRIGGERED, "2026-01-26T10:15:04Z", version="801"),
    ]
    said = health.autoscaler_verdicts(events)
    judge = {"grace_seconds": 30, "definitive_grace_seconds": 5, "readiness_seconds": 120, "autoscaler": said}

    assert pod_failures([pod], now=scheduled_at + timedelta(seconds=5), **judge) == []  # type: ignore[arg-type]
    [failure] = pod_failures([pod], now=scheduled_at + timedelta(seconds=6), **judge)  # type: ignore[arg-type]
    assert failure.blame == "platform"  # never the image's: nothing is quarantined
    assert failure.since == scheduled_at
    assert "no node group can run it even after a scale-up" in failure.message
    assert "max node group size reached" in failure.message
    # without the autoscaler's word the same pod waits out the grace period
    assert pod_failures([pod], now=scheduled_at + timedelta(seconds=30), grace_seconds=30) == []


def test_autoscaler_verdicts_keep_the_latest_word_per_pod_and_ignore_other_events() -> None:
    pod = pods_by_name()["r2jfl"]
    older = autoscaler_event(pod, "NotTriggerScaleUp", NOT_TRIGGERED, "2026-01-26T10:15:05Z", version="10")
    newer = autoscaler_event(pod, "TriggeredScaleUp", TRIGGERED, "2026-01-26T10:15:15Z", version="11")
    scheduler = {**newer, "reason": "FailedScheduling", "lastTimestamp": "2026-01-26T10:16:00Z"}
    said = health.autoscaler_verdicts([newer, older, scheduler, pod])
    assert said == {pod["metadata"]["uid"]: newer}


def test_next_judgement_of_an_unschedulable_pod_follows_the_autoscalers_word() -> None:
    """The watch wakes up when the verdict could change: the definitive grace after a NotTriggerScaleUp, the
    readiness deadline while a node is being added, else the grace period."""
    deployment = load("deployment_progressing")
    pods = {k: v for k, v in pods_by_name().items() if k == "r2jfl"}  # only the unschedulable one
    objects: dict[tuple[str, str], dict[str, Any]] = {
        ("ReplicaSet", r["metadata"]["name"]): r for r in load("replicasets_api_gateway")["items"]
    }
    objects.update({("Pod", p["metadata"]["name"]): p for p in pods.values()})
    objects[("Deployment", deployment["metadata"]["name"])] = deployment
    namespace = deployment["metadata"]["namespace"]
    refs = [ObjectRef.of(deployment)]
    judge = health.Judge(grace_seconds=30, readiness_seconds=120, definitive_grace_seconds=5)
    scheduled_at = datetime(2026, 1, 26, 10, 15, 2, tzinfo=UTC)
    tick = timedelta(microseconds=1)

    def moment(*events: dict[str, Any]) -> datetime | None:
        snapshot = {namespace: {**objects, **{("Event", str(i)): e for i, e in enumerate(events)}}}
        return health.next_judgement(refs, snapshot, now=scheduled_at, judge=judge)

    pod = pods["r2jfl"]
    assert moment() == scheduled_at + timedelta(seconds=30) + tick
    assert moment(autoscaler_event(pod, "TriggeredScaleUp", TRIGGERED, "2026-01-26T10:15:10Z")) == (
        scheduled_at + timedelta(seconds=120) + tick
    )
    said_at = "2026-01-26T10:15:04Z"
    assert moment(autoscaler_event(pod, "NotTriggerScaleUp", NOT_TRIGGERED, said_at)) == (
        scheduled_at + timedelta(seconds=5) + tick
    )


def test_failures_say_whether_the_image_or_the_platform_is_to_blame() -> None:
    pods = pods_by_name()
    later = CREATED + timedelta(minutes=3)
    blamed = {f.reason: f.blame for f in pod_failures(list(pods.values()), now=later)}
    assert blamed == {
        "ImagePullBackOff": "image",
        "CreateContainerConfigError": "platform",  # secret "api-gateway-secrets" not found
        "CrashLoopBackOff": "image",
        "Unschedulable": "platform",
    }


@pytest.mark.parametrize(
    ("reason", "message", "blame"),
    [
        ("CreateContainerConfigError", 'secret "db-credentials" not found', "platform"),
        ("CreateContainerConfigError", 'configmap "edc-config" not found', "platform"),
        ("CreateContainerConfigError", "couldn't find key password in Secret clinical-trials/db", "platform"),
        ("CreateContainerConfigError", "container has runAsNonRoot and image will run as root", "image"),
        ("ErrImagePull", 'failed to resolve reference "x": not found', "image"),
        ("ErrImagePull", "unexpected status from HEAD request: 503 Service Unavailable", "platform"),
        ("ErrImagePull", "toomanyrequests: Rate exceeded", "platform"),
        ("ImagePullBackOff", 'Back-off pulling image "x"', "image"),
        ("InvalidImageName", "couldn't parse image name", "image"),
        ("CrashLoopBackOff", "back-off 40s restarting failed container", "image"),
        ("Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.", "platform"),
    ],
)
def test_blame_follows_the_kubelets_message(reason: str, message: str, blame: str) -> None:
    assert blame_of(reason, message) == blame


def test_grace_counts_from_when_containers_last_became_unready() -> None:
    pod = copy.deepcopy(pods_by_name()["m4hvd"])
    went_unready = datetime(2026, 1, 26, 11, 0, 0, tzinfo=UTC)
    for condition in pod["status"]["conditions"]:
        if condition["type"] == "ContainersReady":
            condition["lastTransitionTime"] = "2026-01-26T11:00:00Z"
    assert pod_failures([pod], now=went_unready + timedelta(seconds=30)) == []
    assert pod_failures([pod], now=went_unready + timedelta(seconds=90))[0].since == went_unready


def never_ready_pod() -> dict[str, Any]:
    """x7k2p, but its readiness probe never passed: running, not ready since it started."""
    pod = copy.deepcopy(pods_by_name()["x7k2p"])
    pod["status"]["containerStatuses"][0]["ready"] = False
    for condition in pod["status"]["conditions"]:
        if condition["type"] in ("ContainersReady", "Ready"):
            condition.update(status="False", lastTransitionTime="2026-01-26T10:15:03Z")
    return pod


def test_a_pod_running_but_never_ready_fails_at_the_readiness_deadline_only() -> None:
    pod = never_ready_pod()
    assert pod_failures([pod], now=CREATED + timedelta(seconds=500)) == []  # no deadline given: the progress one
    assert pod_failures([pod], now=CREATED + timedelta(seconds=120), readiness_seconds=120) == []
    [failure] = pod_failures([pod], now=CREATED + timedelta(seconds=121), readiness_seconds=120)
    assert (failure.reason, failure.container, failure.blame) == ("NeverReady", "api-gateway", "image")
    assert "120 s" in failure.message
    assert pod_failures([pods_by_name()["x7k2p"]], now=CREATED + timedelta(hours=1), readiness_seconds=10) == []


def test_a_workloads_readiness_deadline_annotation_overrides_the_default() -> None:
    deployment = load("deployment_progressing")
    assert health._readiness_deadline(deployment, 180) == 180
    deployment["metadata"].setdefault("annotations", {})[READINESS_DEADLINE_ANNOTATION] = "45"
    assert health._readiness_deadline(deployment, 180) == 45


def test_terminating_pods_are_not_judged() -> None:
    pod = copy.deepcopy(pods_by_name()["m4hvd"])
    pod["metadata"]["deletionTimestamp"] = "2026-01-26T10:16:00Z"
    assert pod_failures([pod], now=CREATED + timedelta(hours=1)) == []


def test_naive_now_is_taken_as_utc() -> None:
    pod = pods_by_name()["m4hvd"]
    naive = datetime(2026, 1, 26, 10, 17, 0)  # noqa: DTZ001 - the point of the test
    assert len(pod_failures([pod], now=naive)) == 1


# --- Revisions and selectors ----------------------------------------------------------------------------------


def test_current_replicaset_is_the_one_with_the_deployments_revision() -> None:
    dep = load("deployment_progressing")
    replicasets = load("replicasets_api_gateway")["items"]
    rs = current_replicaset(dep, replicasets)
    assert rs is not None
    assert rs["metadata"]["name"] == "api-gateway-6f8b9d7c5e"
    dep["metadata"]["annotations"].pop("deployment.kubernetes.io/revision")
    assert current_replicaset(dep, replicasets) is None


def test_replicaset_selector_picks_only_the_new_revisions_pods() -> None:
    rs = current_replicaset(load("deployment_progressing"), load("replicasets_api_gateway")["items"])
    assert rs is not None
    pods = load("pods_api_gateway")["items"]
    chosen = [p["metadata"]["name"] for p in pods if selector_matches(rs["spec"]["selector"], p["metadata"]["labels"])]
    assert "api-gateway-7d9c6b5f4d-h5t8c" not in chosen
    assert len(chosen) == 5


@pytest.mark.parametrize(
    ("expression", "labels", "matches"),
    [
        ({"key": "tier", "operator": "In", "values": ["web", "api"]}, {"tier": "api"}, True),
        ({"key": "tier", "operator": "In", "values": ["web"]}, {}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["web"]}, {}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["web"]}, {"tier": "web"}, False),
        ({"key": "tier", "operator": "Exists"}, {"tier": ""}, True),
        ({"key": "tier", "operator": "DoesNotExist"}, {"tier": "x"}, False),
    ],
)
def test_selector_expressions(expression: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert selector_matches({"matchExpressions": [expression]}, labels) is matches


def test_nil_selector_matches_nothing_and_empty_selector_everything() -> None:
    assert not selector_matches(None, {"a": "b"})
    assert selector_matches({}, {"a": "b"})
