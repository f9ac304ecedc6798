"""Scheduler, simulated kubelet, node pool, image behaviours and the service proxy, on a bare Store + SimClock."""

from __future__ import annotations

import json

import pytest

from local.cluster.kubelet import Behaviour, ImageBehaviours
from local.cluster.nodes import UnknownInstanceTypeError
from local.cluster.objects import DEPLOYMENTS, EVENTS, NODES, PODS, SERVICES, get_condition, parse_time
from local.cluster.proxy import service_proxy
from local.cluster.store import Obj

from .conftest import Sim, deployment, rollout_status

pytestmark = pytest.mark.unit


def _only_pod(sim: Sim, name: str = "api") -> Obj:
    [pod] = sim.pods_of(name)
    return pod


def _container(pod: Obj) -> Obj:
    statuses: list[Obj] = pod["status"]["containerStatuses"]
    assert len(statuses) == 1
    return statuses[0]


def _service(name: str, selector: dict[str, str] | None) -> Obj:
    spec: Obj = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


# --- image behaviours -------------------------------------------------------------------------------------------


def test_image_behaviours_match_exact_then_digest_then_tag_then_longest_prefix_then_default() -> None:
    images = ImageBehaviours(default=Behaviour.ready(after=1))
    exact, digest, tag, short, long = (
        Behaviour.crash_loop(exit_code=2),
        Behaviour.err_image_pull(),
        Behaviour.never_ready(),
        Behaviour.unhealthy(500),
        Behaviour.unhealthy(502),
    )
    images.set("123.dkr.ecr.us-east-1.amazonaws.com/api:v1", exact)
    images.set("sha256:abc123", digest)
    images.set(":canary", tag)
    images.set("123.dkr.ecr.us-east-1.amazonaws.com/", short)
    images.set("123.dkr.ecr.us-east-1.amazonaws.com/worker", long)

    assert images.get("123.dkr.ecr.us-east-1.amazonaws.com/api:v1") is exact
    assert images.get("123.dkr.ecr.us-east-1.amazonaws.com/api@sha256:abc123") is digest
    assert images.get("localhost:5000/api:canary") is tag
    assert images.get("123.dkr.ecr.us-east-1.amazonaws.com/worker:v9") is long
    assert images.get("123.dkr.ecr.us-east-1.amazonaws.com/api:v2") is short
    assert images.get("nginx:1.27") == Behaviour.ready(after=1)
    images.set("repo/api:v1", exact)
    assert images.get("repo/api:v10") == Behaviour.ready(after=1)  # prefixes stop at component boundaries


# --- kubelet ----------------------------------------------------------------------------------------------------


def test_crash_looping_container_restarts_with_exponential_back_off(sim: Sim) -> None:
    sim.images.set("repo/api:crash", Behaviour.crash_loop(exit_code=137, run_for=3))
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:crash", replicas=1))

    sim.advance(2)
    running = _container(_only_pod(sim))
    assert "running" in running["state"]
    assert running["restartCount"] == 0
    sim.advance(3)  # exited at 3s, backing off 10s
    backing_off = _container(_only_pod(sim))
    assert backing_off["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off 10s restarting failed container=app" in backing_off["state"]["waiting"]["message"]
    assert backing_off["lastState"]["terminated"]["exitCode"] == 137
    assert backing_off["ready"] is False
    restarts = []
    for _ in range(10):  # restarts at 13s, 36s, 79s, 162s, 325s, 628s, 931s (back-off capped at 300s)
        sim.advance(100)
        restarts.append(_container(_only_pod(sim))["restartCount"])
    assert restarts == [3, 4, 4, 5, 5, 5, 6, 6, 6, 7]
    pod = _only_pod(sim)
    assert pod["status"]["phase"] == "Running"
    assert get_condition(pod["status"], "Ready")["reason"] == "ContainersNotReady"  # type: ignore[index]
    backoff_events = [
        e
        for e in sim.store.list(EVENTS, "default")
        if e["reason"] == "BackOff" and e["involvedObject"]["uid"] == pod["metadata"]["uid"]
    ]
    assert len(backoff_events) == 8  # one per crash: 7 restarts so far, the 8th crash is backing off now
    assert backoff_events[0]["type"] == "Warning"
    assert backoff_events[0]["source"] == {"component": "kubelet"}


def test_image_pull_failure_alternates_err_image_pull_and_image_pull_back_off(sim: Sim) -> None:
    sim.images.set("repo/api:missing", Behaviour.err_image_pull())
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:missing", replicas=1))

    first = _container(_only_pod(sim))
    assert first["state"]["waiting"]["reason"] == "ErrImagePull"
    assert "not found" in first["state"]["waiting"]["message"]
    sim.advance(2)
    waiting = _container(_only_pod(sim))["state"]["waiting"]
    assert waiting == {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "repo/api:missing"'}
    sim.advance(8.5)  # the retry after 10s fails again
    assert _container(_only_pod(sim))["state"]["waiting"]["reason"] == "ErrImagePull"
    pod = _only_pod(sim)
    assert pod["status"]["phase"] == "Pending"
    assert _container(pod)["imageID"] == ""


def test_missing_secret_reports_create_container_config_error(sim: Sim) -> None:
    sim.images.set("repo/api:v1", Behaviour.create_container_config_error('secret "db" not found'))
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=1))
    sim.advance(5)
    pod = _only_pod(sim)
    assert pod["status"]["phase"] == "Pending"
    assert _container(pod)["state"]["waiting"] == {
        "reason": "CreateContainerConfigError",
        "message": 'secret "db" not found',
    }


