"""The Cluster Autoscaler (kubernetes/autoscaler ``cluster-autoscaler``, AWS provider), scale-up only.

It runs only while the vendored add-on runs (``manifests/addons/cluster-autoscaler``): a Running, Ready pod in
``kube-system`` whose container runs the ``registry.k8s.io/autoscaling/cluster-autoscaler`` image with
``--cloud-provider=aws`` and a ``--node-group-auto-discovery=asg:tag=...`` whose tags the node groups carry. EKS
tags every managed node group's Auto Scaling group ``k8s.io/cluster-autoscaler/enabled=true`` and
``k8s.io/cluster-autoscaler/<cluster name>=owned``, so the add-on rendered for another cluster discovers nothing.

Every scan interval (``--scan-interval``, 10 s) it takes the pods the scheduler marked ``Unschedulable``, leaves out
those that fit on nodes still booting (its "upcoming nodes"), and tries each remaining pod on a template node of
every node group (:meth:`NodePool.template`: the group's instance type, labels and taints, as CA reads a managed
node group from ``DescribeNodegroup``) with the scheduler's filters and the node's allocatable resources. A group
whose template fits is an option unless it is at its maximum size (``max node group size reached``). The
``least-waste`` expander (the add-on's ``--expander``) picks the option leaving the smallest share of the new nodes'
cpu and memory idle; its estimator bin-packs the pending pods that fit that group onto new nodes, first fit, up to the
group's maximum. The group is resized (new nodes appear ``NotReady``, become Ready after
:data:`SCALE_UP_BOOT_SECONDS`, then the scheduler binds), and every pod the new nodes take gets CA's Normal event
``TriggeredScaleUp``: ``pod triggered scale-up: [{<asg> <from>-><to> (max: <max>)}]``. In a loop without a scale-up,
each pod with no option gets ``NotTriggerScaleUp``: ``pod didn't trigger scale-up: <n> <reason>, ...``, one reason
per node group (the first filter that rejects its template, ``Insufficient cpu``, or the maximum size reached),
counted like CA's ``ReasonsMessage``.

Known deviations (listed in ``controllers/__init__.py``): no scale-down; one scale-up per loop and no
``--balance-similar-node-groups``; DaemonSet pods a new node would run are not counted against it; the pod's own
IAM permissions (autoscaling:SetDesiredCapacity through Pod Identity) are not checked; a ``NotTriggerScaleUp`` is
recorded when its message changes, not every loop (the event recorder would count repeats); reasons are sorted
(CA's order is a Go map's).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from dataclasses import dataclass

from local.cluster.controllers.base import Context, creation_key
from local.cluster.controllers.placement import filter_node
from local.cluster.nodes import NodeGroupState, NodePool
from local.cluster.objects import (
    PODS,
    get_condition,
    namespace_of,
    parse_quantity,
    pod_active,
    pod_requests,
    uid_of,
)
from local.cluster.store import Obj

COMPONENT = "cluster-autoscaler"
IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"
NAMESPACE = "kube-system"
SCAN_INTERVAL_S = 10.0
SCALE_UP_BOOT_SECONDS = 60.0
"""From SetDesiredCapacity to a Ready node: the instance launches, joins the cluster NotReady, then its CNI is up."""
MAX_SIZE_REACHED = "max node group size reached"
ENABLED_TAG = "k8s.io/cluster-autoscaler/enabled"


def asg_name(cluster: str, group: str) -> str:
    """The Auto Scaling group EKS makes for a managed node group: ``eks-<nodegroup>-<uuid>``."""
    digest = hashlib.sha256(f"{cluster}/{group}".encode()).digest()[:16]
    return f"eks-{group}-{uuid.UUID(bytes=digest)}"


@dataclass
class _Room:
    """What is left on one (template or upcoming) node."""

    cpu: float
    memory: float
    pods: float

    @classmethod
    def of(cls, node: Obj) -> _Room:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        return cls(
            parse_quantity(allocatable.get("cpu", 0)),
            parse_quantity(allocatable.get("memory", 0)),
            parse_quantity(allocatable.get("pods", 110)),
        )

    def shortfall(self, cpu: float, memory: float) -> str | None:
        """NodeResourcesFit's first reason the pod does not fit here; ``None`` when it does."""
        if self.pods < 1:
            return "Too many pods"
        if cpu > self.cpu + 1e-9:
            return "Insufficient cpu"
        if memory > self.memory:
            return "Insufficient memory"
        return None

    def take(self, cpu: float, memory: float) -> None:
        self.cpu, self.memory, self.pods = self.cpu - cpu, self.memory - memory, self.pods - 1


