"""The scheduler (kube-scheduler's default profile, reduced): binds pending pods to the least allocated node.

Filters on node readiness, ``spec.unschedulable``, ``nodeSelector`` and cpu/memory/pod-count requests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from local.cluster.controllers.base import Context, creation_key
from local.cluster.nodes import node_ready
from local.cluster.objects import (
    NODES,
    PODS,
    fmt_time,
    get_condition,
    labels_of,
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


def _node_filter(pod_spec: Obj, node: Obj) -> str | None:
    """The first filter plugin that rejects ``node`` for the pod, as its kube-scheduler reason; ``None`` if none."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    if not node_ready(node):
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    selector = pod_spec.get("nodeSelector") or {}
    if not all(labels_of(node).get(k) == v for k, v in selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


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
        fits: list[tuple[float, str]] = []
        for node in nodes:
            rejected = _node_filter(spec, node)
            if rejected is not None:
                reasons[rejected] += 1
                continue
            short, score = _resource_shortfalls(node, usage[name_of(node)], cpu, mem)
            if short:
                reasons.update(short)
                continue
            fits.append((score, name_of(node)))
        if fits:
            _, chosen = min(fits)
            usage[chosen].add(cpu, mem)
            self._bind(pod, chosen, now)
            return
        if nodes:
            detail = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
            message = f"0/{len(nodes)} nodes are available: {detail}."
        else:
            message = "no nodes available to schedule pods"
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
