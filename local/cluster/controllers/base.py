"""What every controller shares: the informer, the writes they make through the store, events and pod creation.

:class:`Context` is handed to each controller; it counts the writes the controllers make so the manager knows when
a pass changed nothing (the controllers have settled).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable

from local.cluster.clock import SimClock
from local.cluster.controllers.cache import Informer
from local.cluster.kubelet import Kubelet, qos_class
from local.cluster.objects import (
    CONTROLLER_REVISION_HASH,
    CONTROLLERREVISIONS,
    EVENTS,
    PODS,
    fmt_time,
    meta,
    name_of,
    namespace_of,
    new_uid,
    owner_reference,
    parse_time,
    random_suffix,
    uid_of,
)
from local.cluster.store import GroupResource, Obj, Store

EVENT_TTL = 3600.0  # the API server's default --event-ttl


def creation_key(obj: Obj) -> tuple[float, str]:
    return parse_time(meta(obj).get("creationTimestamp")) or 0.0, name_of(obj)


def replicas_of(obj: Obj, default: int = 1) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return default if value is None else int(value)


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def int_field(spec: Obj, field: str, default: int) -> int:
    value = spec.get(field)
    return default if value is None else int(value)


def set_condition(conditions: list[Obj], cond: Obj) -> list[Obj]:
    """deploymentutil.SetDeploymentCondition: no-op for the same status and reason; keeps the transition time."""
    current = next((c for c in conditions if c.get("type") == cond["type"]), None)
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return conditions
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    return [c for c in conditions if c.get("type") != cond["type"]] + [cond]


def spec_like(obj: Obj) -> Obj:
    """What the API server compares to decide whether a write bumps ``metadata.generation`` (``api._spec_like``)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def api_version_of(kind: str) -> str:
    return "batch/v1" if kind == "Job" else "apps/v1"


def pod_spec_defaults(spec: Obj) -> Obj:
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


class Context:
    """The informer plus every write a controller makes (counted, so a quiet pass can be recognised)."""

    def __init__(self, store: Store, clock: SimClock, cache: Informer, kubelet: Kubelet) -> None:
        self.store = store
        self.clock = clock
        self.cache = cache
        self.kubelet = kubelet
        self.writes = 0
        self.events: deque[tuple[float, str, str]] = deque()

    def create(self, gr: GroupResource, obj: Obj) -> Obj:
        self.writes += 1
        return self.store.put(gr, obj)

    def update(self, gr: GroupResource, cached: Obj, mutate: Callable[[Obj], None]) -> Obj | None:
        """Apply ``mutate`` to the stored version of ``cached`` (same uid), atomically; ``None`` if it is gone."""
        with self.store.lock:
            current = self.store.get(gr, namespace_of(cached), name_of(cached))
            if current is None or uid_of(current) != uid_of(cached):
                return None
            mutate(current)
            self.writes += 1
            return self.store.put(gr, current)

    def set_status(self, gr: GroupResource, cached: Obj, status: Obj) -> Obj | None:
        if cached.get("status") == status:
            return cached

        def mutate(obj: Obj) -> None:
            obj["status"] = status

        return self.update(gr, cached, mutate)

    def delete(self, gr: GroupResource, cached: Obj) -> None:
        with self.store.lock:
            current = self.store.get(gr, namespace_of(cached), name_of(cached))
            if current is None or uid_of(current) != uid_of(cached):
                return
            self.store.remove(gr, namespace_of(cached), name_of(cached))
            self.writes += 1
        if gr == PODS:
            self.kubelet.forget(uid_of(cached))

    def event(
        self, involved: Obj, kind: str, reason: str, message: str, *, warning: bool = False, component: str = ""
    ) -> None:
        now = self.clock.now()
        name = f"{name_of(involved)}.{new_uid().replace('-', '')[:16]}"
        namespace = namespace_of(involved) or "default"
        self.events.append((now, namespace, name))
        self.create(
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

    def events_due(self) -> float:
        """After when the oldest event the controllers recorded expires (``math.inf``: none)."""
        return self.events[0][0] + EVENT_TTL if self.events else math.inf

    def expire_events(self, now: float) -> None:
        while self.events and self.events[0][0] + EVENT_TTL < now:
            _, namespace, name = self.events.popleft()
            self.store.remove(EVENTS, namespace, name)

    def new_pod(
        self, owner: Obj, kind: str, template: Obj, *, name: str, extra_labels: dict[str, str], now: float
    ) -> Obj:
        tmeta = template.get("metadata") or {}
        spec = pod_spec_defaults(copy.deepcopy(template.get("spec") or {}))
        pod_meta: Obj = {
            "name": name,
            "namespace": namespace_of(owner),
            "uid": new_uid(),
            "creationTimestamp": fmt_time(now),
            "labels": {**(tmeta.get("labels") or {}), **extra_labels},
            "ownerReferences": [owner_reference(owner, kind, str(owner.get("apiVersion") or api_version_of(kind)))],
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
        return self.create(PODS, pod)

    def unique_pod_name(self, namespace: str, prefix: str) -> str:
        for _ in range(100):
            name = f"{prefix}-{random_suffix()}"
            if self.cache.get(PODS, namespace, name) is None:
                return name
        raise RuntimeError(f"no free pod name for {namespace}/{prefix}")

    # --- controller revisions (StatefulSet and DaemonSet history) ------------------------------------------------

    def ensure_revision(self, owner: Obj, kind: str, name: str, template: Obj, now: float) -> None:
        namespace = namespace_of(owner)
        if self.cache.get(CONTROLLERREVISIONS, namespace, name) is not None:
            return
        revisions = [int(cr.get("revision") or 0) for cr in self.cache.owned(uid_of(owner), CONTROLLERREVISIONS)]
        self.create(
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

    def revision_template(self, namespace: str, name: str) -> Obj | None:
        cr = self.cache.get(CONTROLLERREVISIONS, namespace, name)
        if cr is None:
            return None
        template = dict(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
        template.pop("$patch", None)
        return template or None
