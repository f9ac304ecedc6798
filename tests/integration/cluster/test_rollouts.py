"""Rollouts over HTTPS: the official python client and kubectl watch the emulator's controllers roll Deployments out.

A background "ticker" advances the simulated clock in small real-time steps (bounded by a deadline) while the client
watches or kubectl waits, the way a real cluster's time would pass.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch

from local.cluster.kubelet import Behaviour

from .conftest import Kubectl

pytestmark = pytest.mark.integration

NS = "rollouts"


class Ticker:
    """Advances the cluster's clock by ``step`` simulated seconds every ``interval`` real seconds until stopped."""

    def __init__(self, cluster: Any, *, step: float = 1.0, interval: float = 0.01, deadline: float = 30.0) -> None:
        self._cluster = cluster
        self._step = step
        self._interval = interval
        self._deadline = deadline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-ticker", daemon=True)

    def _run(self) -> None:
        ends = time.monotonic() + self._deadline
        while not self._stop.wait(self._interval) and time.monotonic() < ends:
            self._cluster.clock.advance(self._step)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _deployment(name: str, image: str, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
            **spec,
        },
    }


def _rolled_out(d: Any) -> bool:
    """kubectl's rollout-status success rule on a V1Deployment."""
    status, replicas = d.status, d.spec.replicas
    return bool(
        (d.metadata.generation or 0) <= (status.observed_generation or 0)
        and (status.updated_replicas or 0) >= replicas
        and (status.replicas or 0) <= (status.updated_replicas or 0)
        and (status.available_replicas or 0) >= (status.updated_replicas or 0)
    )


@pytest.fixture
def api(kube: client.ApiClient) -> client.ApiClient:
    """The shared official-client fixture, with this module's namespace created."""
    client.CoreV1Api(kube).create_namespace({"metadata": {"name": NS}})
    return kube


def test_watching_a_new_deployment_sees_it_roll_out(cluster: Any, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(NS, _deployment("api", "repo/api:v1"))
    assert created.metadata.generation == 1
    seen: list[tuple[int, int, int]] = []

    with Ticker(cluster):
        stream = watch.Watch().stream(
            apps.list_namespaced_deployment,
            NS,
            field_selector="metadata.name=api",
            resource_version=created.metadata.resource_version,
            timeout_seconds=20,
        )
        for event in stream:
            d = event["object"]
            seen.append(
                (d.status.updated_replicas or 0, d.status.ready_replicas or 0, d.status.available_replicas or 0)
            )
            if _rolled_out(d):
                break

    assert seen[-1] == (3, 3, 3)
    assert seen[0] != seen[-1]  # the watch saw intermediate states, not only the end
    d = apps.read_namespaced_deployment("api", NS)
    conditions = {c.type: c.reason for c in d.status.conditions}
    assert conditions == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    replica_sets = apps.list_namespaced_replica_set(NS, label_selector="app=api").items
    assert [rs.metadata.owner_references[0].uid for rs in replica_sets] == [d.metadata.uid]
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector="app=api").items
    assert len(pods) == 3
    assert all(p.status.phase == "Running" and p.status.container_statuses[0].ready for p in pods)


def test_image_update_over_the_api_rolls_pods_to_the_new_image(cluster: Any, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment("api", "repo/api:v1", replicas=2))
    cluster.clock.advance(5)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "repo/api:v2"}]}}}}

    patched = apps.patch_namespaced_deployment("api", NS, patch)
    assert patched.metadata.generation == 2
    cluster.clock.advance(10)

    d = apps.read_namespaced_deployment("api", NS)
    assert _rolled_out(d)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector="app=api").items
    assert {p.spec.containers[0].image for p in pods} == {"repo/api:v2"}


@pytest.mark.kubectl
def test_kubectl_rollout_status_agrees_and_undo_reuses_the_old_replicaset(
    cluster: Any, api: client.ApiClient, kubectl: Kubectl
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment("api", "repo/api:v1"))
    with Ticker(cluster):
        first = kubectl("--namespace", NS, "rollout", "status", "deployment/api", "--timeout=20s")
    assert first.returncode == 0, first.stderr
    assert 'deployment "api" successfully rolled out' in first.stdout
    [v1] = apps.list_namespaced_replica_set(NS, label_selector="app=api").items

    assert kubectl("--namespace", NS, "set", "image", "deployment/api", "app=repo/api:v2").returncode == 0
    with Ticker(cluster):
        second = kubectl("--namespace", NS, "rollout", "status", "deployment/api", "--timeout=20s")
    assert second.returncode == 0, second.stderr

    undo = kubectl("--namespace", NS, "rollout", "undo", "deployment/api")
    assert undo.returncode == 0, undo.stderr
    with Ticker(cluster):
        third = kubectl("--namespace", NS, "rollout", "status", "deployment/api", "--timeout=20s")
    assert third.returncode == 0, third.stderr

    replica_sets = {rs.metadata.name: rs for rs in apps.list_namespaced_replica_set(NS, label_selector="app=api").items}
    assert len(replica_sets) == 2
    reused = replica_sets[v1.metadata.name]
    assert reused.metadata.uid == v1.metadata.uid
    assert reused.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert reused.spec.replicas == 3
    history = kubectl("--namespace", NS, "rollout", "history", "deployment/api")
    assert history.returncode == 0, history.stderr
    assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line.strip()] == ["2", "3"]


@pytest.mark.kubectl
def test_kubectl_rollout_status_fails_when_the_progress_deadline_passes(
    cluster: Any, api: client.ApiClient, kubectl: Kubectl
) -> None:
    cluster.images.set("repo/api:hang", Behaviour.never_ready())
    client.AppsV1Api(api).create_namespaced_deployment(
        NS, _deployment("api", "repo/api:hang", replicas=1, progressDeadlineSeconds=30)
    )
    with Ticker(cluster, step=2.0):
        result = kubectl("--namespace", NS, "rollout", "status", "deployment/api", "--timeout=20s")

    assert result.returncode == 1
    assert 'deployment "api" exceeded its progress deadline' in result.stderr
