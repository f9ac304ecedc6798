"""The ReplicaSet controller (pkg/controller/replicaset): keeps ``spec.replicas`` pods and reports them."""

from __future__ import annotations

from local.cluster.controllers.base import Context, replicas_of
from local.cluster.objects import (
    PODS,
    REPLICASETS,
    condition_true,
    generation_of,
    get_condition,
    is_deleting,
    labels_of,
    meta,
    name_of,
    namespace_of,
    omit_zero,
    parse_time,
    pod_active,
    pod_available,
    uid_of,
)
from local.cluster.store import Obj


def deletion_rank(pod: Obj, now: float) -> tuple[int, int, int, float, int, float]:
    """controller.ActivePods ordering: the pods to delete first sort first."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(status.get("phase")), 0)
    ready_since = None
    ready_cond = get_condition(status, "Ready")
    if ready_cond is not None and ready_cond.get("status") == "True":
        ready_since = parse_time(ready_cond.get("lastTransitionTime"))
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = parse_time(meta(pod).get("creationTimestamp")) or now
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        phase_rank,
        1 if ready_since is not None else 0,
        -(ready_since or 0.0),  # ready for a shorter time goes first
        -restarts,
        -created,  # newer goes first
    )


class ReplicaSetController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, rs: Obj, now: float) -> None:
        if is_deleting(rs):
            return
        spec = rs.get("spec") or {}
        pods = self._manage(rs, [p for p in self.ctx.cache.owned(uid_of(rs), PODS) if pod_active(p)], now)
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        status: Obj = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods if all(labels_of(p).get(k) == v for k, v in template_labels.items())
            ),
            "readyReplicas": sum(1 for p in pods if condition_true(p, "Ready")),
            "availableReplicas": sum(1 for p in pods if pod_available(p, min_ready, now)),
            "observedGeneration": generation_of(rs),
        }
        if (rs.get("status") or {}).get("conditions"):
            status["conditions"] = rs["status"]["conditions"]
        self.ctx.set_status(
            REPLICASETS,
            rs,
            omit_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration")),
        )

    def _manage(self, rs: Obj, pods: list[Obj], now: float) -> list[Obj]:
        """manageReplicas: create the missing pods or delete the surplus ones; the pods that remain."""
        diff = len(pods) - replicas_of(rs)
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(-diff):
                name = self.ctx.unique_pod_name(namespace_of(rs), name_of(rs))
                pods.append(self.ctx.new_pod(rs, "ReplicaSet", template, name=name, extra_labels={}, now=now))
                self.ctx.event(rs, "ReplicaSet", "SuccessfulCreate", f"Created pod: {name}")
        elif diff > 0:
            ranked = sorted(pods, key=lambda p: deletion_rank(p, now))
            for pod in ranked[:diff]:
                self.ctx.delete(PODS, pod)
                self.ctx.event(rs, "ReplicaSet", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
            doomed = {uid_of(p) for p in ranked[:diff]}
            pods = [p for p in pods if uid_of(p) not in doomed]
        return pods