def test_pod_turns_ready_after_its_behaviours_delay(sim: Sim) -> None:
    sim.images.set("repo/api:slow", Behaviour.ready(after=20))
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:slow", replicas=1))
    sim.advance(19)
    assert _container(_only_pod(sim))["ready"] is False
    sim.advance(1)
    pod = _only_pod(sim)
    assert _container(pod)["ready"] is True
    ready = get_condition(pod["status"], "Ready")
    assert ready is not None
    assert parse_time(ready["lastTransitionTime"]) - parse_time(pod["status"]["startTime"]) == 20  # type: ignore[operator]


# --- scheduler and nodes ----------------------------------------------------------------------------------------


def test_pods_stay_pending_without_nodes_and_run_once_nodes_boot() -> None:
    sim = Sim(nodes=0)
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=2))

    for pod in sim.pods_of("api"):
        scheduled = get_condition(pod["status"], "PodScheduled")
        assert scheduled is not None
        assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
        assert scheduled["message"] == "no nodes available to schedule pods"
        assert "nodeName" not in pod["spec"]

    sim.nodes.set_group("general", 2)  # nodes boot for 30 simulated seconds
    sim.advance(10)
    messages = {get_condition(p["status"], "PodScheduled")["message"] for p in sim.pods_of("api")}  # type: ignore[index]
    assert messages == {
        (
            "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        )
    }
    assert sim.nodes.groups()["general"].ready == 0

    sim.advance(25)

    assert sim.nodes.groups()["general"].ready == 2
    assert rollout_status(sim.get(DEPLOYMENTS, "api"))[1]


def test_pods_requesting_more_cpu_than_any_node_has_are_unschedulable(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=1, cpu="3"))
    scheduled = get_condition(_only_pod(sim)["status"], "PodScheduled")
    assert scheduled is not None
    assert scheduled["message"] == (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    )


def test_scheduler_fills_nodes_by_allocatable_cpu(sim: Sim) -> None:
    # t3.medium: 2 vCPU, 1930m allocatable after the EKS reservation: one 1200m pod per node.
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=4, cpu="1200m"))
    pods = sim.pods_of("api")
    placed = [p["spec"].get("nodeName") for p in pods]
    assert len({n for n in placed if n}) == 3
    assert placed.count(None) == 1
    [pending] = [p for p in pods if not p["spec"].get("nodeName")]
    assert get_condition(pending["status"], "PodScheduled")["message"] == (  # type: ignore[index]
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    )


