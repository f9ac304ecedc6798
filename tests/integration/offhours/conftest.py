"""Off-hours steps against the Kubernetes emulator over HTTPS and moto (EKS node groups, the ledger table).

``World`` drives the steps the way the state machine does (same order, Wait loops as ``cluster.advance``), so these
tests exercise every step, adapter and ledger write; the e2e tests run the real ASL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import pytest
from controlplane import platform
from controlplane.aws import eks, lock, signing
from controlplane.aws.lock import LockTable, lock_key
from controlplane.aws.offhours import OffhoursLedger
from controlplane.aws.table import Fence
from controlplane.kube.apply import OWNERSHIP_LABEL, OWNERSHIP_VALUE, apply_objects
from controlplane.kube.client import ApiClient, ClusterAccess, build_api_client, dynamic_client, request_json
from controlplane.models.lease import Lease
from controlplane.models.lock import LockPurpose, LockRequest
from controlplane.models.offhours import NodesState, OffhoursRequest, SleepPlan, StepContext, WakeState, WakeSummary
from controlplane.models.operator import OperatorAction, OperatorSignature
from controlplane.settings import reset_settings
from controlplane.steps import offhours

from local.aws import LocalCloud, NodegroupSpec
from local.cluster import Cluster

NS = platform.NAMESPACE
CLUSTER = "sts-staging"
TABLE = "offhours-ledger"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-trials/{name}@sha256:" + "a" * 64
OWNED = {OWNERSHIP_LABEL: OWNERSHIP_VALUE}
NODEGROUPS = {
    "general": NodegroupSpec("t3.medium", desired=2, min_size=2, max_size=3),
    "spot": NodegroupSpec("t3.large", desired=1, min_size=0, max_size=3),
}
CONFIG = {"nodegroups": [{"match": "general", "desired": 1}, {"match": "*", "desired": 0}]}
# The seed's staging sizes and HPA ranges.
STAGING = {
    "api-gateway": (2, 2, 4),
    "edc-service": (1, 1, 3),
    "data-generation-service": (1, 1, 2),
    "analytics-service": (1, 1, 3),
    "quality-service": (1, 1, 2),
    "security-service": (1, 1, 2),
    "daft-analytics-service": (1, 1, 2),
}


def namespace(name: str = NS, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(OWNED), "annotations": dict(annotations)},
    }


def workload(
    name: str, replicas: int, *, kind: str = "Deployment", ns: str = NS, image: str | None = None, **annotations: str
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": name,
                        "image": image or IMAGE.format(name=name),
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ]
            },
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": {**labels, **OWNED}, "annotations": dict(annotations)},
        "spec": spec,
    }


def hpa(name: str, low: int | None, high: int, *, kind: str = "Deployment", ns: str = NS) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name},
        "maxReplicas": high,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                  "averageUtilization": 70}}}],
    }  # fmt: skip
    if low is not None:
        spec["minReplicas"] = low
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ns, "labels": dict(OWNED)},
        "spec": spec,
    }


def staging_release() -> list[dict[str, Any]]:
    objects = [namespace()]
    for name, (replicas, low, high) in STAGING.items():
        objects += [workload(name, replicas), hpa(name, low, high)]
    return objects


@dataclass
class World:
    cloud: Any
    cluster: Any
    api: ApiClient
    execution: int = 0

    # -- time and context -------------------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.cluster.clock.utcnow()  # type: ignore[no-any-return]

    def ctx(self, action: str = "down", trigger: str = "console", *, by: str = "ana", **extra: Any) -> StepContext:
        """A step context for one execution; a person's (``console``) request is signed as the operator API signs it,
        as the role session ``by``."""
        self.execution += 1
        name = f"run-{self.execution}"
        arn = f"arn:aws:states:us-east-1:123456789012:execution:offhours:{name}"
        request = OffhoursRequest.model_validate(
            {"environment": "staging", "action": action, "trigger": trigger} | extra
        )
        if trigger == "console":
            raw = request.model_dump(mode="json", exclude_unset=True)
            unsigned = OperatorSignature(
                principal=f"arn:aws:sts::123456789012:assumed-role/operator/{by}",
                action=OperatorAction.OFFHOURS,
                signed_at=self.now,
                mac="AA==",
            )
            mac = signing.sign(decision_key(), unsigned.material(execution_name=name, request=raw))
            request = request.model_copy(update={"operator": unsigned.model_copy(update={"mac": mac})})
        return StepContext(request=request, execution_arn=arn, now=self.now, lease=self.hold_lock(arn))

    def fence(self) -> Fence:
        """The fence of a deploy that holds the lock now (ApplyRelease writes a sleeping snapshot behind it)."""
        self.execution += 1
        return lock.fence(
            self.hold_lock(f"arn:aws:states:us-east-1:123456789012:execution:deploy:run-{self.execution}")
        )

    def hold_lock(self, arn: str) -> Lease:
        """AcquireLock, as the state machine runs it before every step after Begin: this execution's lease (the
        World's executions run one after the other: the previous one's lock is let go first)."""
        table = LockTable(TABLE, region="us-east-1")
        table.table.delete(lock_key("staging"))
        request = LockRequest(environment="staging", owner=arn, purpose=LockPurpose.SCALE)
        token = table.try_acquire(request, now=int(self.now.timestamp()), ttl_s=10**9)
        assert token is not None
        return Lease(environment="staging", owner=arn, token=token)

    def at_now(self, ctx: StepContext) -> StepContext:
        return ctx.model_copy(update={"now": self.now})

    # -- the procedure, as the state machine runs it ----------------------------------------------------------------
    def apply(self, objects: list[dict[str, Any]], release_id: str = "r1") -> None:
        apply_objects(self.api, objects, release_id=release_id, force=True)
        self.cluster.advance(5)

    def scale_down(self, trigger: str = "console") -> SleepPlan:
        ctx = self.ctx("down", trigger)
        offhours.begin(ctx)
        plan = offhours.record_request(ctx)
        if not plan.sleep:
            return plan
        plan = offhours.snapshot_environment(ctx)
        offhours.sleep_workloads(self.at_now(ctx))
        offhours.sleep_nodegroups(self.at_now(ctx))
        self.cluster.advance(5)
        return plan

    def wake_nodes(self, ctx: StepContext, *, wait_s: int = 15) -> NodesState:
        nodes = offhours.wake_nodegroups(ctx)
        while not nodes.ready and not nodes.timed_out:
            self.cluster.advance(wait_s)
            nodes = offhours.check_nodes(self.at_now(ctx), nodes)
        return nodes

    def wake_workloads(self, ctx: StepContext, nodes: NodesState | None, *, wait_s: int = 10) -> WakeState:
        state = offhours.restore_wave(self.at_now(ctx), None, nodes)
        while not state.done:
            self.cluster.advance(wait_s)
            state = offhours.check_wave(self.at_now(ctx), state)
            if not state.done and state.wave_deadline is None:
                state = offhours.restore_wave(self.at_now(ctx), state)
        return state

    def scale_up(self) -> WakeSummary:
        ctx = self.ctx("up")
        offhours.begin(ctx)
        offhours.record_request(ctx)
        nodes = self.wake_nodes(ctx)
        state = self.wake_workloads(ctx, nodes)
        return offhours.finish_wake(self.at_now(ctx), state)

    # -- what is live -----------------------------------------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any]:
        return request_json(dynamic_client(self.api), "GET", path)[1]

    def replicas(self, name: str, kind: str = "deployments", ns: str = NS) -> int:
        return int(self.get(f"/apis/apps/v1/namespaces/{ns}/{kind}/{name}")["spec"]["replicas"])

    def workload_object(self, name: str, kind: str = "deployments", ns: str = NS) -> dict[str, Any]:
        return self.get(f"/apis/apps/v1/namespaces/{ns}/{kind}/{name}")

    def hpa_bounds(self, name: str, ns: str = NS) -> tuple[int | None, int]:
        spec = self.get(f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}")["spec"]
        return spec.get("minReplicas"), int(spec["maxReplicas"])

    def nodegroups(self) -> dict[str, tuple[int, int, int]]:
        client = boto3.client("eks", region_name="us-east-1")
        out = {}
        for name in client.list_nodegroups(clusterName=CLUSTER)["nodegroups"]:
            scaling = client.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]["scalingConfig"]
            out[name] = (scaling["minSize"], scaling["maxSize"], scaling["desiredSize"])
        return out

    def nodes(self) -> int:
        return len(self.get("/api/v1/nodes").get("items") or [])

    def pods(self, name: str, ns: str = NS) -> list[dict[str, Any]]:
        items = self.get(f"/api/v1/namespaces/{ns}/pods").get("items") or []
        return [p for p in items if p["metadata"].get("labels", {}).get("app.kubernetes.io/name") == name]

    def state(self) -> dict[str, Any]:
        """Everything off-hours scaling may change, as plain values."""
        items = self.get(f"/apis/apps/v1/namespaces/{NS}/deployments").get("items") or []
        stateful = self.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets").get("items") or []
        hpas = self.get(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers").get("items") or []
        return {
            "workloads": {
                **{f"Deployment/{o['metadata']['name']}": o["spec"]["replicas"] for o in items},
                **{f"StatefulSet/{o['metadata']['name']}": o["spec"]["replicas"] for o in stateful},
            },
            "hpas": {o["metadata"]["name"]: (o["spec"].get("minReplicas"), o["spec"]["maxReplicas"]) for o in hpas},
            "nodegroups": self.nodegroups(),
        }

    @property
    def ledger(self) -> OffhoursLedger:
        return OffhoursLedger(TABLE, region="us-east-1")


def _table() -> None:
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )


@pytest.fixture
def cluster() -> Iterator[Any]:
    with Cluster(CLUSTER, default_nodes=False) as emulator:
        yield emulator


@pytest.fixture
def offhours_env(monkeypatch: pytest.MonkeyPatch, aws_credentials: None) -> None:
    for key, value in {
        "ENVIRONMENT": "staging",
        "ACCOUNT_ID": "123456789012",
        "CLUSTER_NAME": CLUSTER,
        "LEDGER_TABLE_NAME": TABLE,
        "OFFHOURS_CONFIG": json.dumps(CONFIG),
        "OFFHOURS_SCHEDULED": "true",  # staging runs its schedules: their unsigned requests are honoured
        "POWERTOOLS_METRICS_NAMESPACE": "SyntheticTrialStudio",
        "POWERTOOLS_SERVICE_NAME": "offhours",
    }.items():
        monkeypatch.setenv(key, value)


def decision_key() -> str:
    """The operator API's signing key (``DECISION_KEY_ID``), created in moto KMS by :func:`world_on`."""
    return os.environ["DECISION_KEY_ID"]


