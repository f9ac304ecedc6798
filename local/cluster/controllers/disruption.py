"""The disruption controller (pkg/controller/disruption): keeps every PodDisruptionBudget's status.

For each PDB it finds the pods its selector matches in its namespace (``{}`` selects them all, a null selector
none), counts the healthy ones (Ready and not being deleted) and works out how many must stay healthy:

- ``minAvailable`` as an integer: that many, out of the matching pods;
- ``minAvailable`` as a percentage: that share (rounded up) of the pods' controllers' scale;
- ``maxUnavailable``: the controllers' scale minus that many (a percentage rounded up), never below 0.

The controllers' scale is the ``spec.replicas`` of each matching pod's Deployment (through its ReplicaSet),
ReplicaSet or StatefulSet. ``disruptionsAllowed`` is ``currentHealthy - desiredHealthy`` (0 when negative or when no
pods are expected) and the ``DisruptionAllowed`` condition says ``SufficientPods`` or ``InsufficientPods``.
"""

from __future__ import annotations

import copy
import math

from local.cluster.controllers.base import Context, replicas_of
from local.cluster.objects import (
    DEPLOYMENTS,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    condition_true,
    fmt_time,
    generation_of,
    get_condition,
    is_deleting,
    labels_of,
    meta,
    namespace_of,
    uid_of,
)
from local.cluster.selectors import selector_matches
from local.cluster.store import GroupResource, Obj

_SCALABLE: dict[str, GroupResource] = {"ReplicaSet": REPLICASETS, "StatefulSet": STATEFULSETS}


def _scaled(value: object, total: int) -> tuple[int, bool]:
    """An int-or-percent against ``total`` (percentages round up, as GetScaledValueFromIntOrPercent(..., true));
    the second item says whether it was a percentage."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100), True
    return int(str(value)), False


class DisruptionController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, pdb: Obj, now: float) -> None:
        if is_deleting(pdb):
            return
        spec = pdb.get("spec") or {}
        namespace = namespace_of(pdb)
        pods = [
            p
            for p in self.ctx.cache.objects(PODS)
            if namespace_of(p) == namespace and selector_matches(spec.get("selector"), labels_of(p))
        ]
        healthy = sum(1 for p in pods if not is_deleting(p) and condition_true(p, "Ready"))
        expected, desired = self._expected(spec, pods)
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        status: Obj = copy.deepcopy(pdb.get("status") or {})
        status.update(
            {
                "observedGeneration": generation_of(pdb),
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "disruptionsAllowed": allowed,
            }
        )
        status["conditions"] = self._condition(status, allowed > 0, generation_of(pdb), now)
        self.ctx.set_status(PODDISRUPTIONBUDGETS, pdb, status)

    def _expected(self, spec: Obj, pods: list[Obj]) -> tuple[int, int]:
        """(expectedPods, desiredHealthy), as getExpectedPodCount."""
        if spec.get("maxUnavailable") is not None:
            expected = self._expected_scale(pods)
            unavailable, _ = _scaled(spec["maxUnavailable"], expected)
            return expected, max(expected - unavailable, 0)
        min_available = spec.get("minAvailable")
        if min_available is None:
            return len(pods), 0
        if isinstance(min_available, str) and min_available.endswith("%"):
            expected = self._expected_scale(pods)
            return expected, _scaled(min_available, expected)[0]
        return len(pods), int(min_available)

    def _expected_scale(self, pods: list[Obj]) -> int:
        """The summed ``spec.replicas`` of the pods' controllers, each controller counted once (getExpectedScale)."""
        seen: dict[str, int] = {}
        for pod in pods:
            owner = self._scale_owner(pod)
            if owner is not None:
                seen[uid_of(owner)] = replicas_of(owner)
        return sum(seen.values())

    def _scale_owner(self, pod: Obj) -> Obj | None:
        ref = next((r for r in meta(pod).get("ownerReferences") or [] if r.get("controller")), None)
        gr = _SCALABLE.get(str((ref or {}).get("kind")))
        if ref is None or gr is None:
            return None  # an unmanaged pod, or one whose controller has no scale: not counted
        owner = self.ctx.cache.get(gr, namespace_of(pod), str(ref.get("name")))
        if owner is None or uid_of(owner) != ref.get("uid"):
            return None
        if gr == REPLICASETS:
            parent = next((r for r in meta(owner).get("ownerReferences") or [] if r.get("controller")), None)
            if parent is not None and parent.get("kind") == "Deployment":
                deployment = self.ctx.cache.get(DEPLOYMENTS, namespace_of(pod), str(parent.get("name")))
                if deployment is not None and uid_of(deployment) == parent.get("uid"):
                    return deployment
        return owner

    @staticmethod
    def _condition(status: Obj, allowed: bool, generation: int, now: float) -> list[Obj]:
        state, reason = ("True", "SufficientPods") if allowed else ("False", "InsufficientPods")
        current = get_condition(status, "DisruptionAllowed")
        since = current.get("lastTransitionTime") if current and current.get("status") == state else fmt_time(now)
        cond = {
            "type": "DisruptionAllowed",
            "status": state,
            "observedGeneration": generation,
            "lastTransitionTime": since,
            "reason": reason,
            "message": "",
        }
        return [*(c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"), cond]
