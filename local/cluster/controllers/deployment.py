"""The Deployment controller (pkg/controller/deployment).

Rolling update with maxSurge/maxUnavailable, Recreate, revisions, history limit, Available/Progressing conditions with
the progress deadline on the simulated clock.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from local.cluster.controllers.base import Context, creation_key, replicas_of, set_condition, status_int
from local.cluster.objects import (
    DEPLOYMENTS,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH,
    PODS,
    REPLICASETS,
    REVISION_ANNOTATION,
    annotations_of,
    compute_hash,
    fmt_time,
    generation_of,
    get_condition,
    int_or_percent,
    is_deleting,
    name_of,
    namespace_of,
    new_uid,
    omit_zero,
    owner_reference,
    parse_time,
    pod_terminal,
    template_without_hash,
    uid_of,
)
from local.cluster.store import Obj

logger = logging.getLogger(__name__)

DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_HISTORY_LIMIT = 10
# Annotations a Deployment does not copy to its ReplicaSets (deployment/util.annotationsToSkip).
SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
    }
)
STATUS_INTS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
)


def revision_of(rs: Obj) -> int:
    try:
        return int(annotations_of(rs).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def deployment_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = fmt_time(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas, as deploymentutil.ResolveFenceposts."""
    spec = d.get("spec") or {}
    replicas = replicas_of(d)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = int_or_percent(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = int_or_percent(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def new_rs_replicas(replicas: int, surge: int, all_rs: list[Obj], new_rs: Obj | None) -> int:
    """deploymentutil.NewRSNewReplicas for the rolling update strategy."""
    current_new = replicas_of(new_rs, 0) if new_rs is not None else 0
    if current_new >= replicas:
        return replicas
    current_total = sum(replicas_of(rs, 0) for rs in all_rs)
    max_total = replicas + surge
    if current_total >= max_total:
        return current_new
    return current_new + min(max_total - current_total, replicas - current_new)


def progressed(old: Obj, new: Obj) -> bool:
    """deploymentutil.DeploymentProgressing."""

    def get(status: Obj, field: str) -> int:
        return int(status.get(field) or 0)

    old_olds = get(old, "replicas") - get(old, "updatedReplicas")
    new_olds = get(new, "replicas") - get(new, "updatedReplicas")
    return (
        get(new, "updatedReplicas") > get(old, "updatedReplicas")
        or new_olds < old_olds
        or get(new, "readyReplicas") > get(old, "readyReplicas")
        or get(new, "availableReplicas") > get(old, "availableReplicas")
    )


@dataclass
class _Rollout:
    """One sync's view of a Deployment and its ReplicaSets."""

    d: Obj
    replicas: int
    surge: int
    unavailable: int
    recreate: bool
    new_rs: Obj | None
    olds: list[Obj]
    status: Obj
    conditions: list[Obj]
    annotations_patch: dict[str, str] = field(default_factory=dict)

    @property
    def all_rs(self) -> list[Obj]:
        return [*self.olds, *([self.new_rs] if self.new_rs else [])]

    def condition(self, type_: str, status: str, reason: str, message: str, now: float) -> None:
        self.conditions = set_condition(self.conditions, deployment_condition(type_, status, reason, message, now))


class DeploymentController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sync(self, d: Obj, now: float) -> None:
        if is_deleting(d):
            return
        r = self._observe(d)
        if (d.get("spec") or {}).get("paused"):
            self._sync_paused(r, now)
            return
        cond = get_condition(r.status, "Progressing")
        if cond is not None and cond.get("reason") == "DeploymentPaused":
            r.condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now)
        if not self._ensure_new_rs(r, now):
            return
        if r.new_rs is not None:
            r.annotations_patch[REVISION_ANNOTATION] = str(revision_of(r.new_rs))
        if r.recreate:
            self._recreate(r)
        elif r.new_rs is not None:
            self._roll(r)
        self.write_status(r, now, cleanup=r.olds)

    def _observe(self, d: Obj) -> _Rollout:
        spec = d.get("spec") or {}
        rses = sorted(
            (rs for rs in self.ctx.cache.owned(uid_of(d), REPLICASETS) if not is_deleting(rs)), key=creation_key
        )
        want = template_without_hash(spec.get("template") or {})
        new_rs = next((rs for rs in rses if template_without_hash(rs["spec"]["template"]) == want), None)
        status: Obj = copy.deepcopy(d.get("status") or {})
        surge, unavailable = fenceposts(d)
        return _Rollout(
            d=d,
            replicas=replicas_of(d),
            surge=surge,
            unavailable=unavailable,
            recreate=(spec.get("strategy") or {}).get("type") == "Recreate",
            new_rs=new_rs,
            olds=[rs for rs in rses if rs is not new_rs],
            status=status,
            conditions=list(status.get("conditions") or []),
        )

    def _sync_paused(self, r: _Rollout, now: float) -> None:
        new_rs = r.new_rs
        if new_rs is not None and not any(replicas_of(rs, 0) for rs in r.olds) and replicas_of(new_rs, 0) != r.replicas:
            r.new_rs = self._scale_rs(new_rs, r.replicas, r.d, r.surge)
        cond = get_condition(r.status, "Progressing")
        if cond is None or cond.get("reason") != "DeploymentPaused":
            r.condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
        self.write_status(r, now, cleanup=None)

    def _ensure_new_rs(self, r: _Rollout, now: float) -> bool:
        """Stamp the revision on the new ReplicaSet, or create it; ``False`` when it cannot be created."""
        max_old_revision = max((revision_of(rs) for rs in r.olds), default=0)
        if r.new_rs is not None:
            revision = max_old_revision + 1
            if revision_of(r.new_rs) < revision:
                r.new_rs = self._stamp_rs_revision(r.new_rs, r.d, revision)
            if not any(c.get("type") == "Progressing" for c in r.conditions):
                message = f'Found new replica set "{name_of(r.new_rs)}"'
                r.condition("Progressing", "True", "FoundNewReplicaSet", message, now)
            return True
        old_active = any(replicas_of(rs, 0) > 0 for rs in r.olds)
        if r.recreate and (old_active or self._old_pods_running(r.olds)):
            return True  # Recreate: the new ReplicaSet waits for the old pods to go
        initial = r.replicas if r.recreate else new_rs_replicas(r.replicas, r.surge, r.olds, None)
        r.new_rs = self._create_rs(r, revision=max_old_revision + 1, replicas=initial, now=now)
        if r.new_rs is None:
            return False
        r.condition(
            "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name_of(r.new_rs)}"', now
        )
        return True

    def _recreate(self, r: _Rollout) -> None:
        old_active = any(replicas_of(rs, 0) > 0 for rs in r.olds)
        r.olds = [self._scale_rs(rs, 0, r.d, r.surge) if replicas_of(rs, 0) else rs for rs in r.olds]
        new_rs = r.new_rs
        if (
            new_rs is not None
            and not old_active
            and not self._old_pods_running(r.olds)
            and replicas_of(new_rs, 0) != r.replicas
        ):
            r.new_rs = self._scale_rs(new_rs, r.replicas, r.d, r.surge)

    def _roll(self, r: _Rollout) -> None:
        new_rs = r.new_rs
        assert new_rs is not None
        target = new_rs_replicas(r.replicas, r.surge, r.all_rs, new_rs)
        if target != replicas_of(new_rs, 0):
            r.new_rs = self._scale_rs(new_rs, target, r.d, r.surge)
        else:
            r.olds = self._scale_down_olds(r, new_rs)

    def _old_pods_running(self, olds: Iterable[Obj]) -> bool:
        return any(not pod_terminal(p) for rs in olds for p in self.ctx.cache.owned(uid_of(rs), PODS))

    def _create_rs(self, r: _Rollout, *, revision: int, replicas: int, now: float) -> Obj | None:
        d, template = r.d, (r.d.get("spec") or {}).get("template") or {}
        namespace = namespace_of(d)
        collisions = int(r.status.get("collisionCount") or 0)
        for _ in range(10):
            pod_hash = compute_hash(template_without_hash(template), collisions)
            name = f"{name_of(d)}-{pod_hash}"
            if self.ctx.cache.get(REPLICASETS, namespace, name) is None:
                break
            collisions += 1
        else:
            logger.warning("deployment %s/%s: too many hash collisions", namespace, name_of(d))
            return None
        if collisions:
            r.status["collisionCount"] = collisions
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {})
        rs_template["metadata"]["labels"] = {
            **(rs_template["metadata"].get("labels") or {}),
            POD_TEMPLATE_HASH: pod_hash,
        }
        selector = copy.deepcopy((d.get("spec") or {}).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: pod_hash}
        annotations = {k: v for k, v in annotations_of(d).items() if k not in SKIPPED_ANNOTATIONS}
        annotations.update(
            {
                REVISION_ANNOTATION: str(revision),
                DESIRED_REPLICAS_ANNOTATION: str(replicas_of(d)),
                MAX_REPLICAS_ANNOTATION: str(replicas_of(d) + r.surge),
            }
        )
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": new_uid(),
                "generation": 1,
                "creationTimestamp": fmt_time(now),
                "labels": dict(rs_template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(d, "Deployment", "apps/v1")],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int((d.get("spec") or {}).get("minReadySeconds") or 0),
                "selector": selector,
                "template": rs_template,
            },
            "status": {"replicas": 0},
        }
        created = self.ctx.create(REPLICASETS, rs)
        self.ctx.event(d, "Deployment", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        return created

    def _stamp_rs_revision(self, rs: Obj, d: Obj, revision: int) -> Obj:
        def mutate(obj: Obj) -> None:
            annotations = obj["metadata"].setdefault("annotations", {})
            for key, value in annotations_of(d).items():
                if key not in SKIPPED_ANNOTATIONS:
                    annotations[key] = value
            annotations[REVISION_ANNOTATION] = str(revision)

        return self.ctx.update(REPLICASETS, rs, mutate) or rs

    def _scale_rs(self, rs: Obj, replicas: int, d: Obj, surge: int) -> Obj:
        before = replicas_of(rs, 0)

        def mutate(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["spec"]["minReadySeconds"] = int((d.get("spec") or {}).get("minReadySeconds") or 0)
            obj["metadata"]["generation"] = generation_of(obj) + 1
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[DESIRED_REPLICAS_ANNOTATION] = str(replicas_of(d))
            annotations[MAX_REPLICAS_ANNOTATION] = str(replicas_of(d) + surge)

        updated = self.ctx.update(REPLICASETS, rs, mutate)
        if updated is None:
            return rs
        direction = "up" if replicas > before else "down"
        message = f"Scaled {direction} replica set {name_of(rs)} from {before} to {replicas}"
        self.ctx.event(d, "Deployment", "ScalingReplicaSet", message)
        return updated

    def _scale_down_olds(self, r: _Rollout, new_rs: Obj) -> list[Obj]:
        """deployment/rolling.go reconcileOldReplicaSets: unhealthy old pods first, then down to minAvailable."""
        olds = r.olds
        if sum(replicas_of(rs, 0) for rs in olds) == 0:
            return olds
        all_pods = sum(replicas_of(rs, 0) for rs in r.all_rs)
        min_available = r.replicas - r.unavailable
        new_unavailable = replicas_of(new_rs, 0) - status_int(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return olds
        result = {name_of(rs): rs for rs in olds}
        # cleanupUnhealthyReplicas
        total_down = 0
        for rs in sorted(olds, key=creation_key):
            current = replicas_of(rs, 0)
            unhealthy = current - status_int(rs, "availableReplicas")
            if total_down >= max_scaled_down or current == 0 or unhealthy <= 0:
                continue
            down = min(max_scaled_down - total_down, unhealthy)
            result[name_of(rs)] = self._scale_rs(rs, current - down, r.d, r.surge)
            total_down += down
        olds = [result[name_of(rs)] for rs in olds]
        # scaleDownOldReplicaSetsForRollingUpdate
        available = sum(status_int(rs, "availableReplicas") for rs in [*olds, new_rs])
        if available <= min_available:
            return olds
        remaining = min(available - min_available, max_scaled_down - total_down)
        for rs in sorted(olds, key=creation_key):
            current = replicas_of(rs, 0)
            if remaining <= 0 or current == 0:
                continue
            down = min(current, remaining)
            result[name_of(rs)] = self._scale_rs(rs, current - down, r.d, r.surge)
            remaining -= down
        return [result[name_of(rs)] for rs in olds]

    # --- status ---------------------------------------------------------------------------------------------

    def write_status(self, r: _Rollout, now: float, *, cleanup: list[Obj] | None) -> None:
        d, all_rs, replicas = r.d, r.all_rs, r.replicas
        available = sum(status_int(rs, "availableReplicas") for rs in all_rs)
        new: Obj = {
            "observedGeneration": generation_of(d),
            "replicas": sum(status_int(rs, "replicas") for rs in all_rs),
            "updatedReplicas": status_int(r.new_rs, "replicas") if r.new_rs else 0,
            "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(replicas - available, 0),
        }
        if r.status.get("collisionCount"):
            new["collisionCount"] = r.status["collisionCount"]
        if available >= replicas - r.unavailable:
            r.condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
        else:
            message = "Deployment does not have minimum availability."
            r.condition("Available", "False", "MinimumReplicasUnavailable", message, now)
        new["conditions"] = self._progressing(r, new, now)
        omit_zero(new, STATUS_INTS)
        old_status = d.get("status") or {}
        patch = r.annotations_patch
        stale_annotations = any(annotations_of(d).get(k) != v for k, v in patch.items())
        if new != old_status or stale_annotations:

            def mutate(obj: Obj) -> None:
                obj["status"] = new
                if patch:
                    obj["metadata"].setdefault("annotations", {}).update(patch)

            self.ctx.update(DEPLOYMENTS, d, mutate)
        complete_now = all(new.get(k, 0) == replicas for k in ("updatedReplicas", "replicas", "availableReplicas"))
        if cleanup is not None and complete_now:
            self._cleanup_history(d, cleanup)

    @staticmethod
    def _progressing(r: _Rollout, new: Obj, now: float) -> list[Obj]:
        """The Progressing condition (deployment/progress.go syncRolloutStatus)."""
        spec = r.d.get("spec") or {}
        conditions = r.conditions
        deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
        current = next((c for c in conditions if c.get("type") == "Progressing"), None)
        if spec.get("paused") or deadline is None or deadline >= 2**31 - 1:
            if spec.get("paused"):
                return conditions
            return [c for c in conditions if c.get("type") != "Progressing"]
        if new["replicas"] == new["updatedReplicas"] and current and current.get("reason") == "NewReplicaSetAvailable":
            return conditions
        return DeploymentController._progress(r, new, current, int(deadline), now)

    @staticmethod
    def _progress(r: _Rollout, new: Obj, current: Obj | None, deadline: int, now: float) -> list[Obj]:
        """Complete, still progressing, or past the progress deadline."""
        conditions = r.conditions
        rs_name = name_of(r.new_rs) if r.new_rs else ""
        complete = (
            new["updatedReplicas"] == r.replicas
            and new["replicas"] == r.replicas
            and new["availableReplicas"] == r.replicas
            and new["observedGeneration"] >= generation_of(r.d)
        )
        if complete:
            message = f'ReplicaSet "{rs_name}" has successfully progressed.'
            cond = deployment_condition("Progressing", "True", "NewReplicaSetAvailable", message, now)
            return set_condition(conditions, cond)
        if progressed(r.d.get("status") or {}, new):
            message = f'ReplicaSet "{rs_name}" is progressing.'
            cond = deployment_condition("Progressing", "True", "ReplicaSetUpdated", message, now)
            if current is not None and current.get("status") == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime")
            return [*(c for c in conditions if c.get("type") != "Progressing"), cond]
        if current is not None and current.get("reason") != "NewReplicaSetAvailable":
            since = parse_time(current.get("lastUpdateTime")) or now
            if current.get("reason") == "ProgressDeadlineExceeded" or since + deadline < now:
                message = f'ReplicaSet "{rs_name}" has timed out progressing.'
                cond = deployment_condition("Progressing", "False", "ProgressDeadlineExceeded", message, now)
                return set_condition(conditions, cond)
        return conditions

    @staticmethod
    def deadline_due(d: Obj) -> float:
        """After when ``d``'s rollout passes its progress deadline with no progress meanwhile (``math.inf``: a
        rollout that is complete, paused, past it already or without a deadline)."""
        spec = d.get("spec") or {}
        deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
        if spec.get("paused") or deadline is None or deadline >= 2**31 - 1:
            return math.inf
        current = get_condition(d.get("status"), "Progressing")
        if current is None or current.get("reason") in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
            return math.inf
        since = parse_time(current.get("lastUpdateTime"))
        return math.inf if since is None else since + int(deadline)

    def _cleanup_history(self, d: Obj, olds: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT)
        limit = DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
        idle = [
            rs for rs in olds if replicas_of(rs, 0) == 0 and status_int(rs, "replicas") == 0 and not is_deleting(rs)
        ]
        excess = len(idle) - limit
        for rs in sorted(idle, key=revision_of)[: max(excess, 0)]:
            for pod in self.ctx.cache.owned(uid_of(rs), PODS):
                self.ctx.delete(PODS, pod)
            self.ctx.delete(REPLICASETS, rs)
