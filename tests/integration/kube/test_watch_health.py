"""The health step's watch against the emulator: the verdict as soon as the API server says so, definitive failures
within seconds, crash loops after the first back-off, never-ready pods at their readiness deadline, a budget that
ends without a verdict, and a watch whose resourceVersion expired.

The emulator's clock is driven by its waiters (as in the AWS harness's simulated mode): the watch itself lets
simulated time pass, and every time below is simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane.kube.apply import apply_objects
from controlplane.kube.client import ApiClient, ClusterAccess, build_api_client
from controlplane.kube.health import Judge
from controlplane.kube.watch import WatchStats, watch_workloads
from controlplane.models.kube import HealthReport, ObjectRef
from kubernetes import client as k8s

from local.cluster import Behaviour, Cluster, api_client
from tests.integration.kube.test_kube_adapter import NS, OWNED, deployment

pytestmark = pytest.mark.integration

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-trials/edc-service@sha256:"
JUDGE = Judge(grace_seconds=30, restart_threshold=1, readiness_seconds=60, definitive_grace_seconds=5)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[ApiClient]:
    cluster.clock.drive_by_waiters()
    client = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": OWNED}}
    apply_objects(client, [namespace], release_id="r")
    yield client
    client.close()


def _deploy(api: ApiClient, cluster: Cluster, behaviour: Behaviour, digest: str) -> tuple[ObjectRef, datetime]:
    cluster.images.set(IMAGE + digest * 64, behaviour)
    obj = deployment("edc-service", IMAGE + digest * 64)
    apply_objects(api, [obj], release_id="r")
    return ObjectRef.of(obj), cluster.clock.utcnow()


def _watch(
    api: ApiClient, cluster: Cluster, ref: ObjectRef, budget: float = 90, stats: WatchStats | None = None
) -> HealthReport:
    now = cluster.clock.utcnow()
    return watch_workloads(api, [ref], now=now, until=now + timedelta(seconds=budget), judge=JUDGE, stats=stats)


def test_the_verdict_comes_as_soon_as_the_rollout_finishes(api: ApiClient, cluster: Cluster) -> None:
    ref, applied = _deploy(api, cluster, Behaviour.ready(after=12), "a")
    stats = WatchStats()
    report = _watch(api, cluster, ref, stats=stats)
    took = (cluster.clock.utcnow() - applied).total_seconds()
    assert report.healthy, report
    assert 12 <= took <= 15  # ready after 12 s; the watch answers within about a second of the API server
    assert report.checked_at <= cluster.clock.utcnow()
    assert stats.lists == 3  # Deployments, ReplicaSets, Pods: listed once, then watched
    assert stats.watches <= 3 * stats.rounds
    assert stats.events > 0


@pytest.mark.parametrize(
    ("behaviour", "reason", "blame", "within"),
    [
        (Behaviour.err_image_pull(), {"ErrImagePull", "ImagePullBackOff"}, "image", 8),
        (Behaviour.create_container_config_error(), {"CreateContainerConfigError"}, "platform", 8),
        (Behaviour.crash_loop(), {"CrashLoopBackOff"}, "image", 20),
        (Behaviour.never_ready(), {"NeverReady"}, "image", 63),
    ],
    ids=["image-not-found", "missing-secret", "crash-loop", "never-ready"],
)
def test_failures_are_reported_within_seconds_of_being_decidable(
    api: ApiClient, cluster: Cluster, behaviour: Behaviour, reason: set[str], blame: str, within: float
) -> None:
    ref, applied = _deploy(api, cluster, behaviour, "b")
    report = _watch(api, cluster, ref)
    took = (cluster.clock.utcnow() - applied).total_seconds()
    assert report.failed, report
    assert {f.reason for f in report.failures} <= reason
    assert {f.blame for f in report.failures} == {blame}
    assert took <= within


def test_a_budget_without_a_verdict_returns_the_picture_at_its_end(api: ApiClient, cluster: Cluster) -> None:
    ref, _ = _deploy(api, cluster, Behaviour.ready(after=200), "c")
    started = cluster.clock.utcnow()
    report = _watch(api, cluster, ref, budget=40)
    assert not report.healthy
    assert not report.failed
    assert report.checked_at >= started + timedelta(seconds=40)
    assert (cluster.clock.utcnow() - started).total_seconds() < 45


def test_a_watch_whose_resource_version_expired_lists_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import controlplane.kube.watch as watch_module  # noqa: PLC0415

    import local.cluster.store as store_module  # noqa: PLC0415

    monkeypatch.setattr(store_module, "HISTORY", 2)  # the server keeps the last two events only
    with Cluster() as small:
        small.clock.drive_by_waiters()
        access = ClusterAccess(endpoint=small.endpoint, ca_data=small.ca_data, token=small.token())
        client = build_api_client(access)
        listed = watch_module.list_with_time
        churned: list[bool] = []

        def list_then_churn(*args: Any, **kwargs: Any) -> Any:
            listing = listed(*args, **kwargs)
            if not churned:  # after the first list, more writes than the server keeps: its version expires
                churned.append(True)
                with api_client(small) as kube:
                    for i in range(5):
                        body = {"metadata": {"name": f"churn-{i}"}}
                        k8s.CoreV1Api(kube).create_namespaced_config_map(NS, body)
            return listing

        monkeypatch.setattr(watch_module, "list_with_time", list_then_churn)
        try:
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": OWNED}}
            apply_objects(client, [namespace], release_id="r")
            ref, _ = _deploy(client, small, Behaviour.ready(after=20), "d")
            stats = WatchStats()
            report = _watch(client, small, ref, stats=stats)
        finally:
            client.close()
    assert report.healthy, report
    assert stats.lists > 3  # listed again after the 410


AUTOSCALER_ADDON = Path(__file__).resolve().parents[3] / "manifests" / "addons" / "cluster-autoscaler"


def _install_autoscaler(cluster: Cluster) -> None:
    """The vendored Cluster Autoscaler's ServiceAccount and Deployment, rendered for this cluster, as an admin."""
    text = (AUTOSCALER_ADDON / "cluster-autoscaler.yaml").read_text().replace("${CLUSTER_NAME}", cluster.name)
    docs = [d for d in yaml.safe_load_all(text) if d and d["kind"] in ("ServiceAccount", "Deployment")]
    cluster.bootstrap(docs)
    cluster.advance(5)