@contextmanager
def world_on(cluster: Any) -> Iterator[World]:
    """moto with the ledger table, the operator API's signing key and the staging node groups registered on
    ``cluster``, nodes booted."""
    with LocalCloud(None, cluster=cluster) as cloud, _decision_key():
        cloud.register_cluster(CLUSTER, cluster, nodegroups=NODEGROUPS)
        _table()
        cluster.advance(60)  # the node groups' nodes boot
        api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
        try:
            yield World(cloud=cloud, cluster=cluster, api=api)
        finally:
            api.close()


@contextmanager
def _decision_key() -> Iterator[None]:
    key = boto3.client("kms", region_name="us-east-1").create_key(
        KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Description="operator signatures"
    )["KeyMetadata"]["Arn"]
    before = os.environ.get("DECISION_KEY_ID")
    os.environ["DECISION_KEY_ID"] = key
    reset_settings()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DECISION_KEY_ID", None)
        else:
            os.environ["DECISION_KEY_ID"] = before
        reset_settings()


@contextmanager
def fresh_world() -> Iterator[World]:
    """A new emulator and a new moto per call: what a property test needs for each example."""
    eks.clear_cache()  # a new emulator is a new endpoint
    try:
        with Cluster(CLUSTER, default_nodes=False) as emulator, world_on(emulator) as world:
            yield world
    finally:
        eks.clear_cache()


@pytest.fixture
def world(cluster: Any, offhours_env: None) -> Iterator[World]:
    with world_on(cluster) as world:
        yield world