def _template_reason(pod: Obj, template: Obj) -> str | None:
    """Why a new node of this group could not run ``pod`` (the first failing filter); ``None`` when it could."""
    spec = pod.get("spec") or {}
    rejected = filter_node(spec, template)
    if rejected is not None:
        return rejected
    return _Room.of(template).shortfall(*pod_requests(spec))


def _discovers(args: list[str], cluster: str) -> bool:
    """Whether CA run with ``args`` finds this cluster's managed node groups (AWS provider, tag auto-discovery)."""
    if "--cloud-provider=aws" not in args:
        return False
    tags = {ENABLED_TAG: "true", f"k8s.io/cluster-autoscaler/{cluster}": "owned"}
    for arg in args:
        if arg.startswith("--node-group-auto-discovery=asg:tag="):
            wanted = [t.partition("=") for t in arg.split("asg:tag=", 1)[1].split(",") if t]
            return all(key in tags and (not sep or tags[key] == value) for key, sep, value in wanted)
    return False


class ClusterAutoscaler:
    """Scale-up of the node pool's groups for pods no node can run (see the module docstring)."""

    def __init__(self, ctx: Context, nodes: NodePool, cluster: str) -> None:
        self.ctx = ctx
        self.nodes = nodes
        self.cluster = cluster
        self._next_scan = 0.0
        self._last_pass: float | None = None
        self._told: dict[str, str] = {}  # pod uid -> the NotTriggerScaleUp message last recorded

    def installed(self) -> bool:
        """A Ready cluster-autoscaler pod of the AWS provider that discovers this cluster's node groups runs."""
        for pod in self.ctx.cache.objects(PODS):
            if namespace_of(pod) != NAMESPACE or (pod.get("status") or {}).get("phase") != "Running":
                continue
            ready = get_condition(pod.get("status"), "Ready")
            if ready is None or ready.get("status") != "True":
                continue
            for container in (pod.get("spec") or {}).get("containers") or []:
                image = str(container.get("image") or "")
                args = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
                if image.startswith(f"{IMAGE}:") and _discovers(args, self.cluster):
                    return True
        return False

    def next_due(self) -> float:
        """When its next loop could act: while it runs and a pod is unschedulable (another loop finds nothing to do;
        :meth:`catch_up` keeps the phase such loops would have set)."""
        if not any(_unschedulable(p) for p in self.ctx.cache.objects(PODS)) or not self.installed():
            return math.inf
        return self._next_scan

    def catch_up(self, now: float, tick: float) -> None:
        """Before a pass at ``now``: the loops that ran at the ticks the clock skipped since the last pass (every
        ``tick`` seconds) found no pod to help (else :meth:`next_due` would have stopped the clock there); all that
        is left of them is when the next one runs, and the pods no longer pending forgotten."""
        last, self._last_pass = self._last_pass, now
        if last is None or now - last <= tick:
            return
        while self._next_scan < now:
            at = last + max(1, math.ceil((self._next_scan - last) / tick)) * tick
            if at >= now:
                return
            self._next_scan = at + SCAN_INTERVAL_S
            if self.installed():
                self._told.clear()

    def run(self, now: float) -> None:
        if now < self._next_scan:
            return
        self._next_scan = now + SCAN_INTERVAL_S  # its loop; whether it runs at all is looked at as often
        if not self.installed():
            return
        pending = sorted((p for p in self.ctx.cache.objects(PODS) if _unschedulable(p)), key=creation_key)
        self._told = {uid: m for uid, m in self._told.items() if uid in {uid_of(p) for p in pending}}
        groups = self.nodes.groups()
        if not pending or not groups:
            return
        templates = {name: self.nodes.template(name) for name in groups}
        pending = _beyond_upcoming(pending, groups, templates)
        options: dict[str, list[Obj]] = {}
        reasons: dict[str, Counter[str]] = {}
        for pod in pending:
            reasons[uid_of(pod)] = Counter()
            for name, group in sorted(groups.items()):
                reason = _template_reason(pod, templates[name])
                if reason is None and group.desired >= group.max_size:
                    reason = MAX_SIZE_REACHED
                if reason is None:
                    options.setdefault(name, []).append(pod)
                else:
                    reasons[uid_of(pod)][reason] += 1
        if options and self._scale_up(options, groups, templates):
            return
        for pod in pending:
            self._not_triggered(pod, reasons[uid_of(pod)])

    def _scale_up(
        self, options: dict[str, list[Obj]], groups: dict[str, NodeGroupState], templates: dict[str, Obj]
    ) -> bool:
        """Resize the least-waste option; ``True`` when a group grew."""
        plans = []
        for name, pods in options.items():
            group = groups[name]
            nodes, helped, waste = _estimate(pods, templates[name], group.max_size - group.desired)
            if nodes:
                plans.append((waste, name, nodes, helped))
        if not plans:
            return False
        _, name, nodes, helped = min(plans)
        group = groups[name]
        target = group.desired + nodes
        self.nodes.set_group(name, target, group.instance_type, zone=group.zone, boot_seconds=SCALE_UP_BOOT_SECONDS)
        info = f"[{{{asg_name(self.cluster, name)} {group.desired}->{target} (max: {group.max_size})}}]"
        for pod in helped:
            self.ctx.event(pod, "Pod", "TriggeredScaleUp", f"pod triggered scale-up: {info}", component=COMPONENT)
            self._told.pop(uid_of(pod), None)
        return True

    def _not_triggered(self, pod: Obj, reasons: Counter[str]) -> None:
        message = "pod didn't trigger scale-up: " + ", ".join(
            f"{count} {reason}" for reason, count in sorted(reasons.items())
        )
        if self._told.get(uid_of(pod)) == message:
            return
        self._told[uid_of(pod)] = message
        self.ctx.event(pod, "Pod", "NotTriggerScaleUp", message, component=COMPONENT)


