"""The platform's services on the eks stack's node groups: each environment's rendered Deployments, scheduled by the
emulator onto the node groups the eks stack makes for that environment (labels, taints, sizes read from
manifests/cloudformation/eks.yaml), land on the group their environment values name, and no group with nodes is left
without work; a pod that does not tolerate a group's taint stays Pending with kube-scheduler's message."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from controlplane import platform
from controlplane.render import load_bundle, render

from local.aws.template import load_template
from local.cluster.objects import DEPLOYMENTS, EVENTS, NODES, get_condition
from local.cluster.store import Obj
from local.nodegroups import EKS_TEMPLATE, LOGICAL_IDS, boot_groups, eks_nodegroups
from local.pipeline import MANIFESTS

from .conftest import Sim

pytestmark = pytest.mark.unit

IMAGES = {name: "sha256:" + f"{i:x}" * 64 for i, name in enumerate(platform.SERVICE_NAMES, start=1)}


@pytest.fixture(scope="module")
def bundle() -> Any:
    return load_bundle(MANIFESTS)


def _deployments(bundle: Any, environment: str) -> list[Obj]:
    """The environment's service Deployments as rendered, at their minimum size (what the HPA scales them to), in
    namespace ``default`` of the harness."""
    values = bundle.environments[environment].services
    out = []
    for rendered in render(bundle, environment, IMAGES, account_id="123456789012", region="us-east-1"):
        if rendered["kind"] != "Deployment" or rendered["metadata"]["name"] not in platform.SERVICE_NAMES:
            continue
        obj = copy.deepcopy(rendered)
        obj["metadata"]["namespace"] = "default"
        obj["spec"]["replicas"] = values[obj["metadata"]["name"]].min_replicas
        obj["spec"]["template"]["spec"].pop("serviceAccountName", None)
        out.append(obj)
    return out


def _cluster_of(environment: str) -> Sim:
    """The emulator with exactly the eks stack's node groups for ``environment``, at their desired sizes, booted."""
    sim = Sim(nodes=0)
    boot_groups(sim.nodes, eks_nodegroups(environment))
    return sim


def _node_classes(sim: Sim) -> dict[str, str]:
    """node name -> its ``workload-class`` label."""
    return {n["metadata"]["name"]: n["metadata"]["labels"][platform.NODE_GROUP_LABEL] for n in sim.store.list(NODES)}


def test_platform_node_groups_are_the_eks_stacks_labels_and_taints() -> None:
    resources = load_template(EKS_TEMPLATE)["Resources"]
    for logical in LOGICAL_IDS:
        props = resources[logical]["Properties"]
        group = platform.NODE_GROUPS[props["Labels"][platform.NODE_GROUP_LABEL]]
        taints = props.get("Taints") or []
        expected = [{"Key": group.taint_key, "Value": group.taint_value, "Effect": "NO_SCHEDULE"}]
        assert taints == (expected if group.taint_key else []), logical
    assert {r["Properties"]["Labels"][platform.NODE_GROUP_LABEL] for r in map(resources.get, LOGICAL_IDS)} == set(
        platform.NODE_GROUPS
    )


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_every_service_lands_on_its_node_group_and_no_group_with_nodes_is_idle(bundle: Any, environment: str) -> None:
    sim = _cluster_of(environment)
    values = bundle.environments[environment].services

    for obj in _deployments(bundle, environment):
        sim.apply(DEPLOYMENTS, obj)

    classes = _node_classes(sim)
    placed: dict[str, set[str]] = {}
    for name in platform.SERVICE_NAMES:
        pods = sim.pods_of(name)
        assert len(pods) == values[name].min_replicas
        where = {classes.get(p["spec"].get("nodeName", ""), "Pending") for p in pods}
        assert where == {values[name].node_group}, (name, where)
        placed.setdefault(values[name].node_group, set()).add(name)
    groups_with_nodes = set(classes.values())
    assert set(placed) == groups_with_nodes  # every group with nodes runs a service, every service has a node
    if environment == "production":
        assert placed == {
            "general": {"api-gateway", "edc-service", "quality-service", "security-service"},
            "compute-intensive": {"data-generation-service"},
            "memory-optimized": {"analytics-service"},
            "spot": {"daft-analytics-service"},
        }


def test_a_pod_not_tolerating_its_groups_taint_stays_pending_with_kube_schedulers_message(bundle: Any) -> None:
    sim = _cluster_of("production")  # 3 general, 1 compute, 1 memory, 2 spot nodes
    [generation] = [d for d in _deployments(bundle, "production") if d["metadata"]["name"] == "data-generation-service"]
    generation["spec"]["template"]["spec"].pop("tolerations")

    sim.apply(DEPLOYMENTS, generation)

    [pod] = sim.pods_of("data-generation-service")
    assert "nodeName" not in pod["spec"]
    assert pod["status"]["phase"] == "Pending"
    message = (
        "0/7 nodes are available: 1 node(s) had untolerated taint {workload-class: compute-intensive}, "
        "1 node(s) had untolerated taint {workload-class: memory-optimized}, "
        "2 node(s) had untolerated taint {capacity-type: spot}, 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/7 nodes are available: 7 Preemption is not helpful for scheduling."
    )
    condition = get_condition(pod["status"], "PodScheduled")
    assert condition is not None
    assert (condition["status"], condition["reason"], condition["message"]) == ("False", "Unschedulable", message)
    events = [e for e in sim.store.list(EVENTS, "default") if e["reason"] == "FailedScheduling"]
    assert [(e["type"], e["message"]) for e in events] == [("Warning", message)]
