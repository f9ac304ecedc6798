"""A pure controller harness: Store + SimClock + node pool + controller manager, no sockets.

``Sim.apply`` does what the API layer does on a write (uid, creationTimestamp, generation bump on spec change) and
then reconciles, as the API layer does after every successful write.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local.cluster.clock import SimClock
from local.cluster.controllers import ControllerManager
from local.cluster.kubelet import ImageBehaviours
from local.cluster.nodes import NodePool
from local.cluster.objects import DEPLOYMENTS, PODS, REPLICASETS, controller_uid, fmt_time, new_uid
from local.cluster.store import GroupResource, Obj, Store

START = 1_750_000_000.0


class Sim:
    def __init__(self, *, nodes: int = 3, instance_type: str = "t3.medium") -> None:
        self.store = Store()
        self.clock = SimClock(start=START)
        self.images = ImageBehaviours()
        self.nodes = NodePool(self.store, self.clock)
        if nodes:
            self.nodes.set_group("general", nodes, instance_type, boot_seconds=0)
        self.manager = ControllerManager(self.store, self.clock, self.images, self.nodes)

    def apply(self, gr: GroupResource, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        current = self.store.get(gr, meta["namespace"], meta["name"])
        if current is None:
            meta.update(uid=new_uid(), creationTimestamp=fmt_time(self.clock.now()), generation=1)
        else:
            meta.update(
                uid=current["metadata"]["uid"],
                creationTimestamp=current["metadata"]["creationTimestamp"],
                generation=current["metadata"]["generation"] + (obj.get("spec") != current.get("spec")),
            )
            merged_annotations = {**current["metadata"].get("annotations", {}), **meta.get("annotations", {})}
            meta["annotations"] = merged_annotations
            obj["status"] = current.get("status", {})
        stored = self.store.put(gr, obj)
        self.manager.reconcile()
        return stored

    def get(self, gr: GroupResource, name: str, namespace: str = "default") -> Obj:
        obj = self.store.get(gr, namespace, name)
        assert obj is not None, f"{gr} {namespace}/{name} not found"
        return obj

    def owned(self, gr: GroupResource, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [o for o in self.store.list(gr) if controller_uid(o) == uid]

    def replicasets(self, deployment: str) -> list[Obj]:
        return self.owned(REPLICASETS, self.get(DEPLOYMENTS, deployment))

    def pods_of(self, deployment: str) -> list[Obj]:
        return [p for rs in self.replicasets(deployment) for p in self.owned(PODS, rs)]

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


def deployment(
    name: str, image: str, replicas: int = 3, *, strategy: Obj | None = None, cpu: str = "100m", **spec: Any
) -> Obj:
    labels = {"app": name}
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "resources": {"requests": {"cpu": cpu, "memory": "128Mi"}},
                        }
                    ]
                },
            },
            **spec,
        },
    }
    if strategy is not None:
        body["spec"]["strategy"] = strategy
    return body


def with_image(obj: Obj, image: str) -> Obj:
    changed = copy.deepcopy(obj)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return changed


@pytest.fixture
def sim() -> Sim:
    return Sim()


class RolloutDeadlineExceededError(Exception):
    """kubectl rollout status gives up: the deployment exceeded its progress deadline."""


def rollout_status(d: Obj) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer (kubectl/pkg/polymorphichelpers/rollout_status.go), line for line."""
    name = d["metadata"]["name"]
    status = d.get("status", {})
    if d["metadata"].get("generation", 0) <= status.get("observedGeneration", 0):
        for cond in status.get("conditions", []):
            if cond["type"] == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                raise RolloutDeadlineExceededError(f'deployment "{name}" exceeded its progress deadline')
        replicas = d["spec"].get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        if updated < replicas:
            return f"{updated} out of {replicas} new replicas have been updated...", False
        if status.get("replicas", 0) > updated:
            return f"{status.get('replicas', 0) - updated} old replicas are pending termination...", False
        if status.get("availableReplicas", 0) < updated:
            return f"{status.get('availableReplicas', 0)} of {updated} updated replicas are available...", False
        return f'deployment "{name}" successfully rolled out', True
    return "Waiting for deployment spec update to be observed...", False