def _unschedulable(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if (
        spec.get("nodeName")
        or not pod_active(pod)
        or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
    ):
        return False
    scheduled = get_condition(pod.get("status"), "PodScheduled")
    return scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"


def _beyond_upcoming(pending: list[Obj], groups: dict[str, NodeGroupState], templates: dict[str, Obj]) -> list[Obj]:
    """The pods that will not fit on nodes still booting (CA waits for those instead of adding more)."""
    upcoming = [(templates[name], _Room.of(templates[name])) for name, g in sorted(groups.items()) for _ in g.booting]
    rest = []
    for pod in pending:
        cpu, memory = pod_requests(pod.get("spec") or {})
        room = next(
            (
                r
                for template, r in upcoming
                if filter_node(pod.get("spec") or {}, template) is None and r.shortfall(cpu, memory) is None
            ),
            None,
        )
        if room is None:
            rest.append(pod)
        else:
            room.take(cpu, memory)
    return rest


def _estimate(pods: list[Obj], template: Obj, headroom: int) -> tuple[int, list[Obj], float]:
    """CA's binpacking estimator: new nodes (at most ``headroom``) for ``pods``, first fit; the pods placed and the
    least-waste score (the idle share of the new nodes' cpu and memory, averaged)."""
    rooms: list[_Room] = []
    helped: list[Obj] = []
    for pod in pods:
        cpu, memory = pod_requests(pod.get("spec") or {})
        room = next((r for r in rooms if r.shortfall(cpu, memory) is None), None)
        if room is None and len(rooms) < headroom:
            room = _Room.of(template)
            rooms.append(room)
        if room is not None:
            room.take(cpu, memory)
            helped.append(pod)
    if not rooms:
        return 0, [], 1.0
    total = _Room.of(template)
    idle_cpu = sum(r.cpu for r in rooms) / (total.cpu * len(rooms)) if total.cpu else 1.0
    idle_memory = sum(r.memory for r in rooms) / (total.memory * len(rooms)) if total.memory else 1.0
    return len(rooms), helped, (idle_cpu + idle_memory) / 2
