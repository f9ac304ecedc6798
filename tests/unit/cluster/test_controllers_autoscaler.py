"""The emulated Cluster Autoscaler: it acts only while the vendored add-on runs, scales a node group within its
bounds for pods no node can run (TriggeredScaleUp), and says why when no node group can help (NotTriggerScaleUp),
with cluster-autoscaler's event wording."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from local.cluster.controllers.autoscaler import SCALE_UP_BOOT_SECONDS, SCAN_INTERVAL_S, asg_name
from local.cluster.objects import DEPLOYMENTS, EVENTS, NODES
from local.cluster.store import GroupResource, Obj

from .conftest import CLUSTER, Sim, deployment

pytestmark = pytest.mark.unit

ADDON = Path(__file__).resolve().parents[3] / "manifests" / "addons" / "cluster-autoscaler" / "cluster-autoscaler.yaml"
SERVICEACCOUNTS = GroupResource("", "serviceaccounts")
COMPUTE_TAINT = {"key": "workload-class", "value": "compute-intensive", "effect": "NO_SCHEDULE"}
COMPUTE = {
    "nodeSelector": {"workload-class": "compute-intensive"},
    "tolerations": [
        {"key": "workload-class", "operator": "Equal", "value": "compute-intensive", "effect": "NoSchedule"}
    ],
}


def install_autoscaler(sim: Sim, cluster_name: str = CLUSTER) -> None:
    """The vendored add-on's ServiceAccount and Deployment, rendered for ``cluster_name``."""
    text = ADDON.read_text().replace("${CLUSTER_NAME}", cluster_name)
    docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    sim.apply(SERVICEACCOUNTS, docs["ServiceAccount"])
    sim.apply(DEPLOYMENTS, docs["Deployment"])
    sim.advance(5)  # its pod starts and becomes ready


@pytest.fixture
def sim() -> Sim:
    """One general node (bounds 1..3, where the add-on runs) and an empty compute group (0..2), as the eks stack's."""
    sim = Sim(nodes=0)
    sim.nodes.set_group(
        "general", 1, "t3.medium", boot_seconds=0, labels={"workload-class": "general"}, min_size=1, max_size=3
    )
    sim.nodes.set_group(
        "compute",
        0,
        "c5.xlarge",
        labels={"workload-class": "compute-intensive"},
        taints=[COMPUTE_TAINT],
        min_size=0,
        max_size=2,
    )
    return sim


