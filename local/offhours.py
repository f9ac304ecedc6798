"""Off-hours scaling on the local cloud: the deploy pipeline (``local.pipeline``) plus EKS node groups named the way
CloudFormation names them, and the off-hours state machine run through the real ASL.

Used by the off-hours e2e tests and the bench. The emulator starts without default nodes: every node belongs to a
node group, so scaling a group to zero really leaves pods Pending.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from controlplane import platform
from controlplane.kube.client import ClusterAccess, build_api_client, dynamic_client, request_json

from local.nodegroups import LOGICAL_IDS, eks_nodegroup_config
from local.pipeline import CLUSTER_NAME, REGION, Pipeline, pipeline

OFFHOURS_MACHINE = "OffHoursStateMachine"
SCALE_DOWN_SCHEDULE = "OffHoursStateMachineScaleDownEvening"
SCALE_UP_SCHEDULE = "OffHoursStateMachineScaleUpMorning"
NS = platform.NAMESPACE
GENERAL = LOGICAL_IDS["GeneralNodeGroup"][0]
SPOT = LOGICAL_IDS["SpotNodeGroup"][0]
COMPUTE = LOGICAL_IDS["ComputeIntensiveNodeGroup"][0]


def nodegroups() -> dict[str, Any]:
    """The staging node groups (manifests/cloudformation/eks.yaml), with CloudFormation-generated names, the
    stack's labels and taints."""
    from local.aws import NodegroupSpec  # noqa: PLC0415 - the harness imports moto: only when needed

    return {
        GENERAL: NodegroupSpec(
            "t3.medium", desired=2, min_size=2, max_size=3, **eks_nodegroup_config("GeneralNodeGroup")
        ),
        SPOT: NodegroupSpec("t3.large", desired=1, min_size=0, max_size=3, **eks_nodegroup_config("SpotNodeGroup")),
        COMPUTE: NodegroupSpec(
            "c6i.xlarge", desired=0, min_size=0, max_size=2, **eks_nodegroup_config("ComputeIntensiveNodeGroup")
        ),
    }


@dataclass
class OffhoursPipeline:
    """A :class:`Pipeline` whose cluster has node groups, and the off-hours machine's controls."""

    pipe: Pipeline

    @property
    def cloud(self) -> Any:
        return self.pipe.cloud

    @property
    def cluster(self) -> Any:
        return self.pipe.cluster

    # -- runs --------------------------------------------------------------------------------------------------------
    def run(self, action: str, timeout: float | None = None, **extra: Any) -> Any:
        """A person's off-hours action through the operator API (mode ``action``; ``until``, ``reason``), finished."""
        arn = self.pipe.start_as_operator({"action": "offhours", "environment": "staging", "mode": action, **extra})
        return self.cloud.wait_execution(arn, timeout=timeout)

    def fire(self, schedule: str, timeout: float | None = None) -> Any:
        """Fire an EventBridge Scheduler schedule by name (or logical id); the execution it started, finished."""
        delivery = self.cloud.fire_schedule(schedule)
        assert delivery.execution_arn, delivery
        return self.cloud.wait_execution(delivery.execution_arn, timeout=timeout)

    # -- what is live ------------------------------------------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any]:
        api = build_api_client(
            ClusterAccess(endpoint=self.cluster.endpoint, ca_data=self.cluster.ca_data, token=self.cluster.token())
        )
        try:
            return request_json(dynamic_client(api), "GET", path)[1]
        finally:
            api.close()

    def workloads(self) -> dict[str, int]:
        items = self.get(f"/apis/apps/v1/namespaces/{NS}/deployments").get("items") or []
        stateful = self.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets").get("items") or []
        return {
            **{f"Deployment/{o['metadata']['name']}": int(o["spec"]["replicas"]) for o in items},
            **{f"StatefulSet/{o['metadata']['name']}": int(o["spec"]["replicas"]) for o in stateful},
        }

    def hpas(self) -> dict[str, tuple[int | None, int]]:
        items = self.get(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers").get("items") or []
        return {o["metadata"]["name"]: (o["spec"].get("minReplicas"), int(o["spec"]["maxReplicas"])) for o in items}

    def nodegroup_sizes(self) -> dict[str, tuple[int, int, int]]:
        """``name -> (minSize, maxSize, desiredSize)`` as EKS reports them."""
        eks = self.cloud.client("eks")
        out = {}
        for name in eks.list_nodegroups(clusterName=CLUSTER_NAME)["nodegroups"]:
            scaling = eks.describe_nodegroup(clusterName=CLUSTER_NAME, nodegroupName=name)["nodegroup"]
            config = scaling["scalingConfig"]
            out[name] = (config["minSize"], config["maxSize"], config["desiredSize"])
        return out

    def state(self) -> dict[str, Any]:
        """Everything off-hours scaling may change, as plain values."""
        return {"workloads": self.workloads(), "hpas": self.hpas(), "nodegroups": self.nodegroup_sizes()}

    def ready_nodes(self) -> int:
        items = self.get("/api/v1/nodes").get("items") or []
        return sum(
            1
            for n in items
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions", [])
            )
        )

    def pods(self, name: str) -> list[dict[str, Any]]:
        items = self.get(f"/api/v1/namespaces/{NS}/pods").get("items") or []
        return [p for p in items if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == name]

    def ledger_item(self, sk: str) -> dict[str, Any] | None:
        item = self.cloud.client("dynamodb").get_item(
            TableName=str(self.cloud.ref("LedgerTable")), Key={"pk": {"S": "ENV#staging"}, "sk": {"S": sk}}
        )
        found: dict[str, Any] | None = item.get("Item")
        return found


def config_parameter(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


@contextmanager
def offhours_pipeline(cluster: Any, **overrides: Any) -> Iterator[OffhoursPipeline]:
    """The pipeline on ``cluster`` (made with ``default_nodes=False``) with the staging node groups, booted."""
    with pipeline(cluster, **overrides) as pipe:
        pipe.cloud.register_cluster(CLUSTER_NAME, cluster, nodegroups=nodegroups())
        cluster.advance(120)  # the node groups' nodes boot
        yield OffhoursPipeline(pipe)


__all__ = [
    "COMPUTE",
    "GENERAL",
    "OFFHOURS_MACHINE",
    "REGION",
    "SCALE_DOWN_SCHEDULE",
    "SCALE_UP_SCHEDULE",
    "SPOT",
    "OffhoursPipeline",
    "config_parameter",
    "nodegroups",
    "offhours_pipeline",
]
