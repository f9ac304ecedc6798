"""Is the release healthy yet? kubectl's rollout-status rules plus fail-fast pod checks; one look, no waiting.

The rollout verdicts follow ``kubectl/pkg/polymorphichelpers/rollout_status.go`` (``kubectl rollout status``):

- Deployment: once ``metadata.generation <= status.observedGeneration``: a Progressing condition with reason
  ``ProgressDeadlineExceeded`` fails; then it waits while ``updatedReplicas < spec.replicas``, while
  ``status.replicas > updatedReplicas`` (old replicas pending termination) and while
  ``availableReplicas < updatedReplicas``.
- StatefulSet (RollingUpdate): observed generation, ``readyReplicas`` against ``spec.replicas``, the partition,
  then ``updateRevision == currentRevision``.
- DaemonSet (RollingUpdate): observed generation, ``updatedNumberScheduled`` and ``numberAvailable`` against
  ``desiredNumberScheduled``.

Waiting for a progress deadline (10 minutes by default) is slow for states that will not heal, so
:func:`pod_failures` fails fast on pods of the *new* revision:

- waiting with ``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName`` or ``CreateContainerConfigError``
  for longer than the short definitive grace (``definitive_grace_seconds``, a few seconds: a Secret the External
  Secrets Operator writes a moment later still heals); a registry's own failure (429/5xx, timeouts) for longer than
  the grace period (``grace_seconds``: a throttling registry may recover);
- waiting with ``CrashLoopBackOff`` after at least ``restart_threshold`` restarts (no grace: the restarts are the
  evidence; 1 is the kubelet's first back-off);
- unschedulable (condition ``PodScheduled`` False, reason ``Unschedulable``), judged by what the cluster
  autoscaler said about the pod (its latest Event, :func:`autoscaler_verdicts`): ``TriggeredScaleUp`` (a node is
  being added for it) keeps it waiting, up to the readiness deadline; ``NotTriggerScaleUp`` (no node group can run
  it even after a scale-up: ``max node group size reached``, ``node(s) didn't match Pod's node affinity/selector``,
  ``Insufficient cpu`` on every group's template) fails it after the short definitive grace; without either (no
  autoscaler, or not yet looked) it fails after the grace period;
- running but not ready for longer than the readiness deadline (``NeverReady``: a readiness probe that never passes
  fails within the deadline, not the 10-minute progress deadline): the Deployment's
  ``synthetictrialstudio.io/readiness-deadline-seconds`` annotation, else the caller's default.

:func:`assess` judges a snapshot (what the API server last reported) at a given time, and :func:`next_judgement`
says when that judgement could next change without any news (a grace period or a deadline running out): the watch
of :mod:`controlplane.kube.watch` wakes up then.

Each failure says who it is on (``blame``), because only the image's failures quarantine its digest:

- ``image``: a crash loop, an image that cannot be pulled (not found, invalid name), a container the kubelet cannot
  create for a reason of the image (``runAsNonRoot`` and an image running as root), probes that never pass
  (``ProgressDeadlineExceeded``);
- ``platform``: a Secret, ConfigMap or key the pod refers to is missing (``CreateContainerConfigError`` with the
  kubelet's ``secret "x" not found`` / ``configmap "x" not found`` / ``couldn't find key`` message), no node can
  run the pod (``Unschedulable``), a registry that throttles or fails (``ErrImagePull`` with 429/5xx), a workload
  object that does not exist.

How long a container state has lasted: the pod's ``ContainersReady`` condition, when False, records when the
containers last stopped being ready (for a new pod, about when it started); else the pod's ``startTime``; else its
``creationTimestamp``. Unschedulable uses the ``PodScheduled`` condition's ``lastTransitionTime``. The
kubelet reports no timestamp for a waiting state, so these are the closest the API offers. Terminating pods
(``deletionTimestamp``) and finished ones (phase Succeeded/Failed) are not judged.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from controlplane.errors import InputValidationError
from controlplane.kube.client import ApiClient, dynamic_client, list_objects
from controlplane.kube.errors import translate_errors
from controlplane.models.kube import Blame, HealthReport, ObjectRef, PodFailure, RolloutStatus
from controlplane.platform import READINESS_DEADLINE_ANNOTATION

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"

IMAGE_OR_CONFIG_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"}
)
CRASH_LOOP = "CrashLoopBackOff"
UNSCHEDULABLE = "Unschedulable"
NEVER_READY = "NeverReady"
# The kubelet's messages for a pod that refers to platform objects that are missing (kuberuntime_container.go,
# kubelet_pods.go makeEnvironmentVariables) and a registry's own failures (containerd's "unexpected status ...").
_MISSING_PLATFORM_OBJECT = re.compile(
    r'(secret|configmap) "[^"]*" not found|couldn\'t find key|secrets? "[^"]*" is forbidden', re.IGNORECASE
)
_REGISTRY_FAILURE = re.compile(
    r"toomanyrequests|too many requests|\b(429|500|502|503|504)\b|service unavailable|i/o timeout|"
    r"connection reset|TLS handshake timeout",
    re.IGNORECASE,
)

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Judge:
    """How pods are judged: the arguments :func:`pod_failures` takes besides the pods (``readiness_seconds`` is the
    default a workload's own readiness-deadline annotation overrides)."""

    grace_seconds: int = 60
    restart_threshold: int = 3
    readiness_seconds: int | None = None
    definitive_grace_seconds: int | None = None


DEFAULT_JUDGE: Final = Judge()

AUTOSCALER: Final = "cluster-autoscaler"
"""The Events' ``source.component`` of the Cluster Autoscaler (its event recorder's)."""
SCALE_UP_TRIGGERED: Final = "TriggeredScaleUp"
SCALE_UP_NOT_TRIGGERED: Final = "NotTriggerScaleUp"


def deployment_status(obj: Obj) -> RolloutStatus:
    """kubectl's verdict on a Deployment (``kubectl rollout status deployment/<name>``)."""
    meta, spec, status = _parts(obj)
    name = meta.get("name")
    ref = _ref(obj)
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return _waiting(ref, "SpecNotObserved", "Waiting for deployment spec update to be observed...")
    progressing = _condition(status, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        message = f'deployment "{name}" exceeded its progress deadline'
        if progressing.get("message"):
            message += f": {progressing['message']}"
        return RolloutStatus(ref=ref, done=False, failed=True, reason="ProgressDeadlineExceeded", message=message)
    wanted = spec.get("replicas")
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    prefix = f'Waiting for deployment "{name}" rollout to finish'
    if wanted is not None and updated < wanted:
        return _waiting(
            ref, "UpdatingReplicas", f"{prefix}: {updated} out of {wanted} new replicas have been updated..."
        )
    if replicas > updated:
        return _waiting(
            ref, "OldReplicasPending", f"{prefix}: {replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return _waiting(
            ref, "ReplicasUnavailable", f"{prefix}: {available} of {updated} updated replicas are available..."
        )
    return RolloutStatus(ref=ref, done=True, reason="RolledOut", message=f'deployment "{name}" successfully rolled out')


def statefulset_status(obj: Obj) -> RolloutStatus:
    """kubectl's verdict on a StatefulSet (only RollingUpdate has a rollout status; others count as done)."""
    meta, spec, status = _parts(obj)
    ref = _ref(obj)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return RolloutStatus(
            ref=ref, done=True, reason="NoRolloutStatus", message="rollout status is only available for RollingUpdate"
        )
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or _int(meta.get("generation")) > observed:
        return _waiting(ref, "SpecNotObserved", "Waiting for statefulset spec update to be observed...")
    wanted = spec.get("replicas")
    ready = _int(status.get("readyReplicas"))
    if wanted is not None and ready < wanted:
        return _waiting(ref, "ReplicasNotReady", f"Waiting for {wanted - ready} pods to be ready...")
    updated = _int(status.get("updatedReplicas"))
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = rolling.get("partition")
        if wanted is not None and partition is not None and updated < wanted - partition:
            return _waiting(
                ref,
                "PartitionedRolloutPending",
                f"Waiting for partitioned roll out to finish: {updated} out of {wanted - partition} new pods "
                "have been updated...",
            )
        return RolloutStatus(
            ref=ref,
            done=True,
            reason="RolledOut",
            message=f"partitioned roll out complete: {updated} new pods have been updated...",
        )
    update_revision, current_revision = status.get("updateRevision"), status.get("currentRevision")
    if update_revision != current_revision:
        return _waiting(
            ref,
            "RevisionPending",
            f"waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}...",
        )
    return RolloutStatus(
        ref=ref,
        done=True,
        reason="RolledOut",
        message=f"statefulset rolling update complete {_int(status.get('currentReplicas'))} pods at revision "
        f"{current_revision}...",
    )


def daemonset_status(obj: Obj) -> RolloutStatus:
    """kubectl's verdict on a DaemonSet (only RollingUpdate has a rollout status; others count as done)."""
    meta, spec, status = _parts(obj)
    name = meta.get("name")
    ref = _ref(obj)
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return RolloutStatus(
            ref=ref, done=True, reason="NoRolloutStatus", message="rollout status is only available for RollingUpdate"
        )
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return _waiting(ref, "SpecNotObserved", "Waiting for daemon set spec update to be observed...")
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    prefix = f'Waiting for daemon set "{name}" rollout to finish'
    if updated < desired:
        return _waiting(ref, "UpdatingPods", f"{prefix}: {updated} out of {desired} new pods have been updated...")
    if available < desired:
        return _waiting(ref, "PodsUnavailable", f"{prefix}: {available} of {desired} updated pods are available...")
    return RolloutStatus(ref=ref, done=True, reason="RolledOut", message=f'daemon set "{name}" successfully rolled out')


STATUS_VIEWERS: dict[str, Callable[[Obj], RolloutStatus]] = {
    "Deployment": deployment_status,
    "StatefulSet": statefulset_status,
    "DaemonSet": daemonset_status,
}


def rollout_status(obj: Obj) -> RolloutStatus:
    """The verdict for a Deployment, StatefulSet or DaemonSet, by its kind."""
    viewer = STATUS_VIEWERS.get(str(obj.get("kind")))
    if viewer is None:
        raise InputValidationError(
            f"no rollout status for kind {obj.get('kind')!r}; known: {', '.join(STATUS_VIEWERS)}"
        )
    return viewer(obj)


def pod_failures(
    pods: Iterable[Obj],
    *,
    now: datetime,
    grace_seconds: int = 60,
    restart_threshold: int = 3,
    readiness_seconds: int | None = None,
    definitive_grace_seconds: int | None = None,
    autoscaler: Mapping[str, Obj] | None = None,
) -> list[PodFailure]:
    """Pods (of the new revision) in states that waiting will not heal; with ``readiness_seconds``, also pods whose
    running containers stayed unready longer than that.

    How long a state must last first: a crash loop none (the restart threshold is its evidence); a registry's own
    failure (429/5xx) and an unschedulable pod ``grace_seconds``; every other image or config error (not found, an
    invalid name, a missing Secret) ``definitive_grace_seconds`` (``grace_seconds`` when unset). An unschedulable pod
    with an entry in ``autoscaler`` (pod uid -> the cluster autoscaler's latest Event on it) is judged by it (see the
    module docstring). ``now`` should be timezone-aware; a naive value is taken as UTC.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    grace = timedelta(seconds=grace_seconds)
    definitive = grace if definitive_grace_seconds is None else timedelta(seconds=definitive_grace_seconds)
    failures: list[PodFailure] = []
    for pod in pods:
        meta, _, status = _parts(pod)
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        scheduled = _unschedulable_condition(status)
        if scheduled is not None:
            event = (autoscaler or {}).get(str(meta.get("uid")))
            failures += _unschedulable(
                meta, scheduled, event, now=now, bound=_unschedulable_bound(grace, definitive, readiness_seconds, event)
            )
            continue
        since = _containers_unready_since(meta, status)
        if since is None:
            continue
        waited = now - since
        found = [
            f
            for f in _failing_containers(meta, status, since=since, restart_threshold=restart_threshold)
            if waited > _lasts_before_failing(f, grace, definitive)
        ]
        if not found and readiness_seconds is not None and waited > timedelta(seconds=readiness_seconds):
            found = _never_ready(meta, status, since=since, deadline=readiness_seconds)
        failures += found
    return failures


def _lasts_before_failing(failure: PodFailure, grace: timedelta, definitive: timedelta) -> timedelta:
    if failure.reason == CRASH_LOOP:
        return timedelta(0)
    if failure.blame == "platform" and failure.reason != "CreateContainerConfigError":
        return grace  # a registry that throttles or fails may recover
    return definitive


def _never_ready(meta: Obj, status: Obj, *, since: datetime, deadline: int) -> list[PodFailure]:
    """The pod's running containers that are not ready, past the readiness deadline (blamed on the image)."""
    return [
        PodFailure(
            namespace=str(meta.get("namespace", "")),
            pod=str(meta.get("name", "")),
            container=container.get("name"),
            reason=NEVER_READY,
            message=f"running but not ready for over {deadline} s (its readiness probe never passed)",
            since=since,
            restart_count=_int(container.get("restartCount")),
            blame="image",
        )
        for container in status.get("containerStatuses") or []
        if (container.get("state") or {}).get("running") is not None and not container.get("ready")
    ]


def _unschedulable_condition(status: Obj) -> Obj | None:
    """The pod's ``PodScheduled`` condition when it says no node can run the pod."""
    scheduled = _condition(status, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == UNSCHEDULABLE:
        return scheduled
    return None


def _unschedulable_bound(
    grace: timedelta, definitive: timedelta, readiness_seconds: int | None, event: Obj | None
) -> timedelta:
    """How long an unschedulable pod may wait: the readiness deadline while the autoscaler adds a node for it, the
    definitive grace once it said no node group can run it (so its word fails a pod unschedulable for longer at
    once: the autoscaler looks every 10 s), else the grace period."""
    if event is None:
        return grace
    if event.get("reason") == SCALE_UP_NOT_TRIGGERED:
        return definitive
    return max(grace, timedelta(seconds=readiness_seconds)) if readiness_seconds is not None else grace


def _unschedulable_since(meta: Obj, scheduled: Obj) -> datetime | None:
    """Since when the pod has been unschedulable (its ``PodScheduled`` condition's transition)."""
    return _time(scheduled.get("lastTransitionTime")) or _time(meta.get("creationTimestamp"))


def _unschedulable(
    meta: Obj, scheduled: Obj, event: Obj | None, *, now: datetime, bound: timedelta
) -> list[PodFailure]:
    """The pod no node can run, once that has lasted over ``bound``, with what the scheduler and the cluster
    autoscaler said about it."""
    since = _unschedulable_since(meta, scheduled)
    if not since or now - since <= bound:
        return []
    message = str(scheduled.get("message") or "no node can run the pod")
    if event is not None and event.get("reason") == SCALE_UP_NOT_TRIGGERED:
        message = f"no node group can run it even after a scale-up ({event.get('message')}); {message}"
    elif event is not None:
        message = f"still no node for it {int(bound.total_seconds())} s after {event.get('message')}; {message}"
    return [
        PodFailure(
            namespace=str(meta.get("namespace", "")),
            pod=str(meta.get("name", "")),
            reason=UNSCHEDULABLE,
            message=message,
            since=since,
            blame="platform",
        )
    ]


def autoscaler_verdicts(objects: Iterable[Obj]) -> dict[str, Obj]:
    """pod uid -> the cluster autoscaler's latest ``TriggeredScaleUp``/``NotTriggerScaleUp`` Event on it, among
    ``objects`` (other objects and events are ignored)."""
    latest: dict[str, Obj] = {}
    for obj in objects:
        involved = obj.get("involvedObject") or {}
        if (
            obj.get("kind") != "Event"
            or obj.get("reason") not in (SCALE_UP_TRIGGERED, SCALE_UP_NOT_TRIGGERED)
            or involved.get("kind") != "Pod"
            or not involved.get("uid")
        ):
            continue
        uid = str(involved["uid"])
        if uid not in latest or _event_order(obj) > _event_order(latest[uid]):
            latest[uid] = obj
    return latest


def event_time(event: Obj) -> datetime | None:
    """When an Event last happened (``lastTimestamp``, else ``eventTime``, else its creation)."""
    meta = event.get("metadata") or {}
    return _time(event.get("lastTimestamp")) or _time(event.get("eventTime")) or _time(meta.get("creationTimestamp"))


def _event_order(event: Obj) -> tuple[datetime, int]:
    version = str((event.get("metadata") or {}).get("resourceVersion") or "0")
    return event_time(event) or datetime.min.replace(tzinfo=UTC), int(version) if version.isdigit() else 0


def unschedulable_pods(objects: Iterable[Obj]) -> bool:
    """Whether any pod among ``objects`` is unschedulable (then its Events are worth reading)."""
    for obj in objects:
        if obj.get("kind") == "Pod" and _unschedulable_condition(obj.get("status") or {}) is not None:
            return True
    return False


def _failing_containers(meta: Obj, status: Obj, *, since: datetime, restart_threshold: int) -> list[PodFailure]:
    """The pod's (init) containers in a state waiting will not heal."""
    failures = []
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        failure = _container_failure(container, restart_threshold)
        if failure is not None:
            reason, message = failure
            failures.append(
                PodFailure(
                    namespace=str(meta.get("namespace", "")),
                    pod=str(meta.get("name", "")),
                    container=container.get("name"),
                    reason=reason,
                    message=message,
                    since=since,
                    restart_count=_int(container.get("restartCount")),
                    blame=blame_of(reason, message),
                )
            )
    return failures


def blame_of(reason: str, message: str) -> Blame:
    """Whether a container's failing state is on the image or on the platform (see the module docstring)."""
    if reason == UNSCHEDULABLE:
        return "platform"
    if reason == "CreateContainerConfigError" and _MISSING_PLATFORM_OBJECT.search(message):
        return "platform"
    if reason == "ErrImagePull" and _REGISTRY_FAILURE.search(message):
        return "platform"
    return "image"


Snapshot = dict[str, dict[tuple[str, str], dict[str, Any]]]
"""namespace -> (kind, name) -> object: the workloads, their ReplicaSets and Pods as the API server last reported."""


def validated_refs(workloads: Iterable[ObjectRef]) -> list[ObjectRef]:
    """``workloads`` without duplicates; :class:`InputValidationError` for one without a rollout status or namespace."""
    refs = list(dict.fromkeys(workloads))
    for ref in refs:
        if ref.kind not in STATUS_VIEWERS:
            raise InputValidationError(f"{ref.key}: not a workload with a rollout status ({', '.join(STATUS_VIEWERS)})")
        if not ref.namespace:
            raise InputValidationError(f"{ref.key}: a workload needs a namespace")
    return refs


def watched_kinds(refs: Sequence[ObjectRef]) -> dict[str, set[tuple[str, str]]]:
    """namespace -> the (apiVersion, kind)s to read there: the workloads' kinds, ReplicaSets (for Deployments), Pods."""
    kinds: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for ref in refs:
        namespace = str(ref.namespace)
        kinds[namespace] |= {(ref.api_version, ref.kind), ("v1", "Pod")}
        if ref.kind == "Deployment":
            kinds[namespace].add(("apps/v1", "ReplicaSet"))
    return kinds


EVENTS: Final = ("v1", "Event")
"""The pods' Events (core/v1): the cluster autoscaler's TriggeredScaleUp / NotTriggerScaleUp on a pending pod."""
AUTOSCALER_EVENTS: Final = f"source={AUTOSCALER}"
"""The field selector of the cluster autoscaler's Events (core/v1 events select ``source`` = source.component)."""


def health_reads(refs: Sequence[ObjectRef]) -> dict[str, set[tuple[str, str]]]:
    """namespace -> every (apiVersion, kind) the health and bake steps may list and watch there: :func:`watched_kinds`
    and, for pods no node can run yet, their Events."""
    return {namespace: kinds | {EVENTS} for namespace, kinds in watched_kinds(refs).items()}


def check_workloads(
    api: ApiClient,
    workloads: Iterable[ObjectRef],
    *,
    now: datetime,
    judge: Judge = DEFAULT_JUDGE,
) -> HealthReport:
    """One look at ``workloads``: each one's rollout status and its new revision's failing pods (never-ready pods
    past the workload's readiness deadline, or ``readiness_seconds``, when either is set).

    Requests: per namespace, one list per workload kind, one list of ReplicaSets (when there are Deployments)
    and one list of Pods, and one of the cluster autoscaler's Events when a pod there is unschedulable; never one
    request per workload.
    """
    refs = validated_refs(workloads)
    dyn = dynamic_client(api)
    snapshot: Snapshot = {}
    for namespace, kinds in watched_kinds(refs).items():
        with translate_errors(f"workloads in namespace {namespace}"):
            snapshot[namespace] = _list_kinds(dyn, namespace, kinds)
            if unschedulable_pods(snapshot[namespace].values()):  # what the cluster autoscaler said about them
                snapshot[namespace].update(_list_kinds(dyn, namespace, {EVENTS}, field_selector=AUTOSCALER_EVENTS))
    return assess(refs, snapshot, now=now, judge=judge)


def assess(
    refs: Sequence[ObjectRef],
    snapshot: Snapshot,
    *,
    now: datetime,
    judge: Judge = DEFAULT_JUDGE,
) -> HealthReport:
    """The verdict on ``refs`` from what the API server reported (``snapshot``), judged at ``now``."""
    statuses: list[RolloutStatus] = []
    failures: list[PodFailure] = []
    verdicts: dict[str, dict[str, Obj]] = {}  # namespace -> the autoscaler's word on its pods
    for ref in refs:
        objects = snapshot.get(str(ref.namespace), {})
        obj = objects.get((ref.kind, ref.name))
        if obj is None:
            statuses.append(
                RolloutStatus(ref=ref, done=False, failed=True, reason="NotFound", message=f"{ref.key} does not exist")
            )
            continue
        statuses.append(rollout_status(obj))
        found = pod_failures(
            new_revision_pods(obj, objects),
            now=now,
            grace_seconds=judge.grace_seconds,
            restart_threshold=judge.restart_threshold,
            readiness_seconds=_readiness_deadline(obj, judge.readiness_seconds),
            definitive_grace_seconds=judge.definitive_grace_seconds,
            autoscaler=verdicts.setdefault(str(ref.namespace), autoscaler_verdicts(objects.values())),
        )
        failures.extend(f.model_copy(update={"workload": ref}) for f in found)
    healthy = all(s.done and not s.failed for s in statuses) and not failures
    return HealthReport(checked_at=now, healthy=healthy, workloads=tuple(statuses), failures=tuple(failures))


def next_judgement(
    refs: Sequence[ObjectRef],
    snapshot: Snapshot,
    *,
    now: datetime,
    judge: Judge = DEFAULT_JUDGE,
) -> datetime | None:
    """The earliest moment after ``now`` when :func:`assess` could fail a pending pod with no further change reported
    (a grace period or a readiness deadline running out); ``None`` when no pod is waiting on one."""
    moments: list[datetime] = []
    verdicts: dict[str, dict[str, Obj]] = {}
    for ref in refs:
        objects = snapshot.get(str(ref.namespace), {})
        obj = objects.get((ref.kind, ref.name))
        if obj is None:
            continue
        deadline = _readiness_deadline(obj, judge.readiness_seconds)
        said = verdicts.setdefault(str(ref.namespace), autoscaler_verdicts(objects.values()))
        for pod in new_revision_pods(obj, objects):
            event = said.get(str((pod.get("metadata") or {}).get("uid")))
            moments += _pod_moments(pod, judge, deadline, event)
    later = [m for m in moments if m > now]
    return min(later) if later else None


def _pod_moments(pod: Obj, judge: Judge, readiness_seconds: int | None, event: Obj | None) -> list[datetime]:
    """When this pod's grace period and readiness deadline run out (the moments :func:`pod_failures` compares)."""
    grace_seconds, definitive_grace_seconds = judge.grace_seconds, judge.definitive_grace_seconds
    meta, _, status = _parts(pod)
    if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return []
    scheduled = _condition(status, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        grace = timedelta(seconds=grace_seconds)
        definitive = grace if definitive_grace_seconds is None else timedelta(seconds=definitive_grace_seconds)
        since = _unschedulable_since(meta, scheduled)
        bound = _unschedulable_bound(grace, definitive, readiness_seconds, event)
        return [since + bound + timedelta(microseconds=1)] if since else []
    ready = _condition(status, "Ready")
    since = _containers_unready_since(meta, status)
    if (ready and ready.get("status") == "True") or since is None:
        return []
    waits: set[int] = set()
    if _image_or_config_waiting(status):
        waits |= {grace_seconds, definitive_grace_seconds if definitive_grace_seconds is not None else grace_seconds}
    if readiness_seconds is not None:
        waits.add(readiness_seconds)
    return [since + timedelta(seconds=w, microseconds=1) for w in waits]


def _image_or_config_waiting(status: Obj) -> bool:
    containers = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    reasons = {((c.get("state") or {}).get("waiting") or {}).get("reason") for c in containers}
    return bool(reasons & IMAGE_OR_CONFIG_REASONS)


def _readiness_deadline(workload: Obj, default: int | None) -> int | None:
    """The workload's readiness deadline annotation (seconds), else ``default``."""
    value = ((workload.get("metadata") or {}).get("annotations") or {}).get(READINESS_DEADLINE_ANNOTATION)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy a LabelSelector (matchLabels and matchExpressions); ``None`` matches nothing."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_holds(e, labels) for e in selector.get("matchExpressions") or [])


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One ``matchExpressions`` entry; an operator we do not know is not held against the labels."""
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    present = key in labels
    if operator in ("In", "NotIn"):
        found = present and labels[str(key)] in values
        return found if operator == "In" else not found
    if operator in ("Exists", "DoesNotExist"):
        return present if operator == "Exists" else not present
    return True


def current_replicaset(deployment: Obj, replicasets: Iterable[Obj]) -> Obj | None:
    """The Deployment's ReplicaSet of its current revision (same revision annotation, owned by it)."""
    meta = deployment.get("metadata") or {}
    revision = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
    if revision is None:
        return None
    for rs in replicasets:
        rs_meta = rs.get("metadata") or {}
        if (rs_meta.get("annotations") or {}).get(REVISION_ANNOTATION) == revision and _owned_by(rs, deployment):
            return rs
    return None


def new_revision_pods(workload: Obj, objects: Mapping[tuple[str, str], Obj]) -> list[Obj]:
    """The pods of ``workload``'s new revision among ``objects`` (its namespace's ReplicaSets and Pods)."""
    pods = [o for (kind, _), o in objects.items() if kind == "Pod"]
    if workload.get("kind") != "Deployment":
        return _controlled_pods(workload, pods)
    rs = current_replicaset(workload, [o for (kind, _), o in objects.items() if kind == "ReplicaSet"])
    if rs is None:
        return []
    rs_selector = (rs.get("spec") or {}).get("selector")
    return [p for p in pods if selector_matches(rs_selector, _labels(p))]


def _controlled_pods(workload: Obj, pods: Sequence[Obj]) -> list[Obj]:
    """A StatefulSet's pods of its update revision; a DaemonSet's pods it owns (or nobody owns)."""
    matching = [p for p in pods if selector_matches((workload.get("spec") or {}).get("selector"), _labels(p))]
    update_revision = (workload.get("status") or {}).get("updateRevision")
    if workload.get("kind") == "StatefulSet" and update_revision:
        return [p for p in matching if _labels(p).get(CONTROLLER_REVISION_HASH) == update_revision]
    return [p for p in matching if _owned_by(p, workload) or not (p.get("metadata") or {}).get("ownerReferences")]


def _list_kinds(
    dyn: Any, namespace: str, kinds: set[tuple[str, str]], *, field_selector: str | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) → object for every object of ``kinds`` in ``namespace``; one list request per kind."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for api_version, kind in sorted(kinds):
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        for item in list_objects(dyn, resource, namespace, field_selector=field_selector):
            found[(kind, item["metadata"]["name"])] = item
    return found


def _container_failure(container: Obj, restart_threshold: int) -> tuple[str, str] | None:
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason")
    message = str(waiting.get("message") or "")
    if reason in IMAGE_OR_CONFIG_REASONS:
        return str(reason), message or f"container {container.get('name')} is waiting: {reason}"
    if reason == CRASH_LOOP and _int(container.get("restartCount")) >= restart_threshold:
        last = (container.get("lastState") or {}).get("terminated") or {}
        detail = f"exit code {last.get('exitCode')}" if last.get("exitCode") is not None else "no exit code"
        if last.get("reason"):
            detail += f" ({last['reason']})"
        if last.get("message"):
            detail += f": {last['message']}"
        return (
            CRASH_LOOP,
            f"restarted {container.get('restartCount')} times; last termination {detail}. {message}".strip(),
        )
    return None


def _containers_unready_since(meta: Obj, status: Obj) -> datetime | None:
    ready = _condition(status, "ContainersReady")
    if ready and ready.get("status") == "False":
        since = _time(ready.get("lastTransitionTime"))
        if since:
            return since
    return _time(status.get("startTime")) or _time(meta.get("creationTimestamp"))


def _owned_by(obj: Obj, owner: Obj) -> bool:
    uid = (owner.get("metadata") or {}).get("uid")
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return uid is None or any(r.get("uid") == uid for r in refs)


def _parts(obj: Obj) -> tuple[Obj, Obj, Obj]:
    return obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}


def _ref(obj: Obj) -> ObjectRef | None:
    try:
        return ObjectRef.of(obj)
    except (KeyError, ValueError):
        return None


def _labels(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _waiting(ref: ObjectRef | None, reason: str, message: str) -> RolloutStatus:
    return RolloutStatus(ref=ref, done=False, reason=reason, message=message)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
