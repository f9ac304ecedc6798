"""Which nodes a pod may run on: taints and tolerations, ``nodeSelector`` and node affinity.

Shared by the scheduler, the DaemonSet controller and the taint eviction controller, with kube-scheduler's plugin
semantics (NodeUnschedulable, TaintToleration, NodeAffinity): a toleration with an empty ``effect`` matches every
effect, an empty ``key`` with ``Exists`` matches every taint, ``Equal`` (or no operator) compares values. A node
whose Ready condition is not True carries ``node.kubernetes.io/not-ready:NoSchedule`` and a cordoned node
``node.kubernetes.io/unschedulable:NoSchedule``, as the node lifecycle controller taints them.
"""

from __future__ import annotations

from collections.abc import Iterable

from local.cluster.nodes import node_ready
from local.cluster.objects import labels_of, name_of
from local.cluster.selectors import node_selector_matches, node_selector_term_matches
from local.cluster.store import Obj

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
FILTERED_EFFECTS = ("NoSchedule", "NoExecute")


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(tolerations: Iterable[Obj], taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def node_taints(node: Obj) -> list[Obj]:
    """``spec.taints`` plus the taints the node lifecycle controller keeps for NotReady and cordoned nodes."""
    spec = node.get("spec") or {}
    taints = [t for t in spec.get("taints") or [] if isinstance(t, dict)]
    keys = {(t.get("key"), t.get("effect")) for t in taints}
    if not node_ready(node) and (NOT_READY_TAINT, "NoSchedule") not in keys:
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    if spec.get("unschedulable") and (UNSCHEDULABLE_TAINT, "NoSchedule") not in keys:
        taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
    return taints


def untolerated_taint(node: Obj, tolerations: list[Obj], effects: tuple[str, ...] = FILTERED_EFFECTS) -> Obj | None:
    """The first taint of ``node`` with one of ``effects`` that no toleration tolerates (FindMatchingUntoleratedTaint).

    The unschedulable taint is NodeUnschedulable's business, not TaintToleration's: it is skipped here.
    """
    for taint in node_taints(node):
        if taint.get("key") == UNSCHEDULABLE_TAINT:
            continue
        if taint.get("effect") in effects and not tolerated(tolerations, taint):
            return taint
    return None


def taint_reason(taint: Obj) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"


def matches_node_affinity(pod_spec: Obj, node: Obj) -> bool:
    """NodeAffinity's filter: ``nodeSelector`` and ``requiredDuringSchedulingIgnoredDuringExecution`` both hold."""
    labels = labels_of(node)
    selector = pod_spec.get("nodeSelector") or {}
    if not all(labels.get(k) == v for k, v in selector.items()):
        return False
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    return node_selector_matches(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"), labels, name_of(node))


def preferred_affinity_weight(pod_spec: Obj, node: Obj) -> int:
    """NodeAffinity's score: the summed weights of the preferred terms ``node`` matches."""
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    labels, name = labels_of(node), name_of(node)
    return sum(
        int(term.get("weight") or 0)
        for term in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if node_selector_term_matches(term.get("preference") or {}, labels, name)
    )


def prefer_no_schedule_count(pod_spec: Obj, node: Obj) -> int:
    """TaintToleration's score input: the PreferNoSchedule taints the pod does not tolerate (fewer is better)."""
    tolerations = pod_spec.get("tolerations") or []
    return sum(1 for t in node_taints(node) if t.get("effect") == "PreferNoSchedule" and not tolerated(tolerations, t))


def filter_node(pod_spec: Obj, node: Obj) -> str | None:
    """The first filter plugin that rejects ``node`` (NodeUnschedulable, TaintToleration, NodeAffinity, in the
    default profile's order) as kube-scheduler words it; ``None`` when the node passes them."""
    tolerations = pod_spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not tolerated(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return "node(s) were unschedulable"
    taint = untolerated_taint(node, tolerations)
    if taint is not None:
        return taint_reason(taint)
    if not matches_node_affinity(pod_spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None
