"""The HorizontalPodAutoscaler controller (pkg/controller/podautoscaler, without metrics).

Its recommendation is the target's current ``spec.replicas`` clamped into ``[minReplicas (default 1),
maxReplicas]``; a target at 0 replicas is left alone (``ScalingActive=False``, reason ``ScalingDisabled``). It writes
the target's ``spec.replicas`` as the ``/scale`` subresource would (generation bumped, a ``managedFields`` entry of
``kube-controller-manager``, operation ``Update``, subresource ``scale``) and keeps ``status``.
"""

from __future__ import annotations

import copy

from local.cluster import ssa
from local.cluster.controllers.base import Context, replicas_of, set_condition, spec_like
from local.cluster.objects import (
    DEPLOYMENTS,
    HORIZONTALPODAUTOSCALERS,
    STATEFULSETS,
    fmt_time,
    generation_of,
    is_deleting,
    namespace_of,
)
from local.cluster.store import GroupResource, Obj

HPA_TARGETS = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}
HPA_MANAGER = "kube-controller-manager"


def hpa_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    return {"type": type_, "status": status, "lastTransitionTime": fmt_time(now), "reason": reason, "message": message}


def _limited(current: int, low: int, high: int) -> tuple[str, str, str]:
    if current > high:
        return "True", "TooManyReplicas", "the desired replica count is more than the maximum replica count"
    if current < low:
        return "True", "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    return "False", "DesiredWithinRange", "the desired count is within the acceptable range"


class HpaController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, hpa: Obj, now: float) -> None:
        if is_deleting(hpa) or not str(hpa.get("apiVersion", "autoscaling/v2")).startswith("autoscaling/"):
            return
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        status: Obj = copy.deepcopy(hpa.get("status") or {})
        conditions: list[Obj] = list(status.get("conditions") or [])
        gr = HPA_TARGETS.get(str(ref.get("kind")))
        target = self.ctx.cache.get(gr, namespace_of(hpa), str(ref.get("name"))) if gr is not None else None
        if gr is None or target is None or is_deleting(target):
            self._target_missing(hpa, ref, known_kind=gr is not None, status=status, now=now)
            return
        low = int(spec.get("minReplicas") or 1)
        high = int(spec.get("maxReplicas") or low)
        current = replicas_of(target)
        ready = "the HPA controller was able to get the target's current scale"
        conditions = set_condition(conditions, hpa_condition("AbleToScale", "True", "SucceededGetScale", ready, now))
        if current == 0 and low != 0:
            desired = 0
            message = "scaling is disabled since the replica count of the target is zero"
            active = hpa_condition("ScalingActive", "False", "ScalingDisabled", message, now)
            conditions = set_condition(conditions, active)
        else:
            desired = min(max(current, low), high)
            message = "the emulator has no metrics: the recommendation is the current replica count within the bounds"
            conditions = set_condition(
                conditions, hpa_condition("ScalingActive", "True", "ValidMetricFound", message, now)
            )
            limited = _limited(current, low, high)
            conditions = set_condition(conditions, hpa_condition("ScalingLimited", *limited, now))
        if desired != current and self.scale_target(gr, target, desired, now) is not None:
            message = f"the HPA controller was able to update the target scale to {desired}"
            conditions = set_condition(
                conditions, hpa_condition("AbleToScale", "True", "SucceededRescale", message, now)
            )
            status["lastScaleTime"] = fmt_time(now)
        status["observedGeneration"] = generation_of(hpa)
        status["currentReplicas"] = current  # omitempty: a zero is dropped below
        status["desiredReplicas"] = desired
        if not current:
            del status["currentReplicas"]
        status["conditions"] = conditions
        self.ctx.set_status(HORIZONTALPODAUTOSCALERS, hpa, status)

    def _target_missing(self, hpa: Obj, ref: Obj, *, known_kind: bool, status: Obj, now: float) -> None:
        message = f"the HPA controller was unable to get the target's current scale: {ref.get('kind')} " + (
            f'"{ref.get("name")}" not found' if known_kind else "is not a scalable kind"
        )
        conditions = list(status.get("conditions") or [])
        status["conditions"] = set_condition(
            conditions, hpa_condition("AbleToScale", "False", "FailedGetScale", message, now)
        )
        status.setdefault("desiredReplicas", 0)
        self.ctx.set_status(HORIZONTALPODAUTOSCALERS, hpa, status)

    def scale_target(self, gr: GroupResource, target: Obj, replicas: int, now: float) -> Obj | None:
        """Write ``spec.replicas`` as a ``/scale`` update by the HPA controller would: generation and managedFields."""
        kind = str(target.get("kind") or ("Deployment" if gr == DEPLOYMENTS else "StatefulSet"))

        def mutate(obj: Obj) -> None:
            before = copy.deepcopy(obj)
            obj.setdefault("spec", {})["replicas"] = replicas
            if spec_like(obj) != spec_like(before):  # what the API server does for any write
                obj["metadata"]["generation"] = generation_of(before) + 1
            managers = ssa.update(
                before,
                obj,
                ssa.decode_managers(obj["metadata"].get("managedFields")),
                manager=HPA_MANAGER,
                api_version=str(obj.get("apiVersion") or "apps/v1"),
                now=fmt_time(now),
                schema=ssa.Schema(builtin=True, kind=kind),
                subresource="scale",
            )
            encoded = ssa.encode_managers(managers)
            if encoded:
                obj["metadata"]["managedFields"] = encoded
            else:
                obj["metadata"].pop("managedFields", None)

        return self.ctx.update(gr, target, mutate)
