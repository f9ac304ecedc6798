"""The emulator's kube-controller-manager and scheduler: workloads turn into ReplicaSets, Pods, bindings and status.

:class:`ControllerManager` keeps an informer-style cache of the objects it cares about (fed by the store's change
listener, so reads cost no copies) and, on :meth:`ControllerManager.reconcile`, runs every controller in passes until
a pass changes nothing. It reconciles on every tick of the simulated clock and after node group changes; the API
layer calls it after each successful write. The deployment logic follows pkg/controller/deployment (rolling update
with maxSurge/maxUnavailable, Recreate, revisions, history limit, Available/Progressing conditions with the progress
deadline on the simulated clock), the ReplicaSet logic pkg/controller/replicaset.

Known deviations:
- Deleted pods vanish at once (no graceful termination, no ``Terminating`` phase); a pod the API marks with a
  deletionTimestamp is removed on the next pass.
- Paused deployments only scale a lone ReplicaSet; there is no proportional scaling of several active ReplicaSets
  when a deployment is resized mid-rollout (the rolling update logic still keeps the surge and unavailability bounds).
- Orphaned ReplicaSets/Pods whose labels match a selector are not adopted; dependents whose controller owner is gone
  are deleted (what the garbage collector would do in the background).
- The scheduler filters on node readiness, ``spec.unschedulable``, ``nodeSelector`` and cpu/memory/pod-count requests
  and picks the least allocated node; taints, affinity, topology spread and preemption are not modelled. Its
  Unschedulable message has the ``0/N nodes are available: …`` form without the preemption suffix.
- DaemonSet pods are bound directly (``spec.nodeName``) to every Ready schedulable node matching the nodeSelector;
  StatefulSet updates ignore ``maxUnavailable``; Job pods count failures only by pod phase (restarts of an
  OnFailure pod do not count against backoffLimit).
- ReplicaSet pod-template hashes are fnv32a over canonical JSON, so names differ from a real cluster's.
- The HorizontalPodAutoscaler controller has no metrics: its recommendation is the target's current
  ``spec.replicas`` clamped into ``[minReplicas (default 1), maxReplicas]``, with no stabilization window, no
  ``behavior`` policies and no sync period (it acts on every pass). Like the real one it leaves a target at 0
  replicas alone (``ScalingActive=False``, reason ``ScalingDisabled``), writes the target's ``spec.replicas`` as the
  ``/scale`` subresource would (generation bumped, ``managedFields`` entry of ``kube-controller-manager``, operation
  ``Update``, subresource ``scale``) and sets ``status`` (currentReplicas, desiredReplicas, lastScaleTime when it
  scaled, conditions AbleToScale/ScalingActive/ScalingLimited). ``ScalingActive=True`` says ``ValidMetricFound``
  although nothing is measured; no ``currentMetrics``; no events.
- Events are recorded for a few transitions only (ScalingReplicaSet, SuccessfulCreate/Delete, Scheduled,
  FailedScheduling, and the kubelet's Failed/BackOff warnings), never aggregated (``count`` stays 1), and expire
  after an hour of simulated time.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable

from local.cluster import ssa
from local.cluster.clock import SimClock
from local.cluster.kubelet import HEALTH_ANNOTATION, ImageBehaviours, Kubelet, NodePool, node_ready, qos_class
from local.cluster.objects import (
    CONTROLLER_REVISION_HASH,
    CONTROLLERREVISIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    DESIRED_REPLICAS_ANNOTATION,
    EVENTS,
    HORIZONTALPODAUTOSCALERS,
    JOBS,
    MAX_REPLICAS_ANNOTATION,
    NODES,
    POD_TEMPLATE_HASH,
    PODS,
    REPLICASETS,
    REVISION_ANNOTATION,
    STATEFULSETS,
    annotations_of,
    compute_hash,
    condition_true,
    controller_uid,
    fmt_time,
    generation_of,
    get_condition,
    int_or_percent,
    is_deleting,
    labels_of,
    meta,
    name_of,
    namespace_of,
    new_uid,
    omit_zero,
    owner_reference,
    parse_quantity,
    parse_time,
    pod_active,
    pod_available,
    pod_requests,
    pod_terminal,
    random_suffix,
    selector_matches,
    template_without_hash,
    uid_of,
)
from local.cluster.store import Event, GroupResource, Obj, Store

logger = logging.getLogger(__name__)

WATCHED = (
    PODS,
    NODES,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    JOBS,
    CONTROLLERREVISIONS,
    HORIZONTALPODAUTOSCALERS,
)
HPA_TARGETS = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}
HPA_MANAGER = "kube-controller-manager"
OWNER_KINDS = {"ReplicaSet": REPLICASETS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS, "Job": JOBS}
MAX_PASSES = 50
EVENT_TTL = 3600.0  # the API server's default --event-ttl
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

Key = tuple[str, str]


class _Cache:
    """An informer: the latest version of every watched object, indexed by controller owner uid.

    Objects handed out are shared, never copied: callers must treat them as read-only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[GroupResource, dict[Key, Obj]] = {gr: {} for gr in WATCHED}
        self._rvs: dict[tuple[GroupResource, Key], int] = {}
        self._owned: dict[str, dict[tuple[GroupResource, Key], None]] = {}

    def on_event(self, event: Event) -> None:
        if event.gr not in self._objects:
            return
        key = (namespace_of(event.object), name_of(event.object))
        self._apply(event.gr, key, event.resource_version, None if event.type == "DELETED" else event.object)

    def prime(self, store: Store) -> None:
        for gr in WATCHED:
            for obj in store.list(gr):
                rv = int(meta(obj).get("resourceVersion") or 0)
                self._apply(gr, (namespace_of(obj), name_of(obj)), rv, obj)

    def _apply(self, gr: GroupResource, key: Key, rv: int, obj: Obj | None) -> None:
        with self._lock:
            if self._rvs.get((gr, key), -1) >= rv:
                return  # a newer version (or its deletion) already arrived from another thread
            self._rvs[(gr, key)] = rv
            bucket = self._objects[gr]
            previous = bucket.pop(key, None)
            if previous is not None:
                owner = controller_uid(previous)
                if owner:
                    self._owned.get(owner, {}).pop((gr, key), None)
            if obj is not None:
                bucket[key] = obj
                owner = controller_uid(obj)
                if owner:
                    self._owned.setdefault(owner, {})[(gr, key)] = None

    def objects(self, gr: GroupResource) -> list[Obj]:
        with self._lock:
            return list(self._objects[gr].values())

    def get(self, gr: GroupResource, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects[gr].get((namespace, name))

    def owned(self, uid: str, gr: GroupResource) -> list[Obj]:
        with self._lock:
            keys = [k for (g, k) in self._owned.get(uid, {}) if g == gr]
            bucket = self._objects[gr]
            found = [bucket[k] for k in keys if k in bucket]
        return [o for o in found if controller_uid(o) == uid]


def _creation_key(obj: Obj) -> tuple[float, str]:
    return parse_time(meta(obj).get("creationTimestamp")) or 0.0, name_of(obj)


def _replicas(obj: Obj, default: int = 1) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return default if value is None else int(value)


def _status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _revision(rs: Obj) -> int:
    try:
        return int(annotations_of(rs).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def _set_condition(conditions: list[Obj], cond: Obj) -> list[Obj]:
    """deploymentutil.SetDeploymentCondition: no-op for the same status and reason; keeps the transition time."""
    current = next((c for c in conditions if c.get("type") == cond["type"]), None)
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return conditions
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    return [c for c in conditions if c.get("type") != cond["type"]] + [cond]


def _deployment_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = fmt_time(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _hpa_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    return {"type": type_, "status": status, "lastTransitionTime": fmt_time(now), "reason": reason, "message": message}


def _spec_like(obj: Obj) -> Obj:
    """What the API server compares to decide whether a write bumps ``metadata.generation`` (``api._spec_like``)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _pod_spec_defaults(spec: Obj) -> Obj:
    """The defaults and admission plugins a real API server adds to a pod created from a template."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for container in spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        container.setdefault(
            "imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent"
        )
        container.setdefault("resources", {})
    return spec


class ControllerManager:
    """Every controller the emulator runs, reconciled together. Thread-safe; reconciles are serialised.

    Never call :meth:`reconcile` while holding ``store.lock``: reconcile takes its own lock, then the store's.
    """

    def __init__(self, store: Store, clock: SimClock, images: ImageBehaviours, nodes: NodePool) -> None:
        self._store = store
        self._clock = clock
        self._nodes = nodes
        self.kubelet = Kubelet(images)
        self._lock = threading.RLock()
        self._running = False
        self._dirty = False
        self._writes = 0  # writes made by the controllers: a pass that makes none means they have settled
        self._cache = _Cache()
        self._events: deque[tuple[float, str, str]] = deque()
        store.subscribe(self._cache.on_event)
        self._cache.prime(store)
        clock.subscribe(self._on_tick)
        nodes.subscribe(self.reconcile)

    # --- driving --------------------------------------------------------------------------------------------

    def _on_tick(self, _now: float) -> None:
        self.reconcile()

    def reconcile(self) -> None:
        """Run every controller until a pass writes nothing (at most ``MAX_PASSES`` passes)."""
        with self._lock:
            if self._running:  # re-entered from a listener inside a pass: the running loop will go round again
                self._dirty = True
                return
            self._running = True
            try:
                for _ in range(MAX_PASSES):
                    self._dirty = False
                    before = self._writes
                    self._pass(self._clock.now())
                    if not self._dirty and self._writes == before:
                        return
                logger.warning("controllers did not settle after %d passes", MAX_PASSES)
            finally:
                self._running = False

    def _pass(self, now: float) -> None:
        if self._nodes.tick(now):
            self._writes += 1
        self._collect_garbage(now)
        for hpa in self._cache.objects(HORIZONTALPODAUTOSCALERS):
            self._guarded(self._sync_hpa, hpa, now)
        for d in self._cache.objects(DEPLOYMENTS):
            self._guarded(self._sync_deployment, d, now)
        for rs in self._cache.objects(REPLICASETS):
            self._guarded(self._sync_replicaset, rs, now)
        for sts in self._cache.objects(STATEFULSETS):
            self._guarded(self._sync_statefulset, sts, now)
        for ds in self._cache.objects(DAEMONSETS):
            self._guarded(self._sync_daemonset, ds, now)
        for job in self._cache.objects(JOBS):
            self._guarded(self._sync_job, job, now)
        self._schedule(now)
        self._run_kubelet(now)

    def _guarded(self, sync: Callable[[Obj, float], None], obj: Obj, now: float) -> None:
        if not uid_of(obj):
            return  # the API layer assigns uids; an object without one is not ours to own
        sync(obj, now)

    # --- writes ---------------------------------------------------------------------------------------------

    def _create(self, gr: GroupResource, obj: Obj) -> Obj:
        self._writes += 1
        return self._store.put(gr, obj)

    def _update(self, gr: GroupResource, cached: Obj, mutate: Callable[[Obj], None]) -> Obj | None:
        """Apply ``mutate`` to the stored version of ``cached`` (same uid), atomically; ``None`` if it is gone."""
        with self._store.lock:
            current = self._store.get(gr, namespace_of(cached), name_of(cached))
            if current is None or uid_of(current) != uid_of(cached):
                return None
            mutate(current)
            self._writes += 1
            return self._store.put(gr, current)

    def _set_status(self, gr: GroupResource, cached: Obj, status: Obj) -> Obj | None:
        if cached.get("status") == status:
            return cached

        def mutate(obj: Obj) -> None:
            obj["status"] = status

        return self._update(gr, cached, mutate)

    def _delete(self, gr: GroupResource, cached: Obj) -> None:
        with self._store.lock:
            current = self._store.get(gr, namespace_of(cached), name_of(cached))
            if current is None or uid_of(current) != uid_of(cached):
                return
            self._store.remove(gr, namespace_of(cached), name_of(cached))
            self._writes += 1
        if gr == PODS:
            self.kubelet.forget(uid_of(cached))

    def _event(
        self, involved: Obj, kind: str, reason: str, message: str, *, warning: bool = False, component: str = ""
    ) -> None:
        now = self._clock.now()
        name = f"{name_of(involved)}.{new_uid().replace('-', '')[:16]}"
        namespace = namespace_of(involved) or "default"
        self._events.append((now, namespace, name))
        self._create(
            EVENTS,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": new_uid(),
                    "creationTimestamp": fmt_time(now),
                },
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion", ""),
                    "kind": kind,
                    "name": name_of(involved),
                    "namespace": namespace_of(involved),
                    "uid": uid_of(involved),
                },
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "count": 1,
                "firstTimestamp": fmt_time(now),
                "lastTimestamp": fmt_time(now),
                "eventTime": None,
                "source": {"component": component or f"{kind.lower()}-controller"},
                "reportingComponent": "",
                "reportingInstance": "",
            },
        )

    def _new_pod(
        self, owner: Obj, kind: str, template: Obj, *, name: str, extra_labels: dict[str, str], now: float
    ) -> Obj:
        tmeta = template.get("metadata") or {}
        spec = _pod_spec_defaults(copy.deepcopy(template.get("spec") or {}))
        pod_meta: Obj = {
            "name": name,
            "namespace": namespace_of(owner),
            "uid": new_uid(),
            "creationTimestamp": fmt_time(now),
            "labels": {**(tmeta.get("labels") or {}), **extra_labels},
            "ownerReferences": [owner_reference(owner, kind, str(owner.get("apiVersion") or _api_version(kind)))],
        }
        if kind in ("ReplicaSet", "DaemonSet", "Job"):
            pod_meta["generateName"] = name[: name.rfind("-") + 1]
        if tmeta.get("annotations"):
            pod_meta["annotations"] = copy.deepcopy(tmeta["annotations"])
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": qos_class(spec)},
        }
        return self._create(PODS, pod)

    def _unique_pod_name(self, namespace: str, prefix: str) -> str:
        for _ in range(100):
            name = f"{prefix}-{random_suffix()}"
            if self._cache.get(PODS, namespace, name) is None:
                return name
        raise RuntimeError(f"no free pod name for {namespace}/{prefix}")

    # --- garbage collection ---------------------------------------------------------------------------------

    def _collect_garbage(self, now: float) -> None:
        owners = {gr: {uid_of(o) for o in self._cache.objects(gr)} for gr in (*OWNER_KINDS.values(), DEPLOYMENTS)}
        nodes = {name_of(n) for n in self._cache.objects(NODES)}
        pods = self._cache.objects(PODS)
        self.kubelet.retain({uid_of(p) for p in pods})
        while self._events and self._events[0][0] + EVENT_TTL < now:
            _, namespace, name = self._events.popleft()
            self._store.remove(EVENTS, namespace, name)
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if (node and node not in nodes) or (is_deleting(pod) and not node) or self._orphaned(pod, owners):
                self._delete(PODS, pod)
        for rs in self._cache.objects(REPLICASETS):
            if self._orphaned(rs, owners):
                self._delete(REPLICASETS, rs)

    @staticmethod
    def _orphaned(obj: Obj, owners: dict[GroupResource, set[str]]) -> bool:
        for ref in meta(obj).get("ownerReferences") or []:
            if not ref.get("controller"):
                continue
            kind = ref.get("kind")
            gr = DEPLOYMENTS if kind == "Deployment" else OWNER_KINDS.get(str(kind))
            if gr is not None and ref.get("uid") not in owners[gr]:
                return True
        return False

    # --- deployments ----------------------------------------------------------------------------------------

    # --- horizontal pod autoscaler (pkg/controller/podautoscaler, without metrics) ------------------------------

    def _sync_hpa(self, hpa: Obj, now: float) -> None:
        if is_deleting(hpa) or not str(hpa.get("apiVersion", "autoscaling/v2")).startswith("autoscaling/"):
            return
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        status: Obj = copy.deepcopy(hpa.get("status") or {})
        conditions: list[Obj] = list(status.get("conditions") or [])
        gr = HPA_TARGETS.get(str(ref.get("kind")))
        target = self._cache.get(gr, namespace_of(hpa), str(ref.get("name"))) if gr is not None else None
        if gr is None or target is None or is_deleting(target):
            message = f"the HPA controller was unable to get the target's current scale: {ref.get('kind')} " + (
                f'"{ref.get("name")}" not found' if gr is not None else "is not a scalable kind"
            )
            conditions = _set_condition(
                conditions, _hpa_condition("AbleToScale", "False", "FailedGetScale", message, now)
            )
            status["conditions"] = conditions
            status.setdefault("currentReplicas", 0)
            status.setdefault("desiredReplicas", 0)
            self._set_status(HORIZONTALPODAUTOSCALERS, hpa, status)
            return
        low = int(spec.get("minReplicas") or 1)
        high = int(spec.get("maxReplicas") or low)
        current = _replicas(target)
        ready = "the HPA controller was able to get the target's current scale"
        conditions = _set_condition(conditions, _hpa_condition("AbleToScale", "True", "SucceededGetScale", ready, now))
        if current == 0 and low != 0:
            desired = 0
            conditions = _set_condition(
                conditions,
                _hpa_condition(
                    "ScalingActive",
                    "False",
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                    now,
                ),
            )
        else:
            desired = min(max(current, low), high)
            conditions = _set_condition(
                conditions,
                _hpa_condition(
                    "ScalingActive",
                    "True",
                    "ValidMetricFound",
                    "the emulator has no metrics: the recommendation is the current replica count within the bounds",
                    now,
                ),
            )
            if current > high:
                limited = (
                    "True",
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            elif current < low:
                limited = ("True", "TooFewReplicas", "the desired replica count is less than the minimum replica count")
            else:
                limited = ("False", "DesiredWithinRange", "the desired count is within the acceptable range")
            conditions = _set_condition(conditions, _hpa_condition("ScalingLimited", *limited, now))
        if desired != current and self._scale_target(gr, target, desired, now) is not None:
            conditions = _set_condition(
                conditions,
                _hpa_condition(
                    "AbleToScale",
                    "True",
                    "SucceededRescale",
                    f"the HPA controller was able to update the target scale to {desired}",
                    now,
                ),
            )
            status["lastScaleTime"] = fmt_time(now)
        status["observedGeneration"] = generation_of(hpa)
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        status["conditions"] = conditions
        self._set_status(HORIZONTALPODAUTOSCALERS, hpa, status)

    def _scale_target(self, gr: GroupResource, target: Obj, replicas: int, now: float) -> Obj | None:
        """Write ``spec.replicas`` as a ``/scale`` update by the HPA controller would: generation and managedFields."""
        kind = str(target.get("kind") or ("Deployment" if gr == DEPLOYMENTS else "StatefulSet"))

        def mutate(obj: Obj) -> None:
            before = copy.deepcopy(obj)
            obj.setdefault("spec", {})["replicas"] = replicas
            if _spec_like(obj) != _spec_like(before):  # what the API server does for any write
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

        return self._update(gr, target, mutate)

    def _sync_deployment(self, d: Obj, now: float) -> None:
        if is_deleting(d):
            return
        spec = d.get("spec") or {}
        replicas = _replicas(d)
        template = spec.get("template") or {}
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        surge, unavailable = _fenceposts(d)
        rses = sorted(
            (rs for rs in self._cache.owned(uid_of(d), REPLICASETS) if not is_deleting(rs)), key=_creation_key
        )
        want = template_without_hash(template)
        new_rs = next((rs for rs in rses if template_without_hash(rs["spec"]["template"]) == want), None)
        olds = [rs for rs in rses if rs is not new_rs]
        status: Obj = copy.deepcopy(d.get("status") or {})
        conditions: list[Obj] = list(status.get("conditions") or [])
        max_old_revision = max((_revision(rs) for rs in olds), default=0)
        annotations_patch: dict[str, str] = {}

        if spec.get("paused"):
            if new_rs is not None and not any(_replicas(rs, 0) for rs in olds) and _replicas(new_rs, 0) != replicas:
                new_rs = self._scale_rs(new_rs, replicas, d, surge)
            cond = get_condition(status, "Progressing")
            if cond is None or cond.get("reason") != "DeploymentPaused":
                conditions = _set_condition(
                    conditions,
                    _deployment_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now),
                )
            self._write_deployment_status(
                d, status, conditions=conditions, new_rs=new_rs, all_rs=[*olds, *([new_rs] if new_rs else [])], now=now
            )
            return
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == "DeploymentPaused":
            conditions = _set_condition(
                conditions,
                _deployment_condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now),
            )

        if new_rs is not None:
            revision = max_old_revision + 1
            if _revision(new_rs) < revision:
                new_rs = self._stamp_rs_revision(new_rs, d, revision)
            if not any(c.get("type") == "Progressing" for c in conditions):
                conditions = _set_condition(
                    conditions,
                    _deployment_condition(
                        "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{name_of(new_rs)}"', now
                    ),
                )
        old_active = [rs for rs in olds if _replicas(rs, 0) > 0]
        if new_rs is None and not (recreate and (old_active or self._old_pods_running(olds))):
            initial = replicas if recreate else _new_rs_replicas(replicas, surge, rses, None)
            new_rs = self._create_rs(
                d, template, revision=max_old_revision + 1, replicas=initial, surge=surge, status=status, now=now
            )
            if new_rs is None:
                return
            conditions = _set_condition(
                conditions,
                _deployment_condition(
                    "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name_of(new_rs)}"', now
                ),
            )
        if new_rs is not None:
            annotations_patch[REVISION_ANNOTATION] = str(_revision(new_rs))
        all_rs = [*olds, *([new_rs] if new_rs else [])]

        if recreate:
            olds = [self._scale_rs(rs, 0, d, surge) if _replicas(rs, 0) else rs for rs in olds]
            if (
                new_rs is not None
                and not old_active
                and not self._old_pods_running(olds)
                and _replicas(new_rs, 0) != replicas
            ):
                new_rs = self._scale_rs(new_rs, replicas, d, surge)
        elif new_rs is not None:
            target = _new_rs_replicas(replicas, surge, all_rs, new_rs)
            if target != _replicas(new_rs, 0):
                new_rs = self._scale_rs(new_rs, target, d, surge)
            else:
                olds = self._scale_down_olds(d, new_rs, olds, all_rs=all_rs, max_unavailable=unavailable, surge=surge)
        all_rs = [*olds, *([new_rs] if new_rs else [])]
        self._write_deployment_status(
            d,
            status,
            conditions=conditions,
            new_rs=new_rs,
            all_rs=all_rs,
            now=now,
            annotations_patch=annotations_patch,
            cleanup=olds,
        )

    def _old_pods_running(self, olds: Iterable[Obj]) -> bool:
        return any(not pod_terminal(p) for rs in olds for p in self._cache.owned(uid_of(rs), PODS))

    def _create_rs(
        self, d: Obj, template: Obj, *, revision: int, replicas: int, surge: int, status: Obj, now: float
    ) -> Obj | None:
        namespace = namespace_of(d)
        collisions = int(status.get("collisionCount") or 0)
        for _ in range(10):
            pod_hash = compute_hash(template_without_hash(template), collisions)
            name = f"{name_of(d)}-{pod_hash}"
            existing = self._cache.get(REPLICASETS, namespace, name)
            if existing is None:
                break
            collisions += 1
        else:
            logger.warning("deployment %s/%s: too many hash collisions", namespace, name_of(d))
            return None
        if collisions:
            status["collisionCount"] = collisions
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
                DESIRED_REPLICAS_ANNOTATION: str(_replicas(d)),
                MAX_REPLICAS_ANNOTATION: str(_replicas(d) + surge),
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
        created = self._create(REPLICASETS, rs)
        self._event(d, "Deployment", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        return created

    def _stamp_rs_revision(self, rs: Obj, d: Obj, revision: int) -> Obj:
        def mutate(obj: Obj) -> None:
            annotations = obj["metadata"].setdefault("annotations", {})
            for key, value in annotations_of(d).items():
                if key not in SKIPPED_ANNOTATIONS:
                    annotations[key] = value
            annotations[REVISION_ANNOTATION] = str(revision)

        return self._update(REPLICASETS, rs, mutate) or rs

    def _scale_rs(self, rs: Obj, replicas: int, d: Obj, surge: int) -> Obj:
        before = _replicas(rs, 0)

        def mutate(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["spec"]["minReadySeconds"] = int((d.get("spec") or {}).get("minReadySeconds") or 0)
            obj["metadata"]["generation"] = generation_of(obj) + 1
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[DESIRED_REPLICAS_ANNOTATION] = str(_replicas(d))
            annotations[MAX_REPLICAS_ANNOTATION] = str(_replicas(d) + surge)

        updated = self._update(REPLICASETS, rs, mutate)
        if updated is None:
            return rs
        direction = "up" if replicas > before else "down"
        self._event(
            d,
            "Deployment",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {name_of(rs)} from {before} to {replicas}",
        )
        return updated

    def _scale_down_olds(
        self, d: Obj, new_rs: Obj, olds: list[Obj], *, all_rs: list[Obj], max_unavailable: int, surge: int
    ) -> list[Obj]:
        """deployment/rolling.go reconcileOldReplicaSets: unhealthy old pods first, then down to minAvailable."""
        if sum(_replicas(rs, 0) for rs in olds) == 0:
            return olds
        all_pods = sum(_replicas(rs, 0) for rs in all_rs)
        min_available = _replicas(d) - max_unavailable
        new_unavailable = _replicas(new_rs, 0) - _status_int(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return olds
        result = {name_of(rs): rs for rs in olds}
        # cleanupUnhealthyReplicas
        total_down = 0
        for rs in sorted(olds, key=_creation_key):
            if total_down >= max_scaled_down:
                break
            current = _replicas(rs, 0)
            if current == 0:
                continue
            unhealthy = current - _status_int(rs, "availableReplicas")
            if unhealthy <= 0:
                continue
            down = min(max_scaled_down - total_down, unhealthy)
            result[name_of(rs)] = self._scale_rs(rs, current - down, d, surge)
            total_down += down
        olds = [result[name_of(rs)] for rs in olds]
        # scaleDownOldReplicaSetsForRollingUpdate
        available = sum(_status_int(rs, "availableReplicas") for rs in [*olds, new_rs])
        if available <= min_available:
            return olds
        remaining = min(available - min_available, max_scaled_down - total_down)
        for rs in sorted(olds, key=_creation_key):
            if remaining <= 0:
                break
            current = _replicas(rs, 0)
            if current == 0:
                continue
            down = min(current, remaining)
            result[name_of(rs)] = self._scale_rs(rs, current - down, d, surge)
            remaining -= down
        return [result[name_of(rs)] for rs in olds]

    def _write_deployment_status(
        self,
        d: Obj,
        status: Obj,
        *,
        conditions: list[Obj],
        new_rs: Obj | None,
        all_rs: list[Obj],
        now: float,
        annotations_patch: dict[str, str] | None = None,
        cleanup: list[Obj] | None = None,
    ) -> None:
        spec = d.get("spec") or {}
        replicas = _replicas(d)
        _, max_unavailable = _fenceposts(d)
        available = sum(_status_int(rs, "availableReplicas") for rs in all_rs)
        new: Obj = {
            "observedGeneration": generation_of(d),
            "replicas": sum(_status_int(rs, "replicas") for rs in all_rs),
            "updatedReplicas": _status_int(new_rs, "replicas") if new_rs else 0,
            "readyReplicas": sum(_status_int(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(replicas - available, 0),
        }
        if status.get("collisionCount"):
            new["collisionCount"] = status["collisionCount"]
        if available >= replicas - max_unavailable:
            cond = _deployment_condition(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now
            )
        else:
            cond = _deployment_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        conditions = _set_condition(conditions, cond)
        deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
        old_status = d.get("status") or {}
        current = next((c for c in conditions if c.get("type") == "Progressing"), None)
        if spec.get("paused") or deadline is None or deadline >= 2**31 - 1:
            if not spec.get("paused"):
                conditions = [c for c in conditions if c.get("type") != "Progressing"]
        elif not (
            new["replicas"] == new["updatedReplicas"] and current and current.get("reason") == "NewReplicaSetAvailable"
        ):
            rs_name = name_of(new_rs) if new_rs else ""
            complete = (
                new["updatedReplicas"] == replicas
                and new["replicas"] == replicas
                and available == replicas
                and new["observedGeneration"] >= generation_of(d)
            )
            if complete:
                conditions = _set_condition(
                    conditions,
                    _deployment_condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        f'ReplicaSet "{rs_name}" has successfully progressed.',
                        now,
                    ),
                )
            elif _progressed(old_status, new):
                cond = _deployment_condition(
                    "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', now
                )
                if current is not None and current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                conditions = [*(c for c in conditions if c.get("type") != "Progressing"), cond]
            elif current is not None and current.get("reason") != "NewReplicaSetAvailable":
                since = parse_time(current.get("lastUpdateTime")) or now
                if current.get("reason") == "ProgressDeadlineExceeded" or since + int(deadline) < now:
                    conditions = _set_condition(
                        conditions,
                        _deployment_condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs_name}" has timed out progressing.',
                            now,
                        ),
                    )
        new["conditions"] = conditions
        omit_zero(
            new,
            (
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
            ),
        )
        annotations_patch = annotations_patch or {}
        stale_annotations = any(annotations_of(d).get(k) != v for k, v in annotations_patch.items())
        if new != old_status or stale_annotations:

            def mutate(obj: Obj) -> None:
                obj["status"] = new
                if annotations_patch:
                    obj["metadata"].setdefault("annotations", {}).update(annotations_patch)

            self._update(DEPLOYMENTS, d, mutate)
        complete_now = (
            new.get("updatedReplicas", 0) == replicas
            and new.get("replicas", 0) == replicas
            and new.get("availableReplicas", 0) == replicas
        )
        if cleanup is not None and complete_now:
            self._cleanup_history(d, cleanup)

    def _cleanup_history(self, d: Obj, olds: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT)
        limit = DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
        idle = [rs for rs in olds if _replicas(rs, 0) == 0 and _status_int(rs, "replicas") == 0 and not is_deleting(rs)]
        excess = len(idle) - limit
        for rs in sorted(idle, key=_revision)[: max(excess, 0)]:
            for pod in self._cache.owned(uid_of(rs), PODS):
                self._delete(PODS, pod)
            self._delete(REPLICASETS, rs)

    # --- replicasets ----------------------------------------------------------------------------------------

    def _sync_replicaset(self, rs: Obj, now: float) -> None:
        if is_deleting(rs):
            return
        spec = rs.get("spec") or {}
        replicas = _replicas(rs)
        pods = [p for p in self._cache.owned(uid_of(rs), PODS) if pod_active(p)]
        diff = len(pods) - replicas
        if diff < 0:
            for _ in range(-diff):
                name = self._unique_pod_name(namespace_of(rs), name_of(rs))
                pods.append(
                    self._new_pod(rs, "ReplicaSet", spec.get("template") or {}, name=name, extra_labels={}, now=now)
                )
                self._event(rs, "ReplicaSet", "SuccessfulCreate", f"Created pod: {name}")
        elif diff > 0:
            ranked = sorted(pods, key=lambda p: _deletion_rank(p, now))
            for pod in ranked[:diff]:
                self._delete(PODS, pod)
                self._event(rs, "ReplicaSet", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
            doomed = {uid_of(p) for p in ranked[:diff]}
            pods = [p for p in pods if uid_of(p) not in doomed]
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
        self._set_status(
            REPLICASETS,
            rs,
            omit_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration")),
        )

    # --- statefulsets ---------------------------------------------------------------------------------------

    def _sync_statefulset(self, sts: Obj, now: float) -> None:
        if is_deleting(sts):
            return
        spec = sts.get("spec") or {}
        name, namespace = name_of(sts), namespace_of(sts)
        replicas = _replicas(sts)
        template = spec.get("template") or {}
        old_status: Obj = sts.get("status") or {}
        collisions = int(old_status.get("collisionCount") or 0)
        update_rev = f"{name}-{compute_hash(template, collisions)}"
        current_rev = str(old_status.get("currentRevision") or update_rev)
        self._ensure_revision(sts, "StatefulSet", update_rev, template, now)
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0) if rolling else 0
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"

        pods: dict[int, Obj] = {}
        for member in self._cache.owned(uid_of(sts), PODS):
            index = _ordinal(name_of(member), name)
            if index is not None and not is_deleting(member):
                pods[index] = member

        def healthy(pod: Obj) -> bool:
            return (pod.get("status") or {}).get("phase") == "Running" and condition_true(pod, "Ready")

        for ordinal in range(replicas):
            pod: Obj | None = pods.get(ordinal)
            if pod is not None and pod_terminal(pod):
                self._delete(PODS, pod)  # a failed stateful pod is recreated under the same identity
                pods.pop(ordinal)
                pod = None
            if pod is None:
                rev = current_rev if ordinal < partition and current_rev != update_rev else update_rev
                pod_template = self._revision_template(namespace, rev) or template
                pod_name = f"{name}-{ordinal}"
                if self._cache.get(PODS, namespace, pod_name) is not None:
                    break  # the previous incarnation is still being removed
                labels = {
                    CONTROLLER_REVISION_HASH: rev,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                }
                pod_template = copy.deepcopy(pod_template)
                pod_spec = pod_template.setdefault("spec", {})
                pod_spec.setdefault("hostname", pod_name)
                if spec.get("serviceName"):
                    pod_spec.setdefault("subdomain", spec["serviceName"])
                pods[ordinal] = self._new_pod(
                    sts, "StatefulSet", pod_template, name=pod_name, extra_labels=labels, now=now
                )
                if ordered:
                    break
            elif ordered and not healthy(pod):
                break
        condemned = sorted((o for o in pods if o >= replicas), reverse=True)
        for ordinal in condemned:
            if ordered and not all(healthy(p) for o, p in pods.items() if o < replicas):
                break
            self._delete(PODS, pods.pop(ordinal))
            if ordered:
                break
        if rolling and all(o in pods and healthy(pods[o]) for o in range(replicas)):
            for ordinal in sorted(pods, reverse=True):
                if ordinal < partition or ordinal >= replicas:
                    continue
                if labels_of(pods[ordinal]).get(CONTROLLER_REVISION_HASH) != update_rev:
                    self._delete(PODS, pods.pop(ordinal))
                    break
        active = [p for p in pods.values() if not pod_terminal(p)]
        ready = sum(1 for p in active if condition_true(p, "Ready"))
        updated = sum(1 for p in active if labels_of(p).get(CONTROLLER_REVISION_HASH) == update_rev)
        current = sum(1 for p in active if labels_of(p).get(CONTROLLER_REVISION_HASH) == current_rev)
        min_ready = int(spec.get("minReadySeconds") or 0)
        if updated == len(active) == replicas and ready == replicas:
            current_rev, current = update_rev, updated
        status: Obj = {
            "observedGeneration": generation_of(sts),
            "replicas": len(active),
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": sum(1 for p in active if pod_available(p, min_ready, now)),
            "currentRevision": current_rev,
            "updateRevision": update_rev,
            "collisionCount": collisions,
        }
        self._set_status(STATEFULSETS, sts, omit_zero(status, ("readyReplicas", "currentReplicas", "updatedReplicas")))

    def _ensure_revision(self, owner: Obj, kind: str, name: str, template: Obj, now: float) -> None:
        namespace = namespace_of(owner)
        if self._cache.get(CONTROLLERREVISIONS, namespace, name) is not None:
            return
        revisions = [int(cr.get("revision") or 0) for cr in self._cache.owned(uid_of(owner), CONTROLLERREVISIONS)]
        self._create(
            CONTROLLERREVISIONS,
            {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": new_uid(),
                    "creationTimestamp": fmt_time(now),
                    "labels": {
                        **(((template.get("metadata") or {}).get("labels")) or {}),
                        CONTROLLER_REVISION_HASH: name.rsplit("-", 1)[-1],
                    },
                    "ownerReferences": [owner_reference(owner, kind, "apps/v1")],
                },
                "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
                "revision": max(revisions, default=0) + 1,
            },
        )

    def _revision_template(self, namespace: str, name: str) -> Obj | None:
        cr = self._cache.get(CONTROLLERREVISIONS, namespace, name)
        if cr is None:
            return None
        template = dict(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
        template.pop("$patch", None)
        return template or None

    # --- daemonsets -----------------------------------------------------------------------------------------

    def _sync_daemonset(self, ds: Obj, now: float) -> None:
        if is_deleting(ds):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        old_status: Obj = ds.get("status") or {}
        collisions = int(old_status.get("collisionCount") or 0)
        pod_hash = compute_hash(template, collisions)
        self._ensure_revision(ds, "DaemonSet", f"{name_of(ds)}-{pod_hash}", template, now)
        node_selector = (template.get("spec") or {}).get("nodeSelector") or {}
        nodes = {name_of(n): n for n in self._cache.objects(NODES)}
        eligible = sorted(
            name
            for name, n in nodes.items()
            if node_ready(n)
            and not (n.get("spec") or {}).get("unschedulable")
            and all(labels_of(n).get(k) == v for k, v in node_selector.items())
        )
        by_node: dict[str, list[Obj]] = {}
        misscheduled = 0
        for pod in self._cache.owned(uid_of(ds), PODS):
            if not pod_active(pod):
                continue
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            if node not in eligible and node in nodes and node_ready(nodes[node]):
                self._delete(PODS, pod)
                misscheduled += 1
                continue
            by_node.setdefault(node, []).append(pod)
        for node in eligible:
            pods = sorted(by_node.get(node, []), key=_creation_key)
            for extra in pods[1:]:
                self._delete(PODS, extra)
            if pods:
                by_node[node] = pods[:1]
                continue
            pod_template = copy.deepcopy(template)
            pod_template.setdefault("spec", {})["nodeName"] = node
            labels = {CONTROLLER_REVISION_HASH: pod_hash, "pod-template-generation": str(generation_of(ds))}
            name = self._unique_pod_name(namespace_of(ds), name_of(ds))
            by_node[node] = [self._new_pod(ds, "DaemonSet", pod_template, name=name, extra_labels=labels, now=now)]
        strategy = spec.get("updateStrategy") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
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
                    self._delete(PODS, old[0])  # an unavailable old pod costs no availability to replace
                    by_node[node] = []
                elif unavailable < max_unavailable:
                    self._delete(PODS, old[0])
                    by_node[node] = []
                    unavailable += 1
        scheduled = [node for node in eligible if by_node.get(node)]
        pods_on_eligible = [by_node[node][0] for node in scheduled]
        available = sum(1 for p in pods_on_eligible if pod_available(p, min_ready, now))
        status: Obj = {
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": misscheduled,
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
        self._set_status(
            DAEMONSETS, ds, omit_zero(status, ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"))
        )

    # --- jobs -----------------------------------------------------------------------------------------------

    def _sync_job(self, job: Obj, now: float) -> None:
        if is_deleting(job):
            return
        spec = job.get("spec") or {}
        old_status: Obj = job.get("status") or {}
        finished = condition_true(job, "Complete") or condition_true(job, "Failed")
        pods = self._cache.owned(uid_of(job), PODS)
        active = [p for p in pods if pod_active(p)]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        completions = int(spec.get("completions") or 1)
        parallelism = _int_field(spec, "parallelism", 1)
        backoff_limit = _int_field(spec, "backoffLimit", 6)
        conditions: list[Obj] = list(old_status.get("conditions") or [])
        status: Obj = {"startTime": old_status.get("startTime") or fmt_time(now)}
        stamp = fmt_time(now)

        def condition(type_: str, reason: str, message: str) -> Obj:
            return {
                "type": type_,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
            }

        if not finished and not spec.get("suspend"):
            if failed > backoff_limit:
                for pod in active:
                    self._delete(PODS, pod)
                active = []
                message = "Job has reached the specified backoff limit"
                conditions += [
                    condition("FailureTarget", "BackoffLimitExceeded", message),
                    condition("Failed", "BackoffLimitExceeded", message),
                ]
            elif succeeded >= completions:
                conditions += [
                    condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                    condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
                ]
                status["completionTime"] = stamp
            else:
                want = min(parallelism, completions - succeeded)
                template = spec.get("template") or {}
                labels = {
                    "batch.kubernetes.io/controller-uid": uid_of(job),
                    "batch.kubernetes.io/job-name": name_of(job),
                    "controller-uid": uid_of(job),
                    "job-name": name_of(job),
                }
                for _ in range(want - len(active)):
                    name = self._unique_pod_name(namespace_of(job), name_of(job))
                    active.append(self._new_pod(job, "Job", template, name=name, extra_labels=labels, now=now))
        if old_status.get("completionTime"):
            status["completionTime"] = old_status["completionTime"]
        status.update(
            {
                "active": len(active),
                "succeeded": succeeded,
                "failed": failed,
                "ready": sum(1 for p in active if condition_true(p, "Ready")),
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
        )
        if conditions:
            status["conditions"] = conditions
        self._set_status(JOBS, job, omit_zero(status, ("active", "succeeded", "failed")))

    # --- scheduler and kubelet ------------------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        pending = sorted(
            (
                p
                for p in self._cache.objects(PODS)
                if not (p.get("spec") or {}).get("nodeName")
                and pod_active(p)
                and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"
            ),
            key=_creation_key,
        )
        if not pending:
            return
        nodes = sorted(self._cache.objects(NODES), key=name_of)
        usage: dict[str, list[float]] = {name_of(n): [0.0, 0.0, 0.0] for n in nodes}
        for pod in self._cache.objects(PODS):
            node = (pod.get("spec") or {}).get("nodeName")
            if node in usage and not pod_terminal(pod):
                cpu, mem = pod_requests(pod.get("spec") or {})
                usage[node][0] += cpu
                usage[node][1] += mem
                usage[node][2] += 1
        for pod in pending:
            spec = pod.get("spec") or {}
            cpu, mem = pod_requests(spec)
            selector = spec.get("nodeSelector") or {}
            reasons: Counter[str] = Counter()
            fits: list[tuple[float, str]] = []
            for node in nodes:
                node_name = name_of(node)
                allocatable = (node.get("status") or {}).get("allocatable") or {}
                if (node.get("spec") or {}).get("unschedulable"):
                    reasons["node(s) were unschedulable"] += 1
                    continue
                if not node_ready(node):
                    reasons["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"] += 1
                    continue
                if not all(labels_of(node).get(k) == v for k, v in selector.items()):
                    reasons["node(s) didn't match Pod's node affinity/selector"] += 1
                    continue
                used = usage[node_name]
                cap_cpu = parse_quantity(allocatable.get("cpu", 0))
                cap_mem = parse_quantity(allocatable.get("memory", 0))
                cap_pods = parse_quantity(allocatable.get("pods", 110))
                short = []
                if used[2] + 1 > cap_pods:
                    short.append("Too many pods")
                if used[0] + cpu > cap_cpu + 1e-9:
                    short.append("Insufficient cpu")
                if used[1] + mem > cap_mem:
                    short.append("Insufficient memory")
                if short:
                    reasons.update(short)
                    continue
                score = max(
                    (used[0] + cpu) / cap_cpu if cap_cpu else 1.0, (used[1] + mem) / cap_mem if cap_mem else 1.0
                )
                fits.append((score, node_name))
            if fits:
                _, chosen = min(fits)
                usage[chosen][0] += cpu
                usage[chosen][1] += mem
                usage[chosen][2] += 1
                self._bind(pod, chosen, now)
                continue
            if nodes:
                detail = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
                message = f"0/{len(nodes)} nodes are available: {detail}."
            else:
                message = "no nodes available to schedule pods"
            self._mark_unschedulable(pod, message, now)

    def _bind(self, pod: Obj, node: str, now: float) -> None:
        stamp = fmt_time(now)

        def mutate(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node
            status = obj.setdefault("status", {})
            status["conditions"] = [
                *(c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"),
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
            ]

        if self._update(PODS, pod, mutate) is not None:
            self._event(
                pod,
                "Pod",
                "Scheduled",
                f"Successfully assigned {namespace_of(pod)}/{name_of(pod)} to {node}",
                component="default-scheduler",
            )

    def _mark_unschedulable(self, pod: Obj, message: str, now: float) -> None:
        current = get_condition(pod.get("status"), "PodScheduled")
        if current is not None and current.get("message") == message and current.get("status") == "False":
            return
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": (current or {}).get("lastTransitionTime")
            if current and current.get("status") == "False"
            else fmt_time(now),
            "reason": "Unschedulable",
            "message": message,
        }

        def mutate(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            status["phase"] = "Pending"
            status["conditions"] = [
                *(c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"),
                cond,
            ]

        if self._update(PODS, pod, mutate) is not None:
            self._event(pod, "Pod", "FailedScheduling", message, warning=True, component="default-scheduler")

    def _run_kubelet(self, now: float) -> None:
        for pod in self._cache.objects(PODS):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                continue
            if is_deleting(pod):
                self._delete(PODS, pod)
                continue
            node = self._cache.get(NODES, "", str(node_name))
            if node is None or pod_terminal(pod):
                continue
            status = self.kubelet.desired_status(pod, node, now)
            health = self.kubelet.health_annotation(pod)
            if status == pod.get("status") and annotations_of(pod).get(HEALTH_ANNOTATION) == health:
                continue

            def mutate(obj: Obj, status: Obj = status, health: str = health) -> None:
                obj["status"] = status
                obj["metadata"].setdefault("annotations", {})[HEALTH_ANNOTATION] = health

            if self._update(PODS, pod, mutate) is not None:
                self._kubelet_events(pod, status)

    def _kubelet_events(self, pod: Obj, status: Obj) -> None:
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
            self._event(pod, "Pod", event_reason, message, warning=True, component="kubelet")


WARNING_EVENTS: dict[str, tuple[str, str]] = {
    "ErrImagePull": ("Failed", 'Failed to pull image "{image}": {detail}'),
    "ImagePullBackOff": ("BackOff", 'Back-off pulling image "{image}"'),
    "CrashLoopBackOff": ("BackOff", "Back-off restarting failed container {container} in pod"),
    "CreateContainerConfigError": ("Failed", "Error: {detail}"),
}


def _int_field(spec: Obj, field: str, default: int) -> int:
    value = spec.get(field)
    return default if value is None else int(value)


def _api_version(kind: str) -> str:
    return "batch/v1" if kind == "Job" else "apps/v1"


def _fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas, as deploymentutil.ResolveFenceposts."""
    spec = d.get("spec") or {}
    replicas = _replicas(d)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = int_or_percent(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = int_or_percent(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _new_rs_replicas(replicas: int, surge: int, all_rs: list[Obj], new_rs: Obj | None) -> int:
    """deploymentutil.NewRSNewReplicas for the rolling update strategy."""
    current_new = _replicas(new_rs, 0) if new_rs is not None else 0
    if current_new >= replicas:
        return replicas
    current_total = sum(_replicas(rs, 0) for rs in all_rs)
    max_total = replicas + surge
    if current_total >= max_total:
        return current_new
    return current_new + min(max_total - current_total, replicas - current_new)


def _progressed(old: Obj, new: Obj) -> bool:
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


def _deletion_rank(pod: Obj, now: float) -> tuple[int, int, int, float, int, float]:
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


def _ordinal(pod_name: str, sts_name: str) -> int | None:
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix) or not pod_name[len(prefix) :].isdigit():
        return None
    return int(pod_name[len(prefix) :])


__all__ = ["ControllerManager", "selector_matches"]
