"""The kubelets' side of the pass: every bound pod gets the status its node's kubelet would report.

What a container does is :class:`local.cluster.kubelet.Kubelet`'s business; this module writes the result, removes
pods the API marked for deletion (no graceful termination) and records the kubelet's warning events.
"""

from __future__ import annotations

import math

from local.cluster.controllers.base import Context
from local.cluster.kubelet import HEALTH_ANNOTATION
from local.cluster.objects import NODES, PODS, annotations_of, is_deleting, pod_terminal
from local.cluster.store import Obj

WARNING_EVENTS: dict[str, tuple[str, str]] = {
    "ErrImagePull": ("Failed", 'Failed to pull image "{image}": {detail}'),
    "ImagePullBackOff": ("BackOff", 'Back-off pulling image "{image}"'),
    "CrashLoopBackOff": ("BackOff", "Back-off restarting failed container {container} in pod"),
    "CreateContainerConfigError": ("Failed", "Error: {detail}"),
}


class PodStatusSync:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def run(self, now: float) -> None:
        for pod in self.ctx.cache.objects(PODS):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            if is_deleting(pod):
                self.ctx.delete(PODS, pod)
                continue
            node = self.ctx.cache.get(NODES, "", str(node_name))
            if node is None or pod_terminal(pod):
                continue
            self._sync(pod, node, now)

    def next_due(self, now: float) -> float:
        """When the next bound pod's status changes by the clock alone (the kubelet's next container transition)."""
        due = math.inf
        for pod in self.ctx.cache.objects(PODS):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            if is_deleting(pod):
                return now
            if self.ctx.cache.get(NODES, "", str(node_name)) is None or pod_terminal(pod):
                continue
            due = min(due, self.ctx.kubelet.next_change(pod, now))
        return due

    def _sync(self, pod: Obj, node: Obj, now: float) -> None:
        status = self.ctx.kubelet.desired_status(pod, node, now)
        health = self.ctx.kubelet.health_annotation(pod)
        if status == pod.get("status") and annotations_of(pod).get(HEALTH_ANNOTATION) == health:
            return

        def mutate(obj: Obj) -> None:
            obj["status"] = status
            obj["metadata"].setdefault("annotations", {})[HEALTH_ANNOTATION] = health

        if self.ctx.update(PODS, pod, mutate) is not None:
            self._events(pod, status)

    def _events(self, pod: Obj, status: Obj) -> None:
        """Warning events when a container enters a failure state, as ``kubectl describe pod`` shows them."""
        before = {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            old_reason = ((before.get(container["name"]) or {}).get("state") or {}).get("waiting", {}).get("reason")
            if reason not in WARNING_EVENTS or reason == old_reason:
                continue
            event_reason, template = WARNING_EVENTS[str(reason)]
            message = template.format(
                container=container["name"], image=container.get("image", ""), detail=waiting.get("message", "")
            )
            self.ctx.event(pod, "Pod", event_reason, message, warning=True, component="kubelet")
