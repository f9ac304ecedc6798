"""Scheduling fidelity: node group labels and taints as EKS applies them, tolerations, nodeSelector and node affinity,
NoExecute eviction, and kube-scheduler's FailedScheduling wording when a pod fits no node."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from local.cluster.nodes import InvalidNodegroupConfigError
from local.cluster.objects import DAEMONSETS, DEPLOYMENTS, EVENTS, NODES, get_condition
from local.cluster.store import Obj
from local.cluster.wire import Request

from .conftest import FIELD_MANAGER, Sim, _bearer, deployment

pytestmark = pytest.mark.unit

COMPUTE_TAINT = {"key": "workload-class", "value": "compute-intensive", "effect": "NO_SCHEDULE"}
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def workload(name: str, replicas: int = 1, *, cpu: str = "100m", **pod_spec: Any) -> Obj:
    d = deployment(name, f"repo/{name}:v1", replicas=replicas, cpu=cpu)
    d["spec"]["template"]["spec"].update(copy.deepcopy(pod_spec))
    return d


def placed_groups(sim: Sim, name: str) -> list[str | None]:
    """The node group of each pod of deployment ``name`` (``None`` while it is pending)."""
    groups = {
        n["metadata"]["name"]: n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] for n in sim.store.list(NODES)
    }
    return sorted((groups.get(p["spec"].get("nodeName", "")) for p in sim.pods_of(name)), key=str)


def scheduled_condition(sim: Sim, name: str) -> Obj:
    [pod] = sim.pods_of(name)
    cond = get_condition(pod["status"], "PodScheduled")
    assert cond is not None
    return cond


def submit(sim: Sim, obj: Obj) -> tuple[int, Obj]:
    """Server-side apply through the API server, returning (status, body) whatever the outcome."""
    response = sim.cluster.api.handle(
        Request(
            method="PATCH",
            path=f"/apis/apps/v1/namespaces/default/deployments/{obj['metadata']['name']}",
            query={"fieldManager": [FIELD_MANAGER], "force": ["true"]},
            headers={"Authorization": _bearer(), "Content-Type": "application/apply-patch+yaml"},
            body=json.dumps(obj).encode(),
        )
    )
    body: Obj = json.loads(response.body)
    return response.status, body


@pytest.fixture
def groups() -> Sim:
    """Two untainted general nodes and one compute-intensive node tainted as the eks stack taints it."""
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 2, "t3.medium", boot_seconds=0, labels={"workload-class": "general"})
    sim.nodes.set_group(
        "compute",
        1,
        "c5.xlarge",
        boot_seconds=0,
        labels={"workload-class": "compute-intensive"},
        taints=[COMPUTE_TAINT],
    )
    return sim


# --- node groups ------------------------------------------------------------------------------------------------


def test_node_group_labels_taints_and_capacity_type_reach_every_node_as_eks_applies_them() -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group(
        "spot",
        2,
        "t3.large",
        boot_seconds=0,
        labels={"workload-class": "spot"},
        taints=[{"key": "capacity-type", "value": "spot", "effect": "NO_SCHEDULE"}],
        capacity_type="SPOT",
    )

    nodes = sim.store.list(NODES)
    assert len(nodes) == 2
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["workload-class"] == "spot"
        assert labels["eks.amazonaws.com/capacityType"] == "SPOT"
        assert labels["eks.amazonaws.com/nodegroup"] == "spot"
        assert node["spec"]["taints"] == [{"key": "capacity-type", "value": "spot", "effect": "NoSchedule"}]


def test_updating_a_groups_labels_and_taints_changes_its_existing_nodes_in_place() -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 1, boot_seconds=0, labels={"team": "a"}, taints=[COMPUTE_TAINT])
    [before] = sim.store.list(NODES)

    sim.nodes.set_group("general", 1, labels={"tier": "b"}, taints=[])

    [after] = sim.store.list(NODES)
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert after["metadata"]["labels"]["tier"] == "b"
    assert "team" not in after["metadata"]["labels"]
    assert "taints" not in after["spec"]
    sim.nodes.set_group("general", 1)  # a resize alone keeps the configuration
    assert sim.store.list(NODES)[0]["metadata"]["labels"]["tier"] == "b"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}, "taints[0].effect"),
        ({"taints": [{"key": "", "effect": "NO_SCHEDULE"}]}, "taints[0]"),
        ({"labels": {"k": "x" * 64}}, "labels"),
        ({"capacity_type": "RESERVED"}, "capacityType"),
    ],
)
def test_invalid_node_group_configuration_is_refused_naming_the_field_and_nothing_changes(
    kwargs: dict[str, Any], field: str
) -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 1, boot_seconds=0)
    before = sim.store.list(NODES)

    with pytest.raises(InvalidNodegroupConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        sim.nodes.set_group("general", 3, **kwargs)

    assert sim.store.list(NODES) == before


def test_booting_nodes_carry_the_not_ready_taint_until_they_are_ready() -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 1, boot_seconds=30)
    assert sim.store.list(NODES)[0]["spec"]["taints"] == [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    ]

    sim.advance(31)

    assert "taints" not in sim.store.list(NODES)[0]["spec"]


# --- taints and tolerations -------------------------------------------------------------------------------------


def test_pods_without_a_toleration_stay_off_the_tainted_group(groups: Sim) -> None:
    groups.apply(DEPLOYMENTS, workload("api", replicas=4))
    assert placed_groups(groups, "api") == ["general"] * 4


def test_a_pod_that_fits_no_node_is_unschedulable_with_kube_schedulers_message_and_event() -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("compute", 3, "c5.xlarge", boot_seconds=0, taints=[COMPUTE_TAINT])

    sim.apply(DEPLOYMENTS, workload("api"))

    expected = (
        "0/3 nodes are available: 3 node(s) had untolerated taint {workload-class: compute-intensive}. "
        f"preemption: 0/3 nodes are available: 3 {NOT_HELPFUL}."
    )
    cond = scheduled_condition(sim, "api")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", expected)
    [pod] = sim.pods_of("api")
    assert pod["status"]["phase"] == "Pending"
    events = [e for e in sim.store.list(EVENTS, "default") if e["reason"] == "FailedScheduling"]
    assert [(e["type"], e["message"], e["source"]["component"]) for e in events] == [
        ("Warning", expected, "default-scheduler")
    ]
    assert events[0]["involvedObject"]["name"] == pod["metadata"]["name"]


def test_reasons_are_counted_and_sorted_with_the_preemption_diagnosis(groups: Sim) -> None:
    groups.apply(DEPLOYMENTS, workload("big", cpu="1500m", replicas=2))  # fills both general nodes
    groups.apply(DEPLOYMENTS, workload("api", cpu="1"))

    assert scheduled_condition(groups, "api")["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {workload-class: compute-intensive}, "
        f"2 Insufficient cpu. preemption: 0/3 nodes are available: 1 {NOT_HELPFUL}, 2 {NO_VICTIMS}."
    )


@pytest.mark.parametrize(
    ("toleration", "lands"),
    [
        ({"key": "workload-class", "operator": "Equal", "value": "compute-intensive", "effect": "NoSchedule"}, True),
        ({"key": "workload-class", "value": "compute-intensive"}, True),  # no operator means Equal, any effect
        ({"key": "workload-class", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # empty key with Exists tolerates every taint
        ({"key": "workload-class", "operator": "Equal", "value": "memory-optimized"}, False),
        ({"key": "workload-class", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerations_match_taints_by_key_operator_value_and_effect(toleration: Obj, lands: bool) -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("compute", 1, "c5.xlarge", boot_seconds=0, taints=[COMPUTE_TAINT])

    sim.apply(DEPLOYMENTS, workload("api", tolerations=[toleration]))

    assert placed_groups(sim, "api") == (["compute"] if lands else [None])


def test_prefer_no_schedule_is_avoided_when_another_node_fits_and_used_when_none_does() -> None:
    sim = Sim(nodes=0)
    soft = {"key": "spot", "value": "true", "effect": "PREFER_NO_SCHEDULE"}
    sim.nodes.set_group("soft", 2, "t3.xlarge", boot_seconds=0, taints=[soft])  # emptier, but softly tainted
    sim.nodes.set_group("plain", 1, "t3.medium", boot_seconds=0)

    sim.apply(DEPLOYMENTS, workload("api", replicas=1, cpu="500m"))
    assert placed_groups(sim, "api") == ["plain"]

    sim.apply(DEPLOYMENTS, workload("big", replicas=1, cpu="1800m"))  # does not fit the remaining plain capacity
    assert placed_groups(sim, "big") == ["soft"]


def test_a_no_execute_taint_evicts_pods_that_do_not_tolerate_it_and_waits_toleration_seconds() -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 1, boot_seconds=0)
    sim.apply(DEPLOYMENTS, workload("plain"))
    patient = {"key": "maintenance", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
    sim.apply(DEPLOYMENTS, workload("patient", tolerations=[patient]))
    sim.advance(5)
    [plain_before] = sim.pods_of("plain")
    [patient_before] = sim.pods_of("patient")

    sim.nodes.set_group("general", 1, taints=[{"key": "maintenance", "value": "now", "effect": "NO_EXECUTE"}])

    [plain_after] = sim.pods_of("plain")
    assert plain_after["metadata"]["uid"] != plain_before["metadata"]["uid"]  # evicted and replaced...
    assert "nodeName" not in plain_after["spec"]  # ...by a pod that cannot land either
    evictions = [e for e in sim.store.list(EVENTS, "default") if e["reason"] == "TaintManagerEviction"]
    assert [e["message"] for e in evictions] == [f"Marking for deletion Pod default/{plain_before['metadata']['name']}"]
    assert sim.pods_of("patient")[0]["metadata"]["uid"] == patient_before["metadata"]["uid"]

    sim.advance(61)

    assert sim.pods_of("patient")[0]["metadata"]["uid"] != patient_before["metadata"]["uid"]


def test_a_cordoned_node_takes_only_pods_tolerating_the_unschedulable_taint() -> None:
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 1, boot_seconds=0)
    [node] = sim.store.list(NODES)
    node["spec"]["unschedulable"] = True
    sim.store.put(NODES, node)

    sim.apply(DEPLOYMENTS, workload("api"))
    unschedulable = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    sim.apply(DEPLOYMENTS, workload("drainer", tolerations=[unschedulable]))

    assert scheduled_condition(sim, "api")["message"] == (
        f"0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 {NOT_HELPFUL}."
    )
    assert placed_groups(sim, "drainer") == ["general"]


# --- nodeSelector and node affinity -----------------------------------------------------------------------------


def test_node_selector_on_a_group_label_with_its_toleration_lands_on_that_group_only(groups: Sim) -> None:
    toleration = {"key": "workload-class", "operator": "Equal", "value": "compute-intensive", "effect": "NoSchedule"}
    groups.apply(
        DEPLOYMENTS,
        workload("render", replicas=2, nodeSelector={"workload-class": "compute-intensive"}, tolerations=[toleration]),
    )
    assert placed_groups(groups, "render") == ["compute", "compute"]


def _required(*expressions: Obj, fields: list[Obj] | None = None) -> Obj:
    term: Obj = {"matchExpressions": list(expressions)}
    if fields:
        term["matchFields"] = fields
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


@pytest.mark.parametrize(
    ("expression", "groups_expected"),
    [
        ({"key": "workload-class", "operator": "In", "values": ["general", "spot"]}, ["general"]),
        ({"key": "workload-class", "operator": "NotIn", "values": ["general"]}, [None]),  # compute is tainted
        ({"key": "eks.amazonaws.com/nodegroup", "operator": "Exists"}, ["general"]),
        ({"key": "workload-class", "operator": "DoesNotExist"}, [None]),
        ({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]}, [None]),
    ],
)
def test_required_node_affinity_operators(groups: Sim, expression: Obj, groups_expected: list[str | None]) -> None:
    groups.apply(DEPLOYMENTS, workload("api", affinity=_required(expression)))

    assert placed_groups(groups, "api") == groups_expected
    if groups_expected == [None]:
        message = scheduled_condition(groups, "api")["message"]
        assert "node(s) didn't match Pod's node affinity/selector" in message


def test_required_terms_are_ored_and_match_fields_select_by_node_name(groups: Sim) -> None:
    target = sorted(n["metadata"]["name"] for n in groups.store.list(NODES))[0]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "workload-class", "operator": "In", "values": ["nowhere"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [target]}]},
                ]
            }
        }
    }
    toleration = {"operator": "Exists"}
    groups.apply(DEPLOYMENTS, workload("pinned", replicas=2, affinity=affinity, tolerations=[toleration]))

    assert {p["spec"]["nodeName"] for p in groups.pods_of("pinned")} == {target}


def test_preferred_node_affinity_weights_steer_the_choice(groups: Sim) -> None:
    toleration = {"operator": "Exists"}
    prefer_compute = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [
                            {"key": "workload-class", "operator": "In", "values": ["compute-intensive"]}
                        ]
                    },
                }
            ]
        }
    }
    groups.apply(DEPLOYMENTS, workload("api", affinity=prefer_compute, tolerations=[toleration]))
    assert placed_groups(groups, "api") == ["compute"]


# --- DaemonSets -------------------------------------------------------------------------------------------------


def test_daemonsets_skip_tainted_nodes_unless_their_pods_tolerate_the_taint(groups: Sim) -> None:
    def daemonset(name: str, **pod_spec: Any) -> Obj:
        labels = {"app": name}
        return {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "agent", "image": f"repo/{name}:v1"}], **pod_spec},
                },
            },
        }

    groups.apply(DAEMONSETS, daemonset("logs"))
    groups.apply(DAEMONSETS, daemonset("cni", tolerations=[{"operator": "Exists"}]))

    assert groups.get(DAEMONSETS, "logs")["status"]["desiredNumberScheduled"] == 2
    assert groups.get(DAEMONSETS, "cni")["status"]["desiredNumberScheduled"] == 3


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_spec", "field", "detail"),
    [
        ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "tolerations[0].operator", "operator must be Exists"),
        (
            {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
            "tolerations[0].operator",
            "value must be empty",
        ),
        ({"tolerations": [{"key": "k", "operator": "Like"}]}, "tolerations[0].operator", "Unsupported value"),
        (
            {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
            "tolerations[0].effect",
            "NoExecute",
        ),
        ({"tolerations": [{"key": "k", "effect": "Never"}]}, "tolerations[0].effect", "Unsupported value"),
        (
            {"affinity": _required({"key": "k", "operator": "In"})},
            "nodeSelectorTerms[0].matchExpressions[0].values",
            "must be specified",
        ),
        (
            {"affinity": _required({"key": "k", "operator": "Near", "values": ["a"]})},
            "nodeSelectorTerms[0].matchExpressions[0].operator",
            "Unsupported value",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
                }
            },
            "nodeSelectorTerms",
            "at least one node selector term",
        ),
    ],
)
def test_invalid_tolerations_and_node_affinity_are_refused_naming_the_field(
    groups: Sim, pod_spec: Obj, field: str, detail: str
) -> None:
    status, body = submit(groups, workload("api", **pod_spec))

    assert status == 422, body
    causes = body["details"]["causes"]
    assert any(c["field"].endswith(field) and detail in c["message"] for c in causes), causes
    assert groups.store.get(DEPLOYMENTS, "default", "api") is None


# --- the eks stack's node groups ---------------------------------------------------------------------------------


def test_the_eks_stacks_node_groups_keep_untolerating_pods_on_the_general_group() -> None:
    from local.offhours import COMPUTE, GENERAL, SPOT, nodegroups  # noqa: PLC0415 - imports the AWS harness

    specs = nodegroups()
    assert specs[GENERAL].labels == {"workload-class": "general"}
    assert specs[SPOT].capacity_type == "SPOT"
    assert specs[SPOT].taints == ({"key": "capacity-type", "value": "spot", "effect": "NO_SCHEDULE"},)
    assert specs[COMPUTE].taints == (COMPUTE_TAINT,)
    sim = Sim(nodes=0)
    for name, spec in specs.items():
        desired = max(spec.desired, 1)
        sim.nodes.set_group(
            name,
            desired,
            spec.instance_type,
            boot_seconds=0,
            labels=spec.labels,
            taints=spec.taints,
            capacity_type=spec.capacity_type,
        )

    sim.apply(DEPLOYMENTS, workload("api", replicas=3))

    assert placed_groups(sim, "api") == [GENERAL] * 3
