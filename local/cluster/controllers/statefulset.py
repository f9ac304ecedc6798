"""The StatefulSet controller (pkg/controller/statefulset): ordinal pods, OrderedReady/Parallel, partitions.

Updates ignore ``maxUnavailable``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from local.cluster.controllers.base import Context, replicas_of
from local.cluster.objects import (
    CONTROLLER_REVISION_HASH,
    PODS,
    STATEFULSETS,
    compute_hash,
    condition_true,
    generation_of,
    is_deleting,
    labels_of,
    name_of,
    namespace_of,
    omit_zero,
    pod_available,
    pod_terminal,
    uid_of,
)
from local.cluster.store import Obj


def ordinal_of(pod_name: str, sts_name: str) -> int | None:
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix) or not pod_name[len(prefix) :].isdigit():
        return None
    return int(pod_name[len(prefix) :])


def _healthy(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and condition_true(pod, "Ready")


@dataclass
class _Set:
    sts: Obj
    replicas: int
    template: Obj
    current_rev: str
    update_rev: str
    partition: int
    rolling: bool
    ordered: bool
    pods: dict[int, Obj]


class StatefulSetController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, sts: Obj, now: float) -> None:
        if is_deleting(sts):
            return
        spec = sts.get("spec") or {}
        name = name_of(sts)
        template = spec.get("template") or {}
        old_status: Obj = sts.get("status") or {}
        collisions = int(old_status.get("collisionCount") or 0)
        update_rev = f"{name}-{compute_hash(template, collisions)}"
        self.ctx.ensure_revision(sts, "StatefulSet", update_rev, template, now)
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        pods: dict[int, Obj] = {}
        for member in self.ctx.cache.owned(uid_of(sts), PODS):
            index = ordinal_of(name_of(member), name)
            if index is not None and not is_deleting(member):
                pods[index] = member
        s = _Set(
            sts=sts,
            replicas=replicas_of(sts),
            template=template,
            current_rev=str(old_status.get("currentRevision") or update_rev),
            update_rev=update_rev,
            partition=int((strategy.get("rollingUpdate") or {}).get("partition") or 0) if rolling else 0,
            rolling=rolling,
            ordered=spec.get("podManagementPolicy", "OrderedReady") != "Parallel",
            pods=pods,
        )
        self._create_missing(s, now)
        self._delete_condemned(s)
        if s.rolling:
            self._roll(s)
        self._write_status(s, collisions, now)

    def _create_missing(self, s: _Set, now: float) -> None:
        for ordinal in range(s.replicas):
            pod: Obj | None = s.pods.get(ordinal)
            if pod is not None and pod_terminal(pod):
                self.ctx.delete(PODS, pod)  # a failed stateful pod is recreated under the same identity
                s.pods.pop(ordinal)
                pod = None
            if pod is None:
                created = self._create_pod(s, ordinal, now)
                if created is None:
                    break  # the previous incarnation is still being removed
                s.pods[ordinal] = created
                if s.ordered:
                    break
            elif s.ordered and not _healthy(pod):
                break

    def _create_pod(self, s: _Set, ordinal: int, now: float) -> Obj | None:
        name, namespace = name_of(s.sts), namespace_of(s.sts)
        rev = s.current_rev if ordinal < s.partition and s.current_rev != s.update_rev else s.update_rev
        pod_name = f"{name}-{ordinal}"
        if self.ctx.cache.get(PODS, namespace, pod_name) is not None:
            return None
        labels = {
            CONTROLLER_REVISION_HASH: rev,
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod_template = copy.deepcopy(self.ctx.revision_template(namespace, rev) or s.template)
        pod_spec = pod_template.setdefault("spec", {})
        pod_spec.setdefault("hostname", pod_name)
        service = (s.sts.get("spec") or {}).get("serviceName")
        if service:
            pod_spec.setdefault("subdomain", service)
        return self.ctx.new_pod(s.sts, "StatefulSet", pod_template, name=pod_name, extra_labels=labels, now=now)

    def _delete_condemned(self, s: _Set) -> None:
        for ordinal in sorted((o for o in s.pods if o >= s.replicas), reverse=True):
            if s.ordered and not all(_healthy(p) for o, p in s.pods.items() if o < s.replicas):
                break
            self.ctx.delete(PODS, s.pods.pop(ordinal))
            if s.ordered:
                break

    def _roll(self, s: _Set) -> None:
        if not all(o in s.pods and _healthy(s.pods[o]) for o in range(s.replicas)):
            return
        for ordinal in sorted(s.pods, reverse=True):
            if ordinal < s.partition or ordinal >= s.replicas:
                continue
            if labels_of(s.pods[ordinal]).get(CONTROLLER_REVISION_HASH) != s.update_rev:
                self.ctx.delete(PODS, s.pods.pop(ordinal))
                break

    def _write_status(self, s: _Set, collisions: int, now: float) -> None:
        active = [p for p in s.pods.values() if not pod_terminal(p)]
        ready = sum(1 for p in active if condition_true(p, "Ready"))
        updated = sum(1 for p in active if labels_of(p).get(CONTROLLER_REVISION_HASH) == s.update_rev)
        current_rev = s.current_rev
        current = sum(1 for p in active if labels_of(p).get(CONTROLLER_REVISION_HASH) == current_rev)
        min_ready = int((s.sts.get("spec") or {}).get("minReadySeconds") or 0)
        if updated == len(active) == s.replicas and ready == s.replicas:
            current_rev, current = s.update_rev, updated
        status: Obj = {
            "observedGeneration": generation_of(s.sts),
            "replicas": len(active),
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": sum(1 for p in active if pod_available(p, min_ready, now)),
            "currentRevision": current_rev,
            "updateRevision": s.update_rev,
            "collisionCount": collisions,
        }
        omit_zero(status, ("readyReplicas", "currentReplicas", "updatedReplicas"))
        self.ctx.set_status(STATEFULSETS, s.sts, status)