def test_removing_a_node_deletes_its_pods_and_replacements_wait_for_capacity() -> None:
    sim = Sim(nodes=1)
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=2))
    sim.advance(3)
    before = {p["metadata"]["name"] for p in sim.pods_of("api")}

    sim.nodes.set_group("general", 0)

    pods = sim.pods_of("api")
    assert len(pods) == 2
    assert before.isdisjoint(p["metadata"]["name"] for p in pods)
    assert all(p["status"]["phase"] == "Pending" and "nodeName" not in p["spec"] for p in pods)
    assert sim.store.list(NODES) == []
    sim.nodes.set_group("general", 1)
    sim.advance(35)
    assert rollout_status(sim.get(DEPLOYMENTS, "api"))[1]


def test_node_objects_look_like_eks_managed_nodes(sim: Sim) -> None:
    sim.nodes.set_group("gpu", 1, "g4dn.xlarge", zone="us-east-1b")
    [node] = [n for n in sim.store.list(NODES) if n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "gpu"]
    labels = node["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "g4dn.xlarge"
    assert labels["topology.kubernetes.io/zone"] == "us-east-1b"
    assert node["status"]["capacity"]["cpu"] == "4"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    assert node["status"]["allocatable"]["pods"] == "29"
    assert get_condition(node["status"], "Ready")["status"] == "False"  # type: ignore[index]
    groups = sim.nodes.groups()
    assert groups["general"].desired == 3
    assert groups["general"].ready == 3
    assert groups["gpu"].nodes == (node["metadata"]["name"],)
    with pytest.raises(UnknownInstanceTypeError):
        sim.nodes.set_group("odd", 1, "z9.mega")


@pytest.mark.parametrize(
    ("instance_type", "cpu", "memory_gib", "arch"),
    [("m6i.large", "2", 8, "amd64"), ("c7g.xlarge", "4", 8, "arm64"), ("r6a.2xlarge", "8", 64, "amd64")],
)
def test_instance_types_outside_the_table_get_capacity_from_family_and_size(
    sim: Sim, instance_type: str, cpu: str, memory_gib: int, arch: str
) -> None:
    sim.nodes.set_group("extra", 1, instance_type, boot_seconds=0)
    [node] = [n for n in sim.store.list(NODES) if n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "extra"]
    assert node["status"]["capacity"]["cpu"] == cpu
    assert node["status"]["capacity"]["memory"] == f"{memory_gib * 1024 * 1024}Ki"
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == arch


# --- service proxy ----------------------------------------------------------------------------------------------


def test_service_proxy_answers_404_for_a_missing_service(sim: Sim) -> None:
    code, body = service_proxy(sim.store, sim.clock, "default", "nope", "http", "/health")
    assert code == 404
    assert json.loads(body) | {"details": None} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'services "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": None,
    }


def test_service_proxy_answers_503_until_a_selected_pod_is_ready(sim: Sim) -> None:
    sim.apply(SERVICES, _service("api", {"app": "api"}))
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=1))

    code, body = service_proxy(sim.store, sim.clock, "default", "api", "http", "/health")
    assert code == 503
    assert json.loads(body)["message"] == 'no endpoints available for service "api"'

    sim.advance(2)

    assert service_proxy(sim.store, sim.clock, "default", "api", "http", "/health") == (200, b'{"status":"healthy"}')
    assert service_proxy(sim.store, sim.clock, "default", "api", "80", "health")[0] == 200
    assert service_proxy(sim.store, sim.clock, "default", "api", "grpc", "/health")[0] == 503


def test_service_proxy_answers_with_the_unhealthy_behaviours_status(sim: Sim) -> None:
    sim.images.set("repo/api:bad", Behaviour.unhealthy(500, '{"status":"db down"}'))
    sim.apply(SERVICES, _service("api", {"app": "api"}))
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:bad", replicas=1))
    sim.advance(2)

    assert rollout_status(sim.get(DEPLOYMENTS, "api"))[1]  # ready, yet its health endpoint fails
    assert service_proxy(sim.store, sim.clock, "default", "api", "http", "/health") == (500, b'{"status":"db down"}')


def test_service_without_selector_has_no_endpoints(sim: Sim) -> None:
    sim.apply(SERVICES, _service("external", None))
    sim.apply(DEPLOYMENTS, deployment("api", "repo/api:v1", replicas=1))
    sim.advance(3)
    assert service_proxy(sim.store, sim.clock, "default", "external", "", "/health")[0] == 503
    assert all(p["status"]["phase"] == "Running" for p in sim.store.list(PODS))
