"""The garbage collector (pkg/controller/garbagecollector, synchronous) and the event TTL.

Dependents whose controller owner is gone are deleted (what the garbage collector would do in the background);
pods bound to a node that no longer exists go too (the pod GC); events expire after an hour of simulated time.
"""

from __future__ import annotations

from local.cluster.controllers.base import Context
from local.cluster.objects import (
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    NODES,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    is_deleting,
    meta,
    name_of,
    uid_of,
)
from local.cluster.store import GroupResource, Obj

OWNER_KINDS = {
    "Deployment": DEPLOYMENTS,
    "ReplicaSet": REPLICASETS,
    "StatefulSet": STATEFULSETS,
    "DaemonSet": DAEMONSETS,
    "Job": JOBS,
}


def orphaned(obj: Obj, owners: dict[GroupResource, set[str]]) -> bool:
    """A controller owner reference names a kind we collect for, and no object of that kind has its uid."""
    for ref in meta(obj).get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        gr = OWNER_KINDS.get(str(ref.get("kind")))
        if gr is not None and ref.get("uid") not in owners[gr]:
            return True
    return False


class GarbageCollector:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def run(self, now: float) -> None:
        cache = self.ctx.cache
        owners = {gr: {uid_of(o) for o in cache.objects(gr)} for gr in OWNER_KINDS.values()}
        nodes = {name_of(n) for n in cache.objects(NODES)}
        pods = cache.objects(PODS)
        self.ctx.kubelet.retain({uid_of(p) for p in pods})
        self.ctx.expire_events(now)
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if (node and node not in nodes) or (is_deleting(pod) and not node) or orphaned(pod, owners):
                self.ctx.delete(PODS, pod)
        for rs in cache.objects(REPLICASETS):
            if orphaned(rs, owners):
                self.ctx.delete(REPLICASETS, rs)
