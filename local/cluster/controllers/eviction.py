"""The taint eviction controller (pkg/controller/tainteviction): pods leave nodes with NoExecute taints.

A pod bound to a node with a ``NoExecute`` taint it does not tolerate is deleted at once; one it tolerates with
``tolerationSeconds`` is deleted that long after the taint's ``timeAdded`` (the shortest such toleration wins);
one whose matching tolerations set no ``tolerationSeconds`` stays.
"""

from __future__ import annotations

import math

from local.cluster.controllers.base import Context
from local.cluster.controllers.placement import node_taints, tolerates
from local.cluster.objects import NODES, PODS, is_deleting, name_of, namespace_of, parse_time, pod_terminal
from local.cluster.store import Obj

COMPONENT = "taint-eviction-controller"


def eviction_time(pod: Obj, no_execute: list[Obj], now: float) -> float | None:
    """When ``pod`` must go because of ``no_execute`` taints (getMinTolerationTime over the tolerations used);
    ``None`` when none of those tolerations sets ``tolerationSeconds`` (tolerated for good)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    used: list[Obj] = []
    for taint in no_execute:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return now
        used.extend(matching)
    seconds = [int(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    if min(seconds) <= 0:
        return now
    added = min(parse_time(t.get("timeAdded")) or now for t in no_execute)
    return added + min(seconds)


class TaintEviction:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def run(self, now: float) -> None:
        for pod, due in self._evictions(now):
            if due <= now:
                message = f"Marking for deletion Pod {namespace_of(pod)}/{name_of(pod)}"
                self.ctx.event(pod, "Pod", "TaintManagerEviction", message, component=COMPONENT)
                self.ctx.delete(PODS, pod)

    def next_due(self, now: float) -> float:
        """When the next pod tolerating a NoExecute taint for a while is due to go (``math.inf``: none)."""
        return min((due for _, due in self._evictions(now)), default=math.inf)

    def _evictions(self, now: float) -> list[tuple[Obj, float]]:
        """Pods on NoExecute-tainted nodes that must go, with when."""
        tainted: dict[str, list[Obj]] = {}
        for node in self.ctx.cache.objects(NODES):
            no_execute = [t for t in node_taints(node) if t.get("effect") == "NoExecute"]
            if no_execute:
                tainted[name_of(node)] = no_execute
        if not tainted:
            return []
        found: list[tuple[Obj, float]] = []
        for pod in self.ctx.cache.objects(PODS):
            taints = tainted.get(str((pod.get("spec") or {}).get("nodeName") or ""))
            if taints is None or pod_terminal(pod) or is_deleting(pod):
                continue
            due = eviction_time(pod, taints, now)
            if due is not None:
                found.append((pod, due))
        return found
