"""The controller manager: runs every controller in passes until a pass changes nothing."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from local.cluster.clock import SimClock
from local.cluster.controllers.autoscaler import ClusterAutoscaler
from local.cluster.controllers.base import Context
from local.cluster.controllers.cache import Informer
from local.cluster.controllers.daemonset import DaemonSetController
from local.cluster.controllers.deployment import DeploymentController
from local.cluster.controllers.disruption import DisruptionController
from local.cluster.controllers.eviction import TaintEviction
from local.cluster.controllers.garbage import GarbageCollector
from local.cluster.controllers.hpa import HpaController
from local.cluster.controllers.job import JobController
from local.cluster.controllers.podstatus import PodStatusSync
from local.cluster.controllers.replicaset import ReplicaSetController
from local.cluster.controllers.rootca import RootCaPublisher
from local.cluster.controllers.scheduler import Scheduler
from local.cluster.controllers.statefulset import StatefulSetController
from local.cluster.kubelet import ImageBehaviours, Kubelet
from local.cluster.nodes import NodePool
from local.cluster.objects import (
    DAEMONSETS,
    DEPLOYMENTS,
    HORIZONTALPODAUTOSCALERS,
    JOBS,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    pod_ready_since,
    uid_of,
)
from local.cluster.store import GroupResource, Obj, Store

logger = logging.getLogger(__name__)

MAX_PASSES = 50


class ControllerManager:
    """Every controller the emulator runs, reconciled together. Thread-safe; reconciles are serialised.

    With ``root_ca`` (the cluster CA's PEM) it also publishes the ``kube-root-ca.crt`` ConfigMap in every namespace.
    The cluster autoscaler acts only while its add-on runs and discovers ``cluster_name``'s node groups.
    It reconciles on every tick of the simulated clock and after node group changes; the API layer calls
    :meth:`reconcile` after each successful write. Never call it while holding ``store.lock``: reconcile takes its own
    lock, then the store's.
    """

    def __init__(
        self,
        store: Store,
        clock: SimClock,
        images: ImageBehaviours,
        nodes: NodePool,
        *,
        root_ca: str | None = None,
        cluster_name: str = "sts-staging",
    ) -> None:
        self._clock = clock
        self._nodes = nodes
        self.kubelet = Kubelet(images)
        self._lock = threading.RLock()
        self._running = False
        self._dirty = False
        self._settled_at: int | None = None  # the store's resourceVersion after the last pass that wrote nothing
        cache = Informer()
        self._ctx = Context(store, clock, cache, self.kubelet)
        self._gc = GarbageCollector(self._ctx)
        self._eviction = TaintEviction(self._ctx)
        self._deployments = DeploymentController(self._ctx)
        self._workloads: list[tuple[GroupResource, Callable[[Obj, float], None]]] = [
            (HORIZONTALPODAUTOSCALERS, HpaController(self._ctx).sync),
            (DEPLOYMENTS, self._deployments.sync),
            (REPLICASETS, ReplicaSetController(self._ctx).sync),
            (STATEFULSETS, StatefulSetController(self._ctx).sync),
            (DAEMONSETS, DaemonSetController(self._ctx).sync),
            (JOBS, JobController(self._ctx).sync),
            (PODDISRUPTIONBUDGETS, DisruptionController(self._ctx).sync),
        ]
        self._root_ca = RootCaPublisher(self._ctx, root_ca) if root_ca is not None else None
        self._scheduler = Scheduler(self._ctx)
        self._autoscaler = ClusterAutoscaler(self._ctx, nodes, cluster_name)
        self._pod_status = PodStatusSync(self._ctx)
        store.subscribe(cache.on_event)
        cache.prime(store)
        clock.subscribe(self._on_tick, due=self.next_due)
        nodes.subscribe(self.reconcile)

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
                self._settled_at = None
                for _ in range(MAX_PASSES):
                    self._dirty = False
                    before = self._ctx.writes
                    self._pass(self._clock.now())
                    if not self._dirty and self._ctx.writes == before:
                        self._settled_at = self._ctx.store.resource_version
                        return
                logger.warning("controllers did not settle after %d passes", MAX_PASSES)
            finally:
                self._running = False

    def next_due(self, now: float) -> float:
        """The earliest simulated time after ``now`` at which a pass could write something with nothing written
        from outside meanwhile (``math.inf``: never; ``now``: cannot tell, tick as usual). What the clock alone moves:
        a booting node turning Ready, a container's next transition (ready, exit, restart, pull retry, completion), a
        pod's ``minReadySeconds`` running out, a toleration's ``tolerationSeconds``, a rollout's progress deadline,
        the cluster autoscaler's next loop (while it runs and a pod is unschedulable) and an event's expiry. Every
        other decision of the controllers depends on the objects only, which did not change since the last pass
        wrote nothing."""
        with self._lock:
            if self._running or self._settled_at is None or self._settled_at != self._ctx.store.resource_version:
                return now
            deadlines = (self._deployments.deadline_due(d) for d in self._ctx.cache.objects(DEPLOYMENTS) if uid_of(d))
            return min(
                self._nodes.next_ready(),
                self._pod_status.next_due(now),
                self._available_due(now),
                self._eviction.next_due(now),
                self._autoscaler.next_due(),
                min(deadlines, default=math.inf),
                self._ctx.events_due(),
            )

    def _available_due(self, now: float) -> float:
        """When the next ready pod becomes available to a controller with ``minReadySeconds`` (every such delay is
        tried on every ready pod: a superset of the real moments, never later than one)."""
        delays = {
            int((obj.get("spec") or {}).get("minReadySeconds") or 0)
            for gr in (REPLICASETS, STATEFULSETS, DAEMONSETS)
            for obj in self._ctx.cache.objects(gr)
        } - {0}
        if not delays:
            return math.inf
        since = [s for pod in self._ctx.cache.objects(PODS) if (s := pod_ready_since(pod)) is not None]
        return min((s + d for s in since for d in delays if s + d > now), default=math.inf)

    def _pass(self, now: float) -> None:
        self._autoscaler.catch_up(now, self._clock.tick_seconds)
        if self._nodes.tick(now):
            self._ctx.writes += 1
        self._gc.run(now)
        self._eviction.run(now)
        for gr, sync in self._workloads:
            for obj in self._ctx.cache.objects(gr):
                if uid_of(obj):  # the API layer assigns uids; an object without one is not ours to own
                    sync(obj, now)
        self._scheduler.run(now)
        self._autoscaler.run(now)
        self._pod_status.run(now)
        if self._root_ca is not None:
            self._root_ca.run(now)