def autoscaler_events(sim: Sim, pod: Obj) -> list[tuple[str, str]]:
    return [
        (e["reason"], e["message"])
        for e in sorted(sim.store.list(EVENTS), key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e["involvedObject"]["uid"] == pod["metadata"]["uid"] and e["source"]["component"] == "cluster-autoscaler"
    ]


def pending(sim: Sim, name: str) -> list[Obj]:
    return [p for p in sim.pods_of(name) if not p["spec"].get("nodeName")]


def test_without_the_add_on_nothing_scales(sim: Sim) -> None:
    sim.apply(DEPLOYMENTS, deployment("big", "repo/big:v1", replicas=2, cpu="1500m"))
    sim.advance(3 * SCAN_INTERVAL_S)
    (pod,) = pending(sim, "big")
    assert autoscaler_events(sim, pod) == []
    assert sim.nodes.groups()["general"].desired == 1


def test_a_pod_that_fits_only_on_a_new_node_triggers_a_scale_up_then_runs_there(sim: Sim) -> None:
    install_autoscaler(sim)
    sim.apply(DEPLOYMENTS, deployment("big", "repo/big:v1", replicas=2, cpu="1500m"))
    (pod,) = pending(sim, "big")

    sim.advance(SCAN_INTERVAL_S)

    group = sim.nodes.groups()["general"]
    assert group.desired == 2
    assert autoscaler_events(sim, pod) == [
        ("TriggeredScaleUp", f"pod triggered scale-up: [{{{asg_name(CLUSTER, 'general')} 1->2 (max: 3)}}]")
    ]
    assert re.fullmatch(
        r"eks-general-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", asg_name(CLUSTER, "general")
    )
    assert pending(sim, "big")  # the node boots first
    sim.advance(SCALE_UP_BOOT_SECONDS)
    assert pending(sim, "big") == []
    assert all(p["status"]["phase"] == "Running" for p in sim.pods_of("big"))
    assert len(sim.store.list(NODES)) == 2


def test_a_scale_up_from_zero_uses_the_groups_labels_and_taints(sim: Sim) -> None:
    install_autoscaler(sim)
    d = deployment("crunch", "repo/crunch:v1", replicas=1, cpu="2")
    d["spec"]["template"]["spec"].update(COMPUTE)
    sim.apply(DEPLOYMENTS, d)
    (pod,) = pending(sim, "crunch")

    sim.advance(SCAN_INTERVAL_S)
    assert sim.nodes.groups()["compute"].desired == 1
    assert autoscaler_events(sim, pod)[0][1].endswith(f"{asg_name(CLUSTER, 'compute')} 0->1 (max: 2)}}]")
    sim.advance(SCALE_UP_BOOT_SECONDS)
    (running,) = sim.pods_of("crunch")
    node = sim.get(NODES, running["spec"]["nodeName"], namespace="")
    assert node["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "compute"


def test_a_pod_no_node_group_can_run_gets_not_trigger_scale_up_naming_each_groups_reason(sim: Sim) -> None:
    install_autoscaler(sim)
    sim.apply(DEPLOYMENTS, deployment("huge", "repo/huge:v1", replicas=1, cpu="8"))
    (pod,) = pending(sim, "huge")

    sim.advance(3 * SCAN_INTERVAL_S)

    assert autoscaler_events(sim, pod) == [  # once: the recorder would count the repeats of the same message
        (
            "NotTriggerScaleUp",
            (
                "pod didn't trigger scale-up: 1 Insufficient cpu, "
                "1 node(s) had untolerated taint {workload-class: compute-intensive}"
            ),
        )
    ]
    assert {name: g.desired for name, g in sim.nodes.groups().items()} == {"general": 1, "compute": 0}


def test_a_group_at_its_maximum_size_is_not_scaled(sim: Sim) -> None:
    sim.nodes.set_group("general", 1, "t3.medium", min_size=1, max_size=1)
    install_autoscaler(sim)
    sim.apply(DEPLOYMENTS, deployment("big", "repo/big:v1", replicas=2, cpu="1500m"))
    (pod,) = pending(sim, "big")

    sim.advance(SCAN_INTERVAL_S)

    ((reason, message),) = autoscaler_events(sim, pod)
    assert reason == "NotTriggerScaleUp"
    assert message == (
        "pod didn't trigger scale-up: 1 max node group size reached, "
        "1 node(s) had untolerated taint {workload-class: compute-intensive}"
    )


def test_pods_that_fit_on_a_booting_node_do_not_scale_the_group_again(sim: Sim) -> None:
    install_autoscaler(sim)
    sim.apply(DEPLOYMENTS, deployment("small", "repo/small:v1", replicas=2, cpu="1500m"))
    sim.advance(SCAN_INTERVAL_S)
    assert sim.nodes.groups()["general"].desired == 2
    sim.apply(DEPLOYMENTS, deployment("tiny", "repo/tiny:v1", replicas=1, cpu="200m"))
    sim.advance(SCAN_INTERVAL_S)
    assert sim.nodes.groups()["general"].desired == 2  # the booting node has room for it too


def test_the_add_on_rendered_for_another_cluster_discovers_no_node_group(sim: Sim) -> None:
    install_autoscaler(sim, cluster_name="someone-elses")
    sim.apply(DEPLOYMENTS, deployment("big", "repo/big:v1", replicas=2, cpu="1500m"))
    sim.advance(3 * SCAN_INTERVAL_S)
    (pod,) = pending(sim, "big")
    assert autoscaler_events(sim, pod) == []
