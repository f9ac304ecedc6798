"""The controller manager: runs every controller in passes until a pass changes nothing."""

from __future__ import annotations

import logging
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
    REPLICASETS,
    STATEFULSETS,
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
        cache = Informer()
        self._ctx = Context(store, clock, cache, self.kubelet)
        self._gc = GarbageCollector(self._ctx)
        self._eviction = TaintEviction(self._ctx)
        self._workloads: list[tuple[GroupResource, Callable[[Obj, float], None]]] = [
            (HORIZONTALPODAUTOSCALERS, HpaController(self._ctx).sync),
            (DEPLOYMENTS, DeploymentController(self._ctx).sync),
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
        clock.subscribe(self._on_tick)
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
                for _ in range(MAX_PASSES):
                    self._dirty = False
                    before = self._ctx.writes
                    self._pass(self._clock.now())
                    if not self._dirty and self._ctx.writes == before:
                        return
                logger.warning("controllers did not settle after %d passes", MAX_PASSES)
            finally:
                self._running = False

    def _pass(self, now: float) -> None:
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
