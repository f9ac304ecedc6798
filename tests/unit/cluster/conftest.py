"""A controller harness without sockets: an emulated cluster that is never started, written through its API server.

``Sim.apply`` hands the object to the emulator's own request handler as a server-side apply (what the deployer and
``kubectl apply --server-side`` send), so uid, creationTimestamp, generation, defaulting, validation and
managedFields come from the API server's code, and its controllers reconcile after the write as they do over HTTPS.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from local.cluster import Cluster, creator_token
from local.cluster.clock import SimClock
from local.cluster.objects import DEPLOYMENTS, PODS, REPLICASETS, controller_uid
from local.cluster.store import GroupResource, Obj
from local.cluster.wire import Request

START = 1_750_000_000.0
CLUSTER = "sts-staging"
FIELD_MANAGER = "unit-tests"
_TOKEN_TTL_S = 600.0  # tokens are valid 15 minutes of wall time; minting one costs a botocore client
_token: tuple[float, str] | None = None


def _bearer() -> str:
    global _token  # noqa: PLW0603 - one token shared by every Sim of the session, refreshed before it expires
    if _token is None or time.monotonic() - _token[0] > _TOKEN_TTL_S:
        _token = (time.monotonic(), creator_token(CLUSTER))
    return f"Bearer {_token[1]}"


def _path(gr: GroupResource, obj: Obj) -> str:
    meta = obj["metadata"]
    prefix = f"/apis/{obj['apiVersion']}" if gr.group else f"/api/{obj['apiVersion']}"
    return f"{prefix}/namespaces/{meta['namespace']}/{gr.resource}/{meta['name']}"


class Sim:
    def __init__(self, *, nodes: int = 3, instance_type: str = "t3.medium") -> None:
        self.cluster = Cluster(CLUSTER, clock=SimClock(start=START), default_nodes=False)
        self.store = self.cluster.store
        self.clock = self.cluster.clock
        self.images = self.cluster.images
        self.nodes = self.cluster.nodes
        self.manager = self.cluster.controllers
        if nodes:
            self.nodes.set_group("general", nodes, instance_type, boot_seconds=0)

    def apply(self, gr: GroupResource, obj: Obj) -> Obj:
        """Server-side apply ``obj`` (namespace ``default`` unless it names one); returns what the server stored."""
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        response = self.cluster.api.handle(
            Request(
                method="PATCH",
                path=_path(gr, obj),
                query={"fieldManager": [FIELD_MANAGER], "force": ["true"]},
                headers={"Authorization": _bearer(), "Content-Type": "application/apply-patch+yaml"},
                body=json.dumps(obj).encode(),
            )
        )
        assert response.status in (200, 201), f"apply {gr} {obj['metadata']['name']}: {response.body.decode()}"
        stored: Obj = json.loads(response.body)
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
        self.cluster.advance(seconds)


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