def _needing(api: ApiClient, cluster: Cluster, *, cpu: str, replicas: int) -> tuple[ObjectRef, datetime]:
    obj = deployment("edc-service", IMAGE + "c" * 64, replicas=replicas)
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu, "memory": "256Mi"}}
    apply_objects(api, [obj], release_id="r")
    return ObjectRef.of(obj), cluster.clock.utcnow()


def test_a_pod_no_node_group_can_run_fails_when_the_autoscaler_says_so(api: ApiClient, cluster: Cluster) -> None:
    _install_autoscaler(cluster)
    ref, applied = _needing(api, cluster, cpu="8", replicas=1)  # larger than any node of any group
    stats = WatchStats()
    report = _watch(api, cluster, ref, stats=stats)
    took = (cluster.clock.utcnow() - applied).total_seconds()
    assert report.failed, report
    (failure,) = report.failures
    assert failure.blame == "platform"
    assert "pod didn't trigger scale-up: 1 Insufficient cpu" in failure.message
    assert took <= 17  # the autoscaler looks every 10 s; its word is definitive after 5 s
    assert stats.lists == 4  # the Events were listed (then watched) once a pod was unschedulable


def test_a_pod_waits_for_the_node_the_autoscaler_adds(api: ApiClient, cluster: Cluster) -> None:
    _install_autoscaler(cluster)
    cluster.nodes.set_group("general", 3, max_size=4)
    ref, applied = _needing(api, cluster, cpu="1500m", replicas=4)  # one per node: the fourth needs a new node
    now = cluster.clock.utcnow()
    judge = Judge(grace_seconds=30, restart_threshold=1, readiness_seconds=120, definitive_grace_seconds=5)
    report = watch_workloads(api, [ref], now=now, until=now + timedelta(seconds=120), judge=judge)
    took = (cluster.clock.utcnow() - applied).total_seconds()
    assert report.healthy, report
    assert 60 <= took <= 75  # the node boots for 60 s after the autoscaler's next look
    assert cluster.nodes.groups()["general"].desired == 4
