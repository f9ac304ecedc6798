"""The DaemonSet controller (pkg/controller/daemon): one pod per eligible node, rolling updates.

Pods are bound directly (``spec.nodeName``) to every Ready, uncordoned node that passes the pod template's
``nodeSelector``, required node affinity and taints (with the tolerations the DaemonSet controller adds to its pods).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from local.cluster.controllers.base import Context, creation_key
from local.cluster.controllers.placement import matches_node_affinity, untolerated_taint
from local.cluster.nodes import node_ready
from local.cluster.objects import (
    CONTROLLER_REVISION_HASH,
    DAEMONSETS,
    NODES,
    PODS,
    compute_hash,
    condition_true,
    generation_of,
    int_or_percent,
    is_deleting,
    labels_of,
    name_of,
    namespace_of,
    omit_zero,
    pod_active,
    pod_available,
    uid_of,
)
from local.cluster.store import Obj

# daemon.AddOrUpdateDaemonPodTolerations: what every DaemonSet pod tolerates.
DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def daemon_pod_spec(template_spec: Obj) -> Obj:
    """The template's pod spec with the DaemonSet controller's tolerations added (those it lacks)."""
    spec = copy.deepcopy(template_spec)
    tolerations = spec.setdefault("tolerations", [])
    for toleration in DAEMON_TOLERATIONS:
        if not any(t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"] for t in tolerations):
            tolerations.append(dict(toleration))
    return spec


def should_run(pod_spec: Obj, node: Obj) -> bool:
    """daemon.NodeShouldRunDaemonPod, plus the emulator's Ready and uncordoned requirement."""
    return (
        node_ready(node)
        and not (node.get("spec") or {}).get("unschedulable")
        and matches_node_affinity(pod_spec, node)
        and untolerated_taint(node, pod_spec.get("tolerations") or []) is None
    )


@dataclass
class _Placement:
    eligible: list[str]
    by_node: dict[str, list[Obj]] = field(default_factory=dict)
    misscheduled: int = 0


class DaemonSetController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, ds: Obj, now: float) -> None:
        if is_deleting(ds):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        pod_hash = compute_hash(template, collisions)
        self.ctx.ensure_revision(ds, "DaemonSet", f"{name_of(ds)}-{pod_hash}", template, now)
        placement = self._place(ds, template)
        self._fill(ds, template, pod_hash, placement, now)
        min_ready = int(spec.get("minReadySeconds") or 0)
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            self._roll(strategy, pod_hash, placement, min_ready, now)
        self._write_status(ds, pod_hash, collisions, placement, min_ready=min_ready, now=now)

    def _place(self, ds: Obj, template: Obj) -> _Placement:
        """The eligible nodes, and the active pods by node (deleting those on Ready nodes no longer eligible)."""
        pod_spec = daemon_pod_spec(template.get("spec") or {})
        nodes = {name_of(n): n for n in self.ctx.cache.objects(NODES)}
        placement = _Placement(eligible=sorted(name for name, n in nodes.items() if should_run(pod_spec, n)))
        for pod in self.ctx.cache.owned(uid_of(ds), PODS):
            if not pod_active(pod):
                continue
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            if node not in placement.eligible and node in nodes and node_ready(nodes[node]):
                self.ctx.delete(PODS, pod)
                placement.misscheduled += 1
                continue
            placement.by_node.setdefault(node, []).append(pod)
        return placement

    def _fill(self, ds: Obj, template: Obj, pod_hash: str, placement: _Placement, now: float) -> None:
        """Exactly one pod on every eligible node."""
        for node in placement.eligible:
            pods = sorted(placement.by_node.get(node, []), key=creation_key)
            for extra in pods[1:]:
                self.ctx.delete(PODS, extra)
            if pods:
                placement.by_node[node] = pods[:1]
                continue
            pod_template = {**template, "spec": {**daemon_pod_spec(template.get("spec") or {}), "nodeName": node}}
            labels = {CONTROLLER_REVISION_HASH: pod_hash, "pod-template-generation": str(generation_of(ds))}
            name = self.ctx.unique_pod_name(namespace_of(ds), name_of(ds))
            pod = self.ctx.new_pod(ds, "DaemonSet", pod_template, name=name, extra_labels=labels, now=now)
            placement.by_node[node] = [pod]

    def _roll(self, strategy: Obj, pod_hash: str, placement: _Placement, min_ready: int, now: float) -> None:
        eligible, by_node = placement.eligible, placement.by_node
        max_unavailable = int_or_percent(
            (strategy.get("rollingUpdate") or {}).get("maxUnavailable"), len(eligible), round_up=True, default="1"
        )
        max_unavailable = max(max_unavailable, 1)
        unavailable = sum(
            1 for node in eligible if not any(pod_available(p, min_ready, now) for p in by_node.get(node, []))
        )
        for node in eligible:
            old = [p for p in by_node.get(node, []) if labels_of(p).get(CONTROLLER_REVISION_HASH) != pod_hash]
            if not old:
                continue
            if not pod_available(old[0], min_ready, now):
                self.ctx.delete(PODS, old[0])  # an unavailable old pod costs no availability to replace
                by_node[node] = []
            elif unavailable < max_unavailable:
                self.ctx.delete(PODS, old[0])
                by_node[node] = []
                unavailable += 1

    def _write_status(
        self, ds: Obj, pod_hash: str, collisions: int, placement: _Placement, *, min_ready: int, now: float
    ) -> None:
        eligible, by_node = placement.eligible, placement.by_node
        scheduled = [node for node in eligible if by_node.get(node)]
        pods_on_eligible = [by_node[node][0] for node in scheduled]
        available = sum(1 for p in pods_on_eligible if pod_available(p, min_ready, now))
        status: Obj = {
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": placement.misscheduled,
            "desiredNumberScheduled": len(eligible),
            "numberReady": sum(1 for p in pods_on_eligible if condition_true(p, "Ready")),
            "observedGeneration": generation_of(ds),
            "updatedNumberScheduled": sum(
                1 for p in pods_on_eligible if labels_of(p).get(CONTROLLER_REVISION_HASH) == pod_hash
            ),
            "numberAvailable": available,
            "numberUnavailable": len(eligible) - available,
        }
        if collisions:
            status["collisionCount"] = collisions
        omit_zero(status, ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"))
        self.ctx.set_status(DAEMONSETS, ds, status)
