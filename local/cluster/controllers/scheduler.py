"""The scheduler (kube-scheduler's default profile, reduced): binds each pending pod to the best feasible node.

Filters, in the default profile's order: NodeUnschedulable (cordoned nodes, unless tolerated), TaintToleration
(NoSchedule/NoExecute taints, including the not-ready taint of booting nodes), NodeAffinity (``nodeSelector`` and
required node affinity) and NodeResourcesFit (cpu, memory, pod count). Among the nodes that pass, it prefers fewer
untolerated PreferNoSchedule taints, then a higher preferred node affinity weight, then the least allocated node.
A pod that fits nowhere gets ``PodScheduled=False`` (reason ``Unschedulable``) and a ``FailedScheduling`` event with
kube-scheduler's message, preemption diagnosis included (there is no preemption: resource shortfalls always read
"No preemption victims found for incoming pod").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from local.cluster.controllers.base import Context, creation_key
from local.cluster.controllers.placement import filter_node, prefer_no_schedule_count, preferred_affinity_weight
from local.cluster.objects import (
    NODES,
    PODS,
    fmt_time,
    get_condition,
    name_of,
    namespace_of,
    parse_quantity,
    pod_active,
    pod_requests,
    pod_terminal,
)
from local.cluster.store import Obj

SCHEDULER_NAME = "default-scheduler"


@dataclass
class _Usage:
    cpu: float = 0.0
    memory: float = 0.0
    pods: int = 0

    def add(self, cpu: float, memory: float) -> None:
        self.cpu += cpu
        self.memory += memory
        self.pods += 1


def _resource_shortfalls(node: Obj, used: _Usage, cpu: float, memory: float) -> tuple[list[str], float]:
    """NodeResourcesFit: the reasons the pod does not fit, and (when it does) the LeastAllocated-like score."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    cap_cpu = parse_quantity(allocatable.get("cpu", 0))
    cap_mem = parse_quantity(allocatable.get("memory", 0))
    cap_pods = parse_quantity(allocatable.get("pods", 110))
    short = []
    if used.pods + 1 > cap_pods:
        short.append("Too many pods")
    if used.cpu + cpu > cap_cpu + 1e-9:
        short.append("Insufficient cpu")
    if used.memory + memory > cap_mem:
        short.append("Insufficient memory")
    score = max((used.cpu + cpu) / cap_cpu if cap_cpu else 1.0, (used.memory + memory) / cap_mem if cap_mem else 1.0)
    return short, score


def _histogram(reasons: Counter[str]) -> str:
    """FitError's ``sortReasonsHistogram``: "<count> <reason>" strings sorted, joined by commas."""
    return ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))


def unschedulable_message(total: int, reasons: Counter[str], unresolvable: int, resolvable: int) -> str:
    """``FitError.Error()`` with the DefaultPreemption PostFilter's diagnosis."""
    if total == 0:
        return "no nodes available to schedule pods"
    preemption: Counter[str] = Counter()
    if unresolvable:
        preemption["Preemption is not helpful for scheduling"] = unresolvable
    if resolvable:
        preemption["No preemption victims found for incoming pod"] = resolvable
    return (
        f"0/{total} nodes are available: {_histogram(reasons)}. "
        f"preemption: 0/{total} nodes are available: {_histogram(preemption)}."
    )


class Scheduler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def run(self, now: float) -> None:
        pending = sorted(
            (
                p
                for p in self.ctx.cache.objects(PODS)
                if not (p.get("spec") or {}).get("nodeName")
                and pod_active(p)
                and (p.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            ),
            key=creation_key,
        )
        if not pending:
            return
        nodes = sorted(self.ctx.cache.objects(NODES), key=name_of)
        usage = {name_of(n): _Usage() for n in nodes}
        for pod in self.ctx.cache.objects(PODS):
            node = (pod.get("spec") or {}).get("nodeName")
            if node in usage and not pod_terminal(pod):
                usage[node].add(*pod_requests(pod.get("spec") or {}))
        for pod in pending:
            self._schedule_one(pod, nodes, usage, now)

    def _schedule_one(self, pod: Obj, nodes: list[Obj], usage: dict[str, _Usage], now: float) -> None:
        spec = pod.get("spec") or {}
        cpu, mem = pod_requests(spec)
        reasons: Counter[str] = Counter()
        unresolvable = 0
        fits: list[tuple[int, int, float, str]] = []
        for node in nodes:
            rejected = filter_node(spec, node)
            if rejected is not None:
                reasons[rejected] += 1
                unresolvable += 1
                continue
            short, score = _resource_shortfalls(node, usage[name_of(node)], cpu, mem)
            if short:
                reasons.update(short)
                continue
            rank = (prefer_no_schedule_count(spec, node), -preferred_affinity_weight(spec, node), score, name_of(node))
            fits.append(rank)
        if fits:
            chosen = min(fits)[-1]
            usage[chosen].add(cpu, mem)
            self._bind(pod, chosen, now)
            return
        message = unschedulable_message(len(nodes), reasons, unresolvable, len(nodes) - unresolvable)
        self._mark_unschedulable(pod, message, now)

    def _bind(self, pod: Obj, node: str, now: float) -> None:
        stamp = fmt_time(now)

        def mutate(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node
            status = obj.setdefault("status", {})
            status["conditions"] = [
                *(c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"),
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
            ]

        if self.ctx.update(PODS, pod, mutate) is not None:
            message = f"Successfully assigned {namespace_of(pod)}/{name_of(pod)} to {node}"
            self.ctx.event(pod, "Pod", "Scheduled", message, component=SCHEDULER_NAME)

    def _mark_unschedulable(self, pod: Obj, message: str, now: float) -> None:
        current = get_condition(pod.get("status"), "PodScheduled")
        if current is not None and current.get("message") == message and current.get("status") == "False":
            return
        was_false = current is not None and current.get("status") == "False"
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": (current or {}).get("lastTransitionTime") if was_false else fmt_time(now),
            "reason": "Unschedulable",
            "message": message,
        }

        def mutate(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status["phase"] = "Pending"
            status["conditions"] = [
                *(c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"),
                cond,
            ]

        if self.ctx.update(PODS, pod, mutate) is not None:
            self.ctx.event(pod, "Pod", "FailedScheduling", message, warning=True, component=SCHEDULER_NAME)
