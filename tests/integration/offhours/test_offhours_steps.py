"""Scale down and up, step by step, against the emulator over HTTPS and moto's EKS and DynamoDB."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from controlplane.errors import LockLostError
from controlplane.kube.apply import FIELD_MANAGER
from controlplane.kube.client import dynamic_client, request_json
from controlplane.kube.offhours import ASLEEP_ANNOTATION, EXCLUDE_ANNOTATION, OFFHOURS_FIELD_MANAGER
from controlplane.models.offhours import SleepStatus
from controlplane.steps import offhours
from controlplane.steps.apply import keep_asleep

from local.cluster import Behaviour
from tests.integration.offhours.conftest import IMAGE, NS, STAGING, World, hpa, namespace, staging_release, workload

pytestmark = pytest.mark.integration


def replicas_owner(obj: dict[str, Any]) -> list[str]:
    """The managers whose managedFields include spec.replicas."""
    owners = []
    for entry in obj["metadata"].get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if "f:replicas" in spec:
            owners.append(entry["manager"])
    return owners


def test_down_then_up_restores_replicas_hpa_bounds_and_node_groups_exactly(world: World) -> None:
    world.apply(staging_release())
    world.cluster.advance(30)
    before = world.state()

    plan = world.scale_down()

    assert plan.sleep
    assert not plan.reused_snapshot
    asleep = world.state()
    assert set(asleep["workloads"].values()) == {0}
    assert asleep["hpas"] == before["hpas"]  # minReplicas cannot be 0: the HPA is left as it was
    assert asleep["nodegroups"] == {"general": (1, 3, 1), "spot": (0, 3, 0)}
    assert world.nodes() == 1
    record = world.ledger.read("staging")
    assert record is not None
    assert record.status is SleepStatus.ASLEEP

    summary = world.scale_up()

    assert world.state() == before
    assert summary.not_awake == ()
    assert len(summary.awake) == len(STAGING)
    assert summary.savings is not None
    assert summary.savings.node_hours > 0
    record = world.ledger.read("staging")
    assert record is not None
    assert record.status is SleepStatus.AWAKE
    gateway = world.workload_object("api-gateway")
    assert ASLEEP_ANNOTATION not in (gateway["metadata"].get("annotations") or {})


def test_sleeping_objects_say_why_and_replicas_move_to_our_field_manager(world: World) -> None:
    world.apply(staging_release())

    world.scale_down()

    edc = world.workload_object("edc-service")
    note = json.loads(edc["metadata"]["annotations"][ASLEEP_ANNOTATION])
    assert note["replicas"] == 1
    assert "off-hours" in note["why"]
    assert replicas_owner(edc) == [OFFHOURS_FIELD_MANAGER]  # the /scale write took spec.replicas from the deploy
    hpa_obj = world.get(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/edc-service")
    hpa_note = json.loads(hpa_obj["metadata"]["annotations"][ASLEEP_ANNOTATION])
    assert (hpa_note["minReplicas"], hpa_note["maxReplicas"]) == (1, 3)


def test_excluded_workloads_and_namespaces_are_untouched(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OFFHOURS_CONFIG",
        json.dumps({"namespaces": [NS, "reporting", "tools"], "exclude": [f"{NS}/quality-service"],
                    "nodegroups": [{"match": "*", "desired": 0}], "exclude_nodegroups": ["general"]}),
    )  # fmt: skip
    world.apply(
        [
            *staging_release(),
            workload("demo-kiosk", 2, **{EXCLUDE_ANNOTATION: "true"}),
            namespace("reporting", **{EXCLUDE_ANNOTATION: "true"}),
            workload("reports", 2, ns="reporting"),
            namespace("tools"),
            workload("toolbox", 1, ns="tools"),
        ]
    )
    world.cluster.bootstrap(  # the administrator extends off-hours to the extra namespaces (cluster-bootstrap README)
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": role, "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "clinical-trials-platform"}
                ],
            }
            for ns in ("reporting", "tools")
            for role in ("clinical-trials-offhours", "clinical-trials-health")
        ]
    )

    plan = world.scale_down()

    assert world.replicas("demo-kiosk") == 2
    assert world.replicas("quality-service") == 1
    assert world.hpa_bounds("quality-service") == (1, 2)
    assert world.replicas("reports", ns="reporting") == 2
    assert world.replicas("toolbox", ns="tools") == 0
    assert world.replicas("edc-service") == 0
    kiosk = world.workload_object("demo-kiosk")
    assert ASLEEP_ANNOTATION not in kiosk["metadata"]["annotations"]
    assert world.nodegroups()["general"] == (2, 3, 2)
    assert set(plan.excluded) >= {
        f"Deployment.apps/{NS}/demo-kiosk",
        f"Deployment.apps/{NS}/quality-service",
        f"HorizontalPodAutoscaler.autoscaling/{NS}/quality-service",
        "Namespace/reporting",
        "Nodegroup/general",
    }

    world.scale_up()
    assert world.replicas("toolbox", ns="tools") == 1
    assert world.replicas("demo-kiosk") == 2


def test_a_second_scale_down_keeps_the_first_snapshot(world: World) -> None:
    world.apply(staging_release())
    world.scale_down()
    first = world.ledger.read("staging")
    versions = {n: world.workload_object(n)["metadata"]["resourceVersion"] for n in STAGING}

    again = world.scale_down()

    assert {n: world.workload_object(n)["metadata"]["resourceVersion"] for n in STAGING} == versions  # nothing written

    assert again.reused_snapshot
    second = world.ledger.read("staging")
    assert first is not None
    assert second is not None
    assert second.snapshot == first.snapshot
    assert {w.ref.name: w.replicas for w in second.snapshot.workloads}["api-gateway"] == 2
    world.scale_up()
    assert world.replicas("api-gateway") == 2


def test_an_interrupted_scale_down_rerun_records_the_marked_size_not_zero(world: World) -> None:
    world.apply(staging_release())
    ctx = world.ctx("down")
    offhours.snapshot_environment(ctx)
    offhours.sleep_workloads(ctx)
    # the ledger item is lost (a person deleted it): the marks on the objects still tell the truth
    world.cloud.client("dynamodb").delete_item(
        TableName="offhours-ledger", Key={"pk": {"S": "ENV#staging"}, "sk": {"S": "OFFHOURS"}}
    )

    world.scale_down()

    record = world.ledger.read("staging")
    assert record is not None
    assert record.snapshot is not None
    assert {w.ref.name: w.replicas for w in record.snapshot.workloads} == {n: r for n, (r, _, _) in STAGING.items()}


def test_pods_stay_pending_without_nodes_and_the_health_gate_sees_them_only_after_nodes_return(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFHOURS_CONFIG", json.dumps({"nodegroups": [{"match": "*", "desired": 0}]}))
    world.apply(staging_release())
    world.scale_down()
    assert world.nodes() == 0

    # someone scales a service up by hand while no node exists: its pod cannot be scheduled
    world.apply([workload("edc-service", 1)], release_id="r1")
    world.cluster.advance(60)
    (pod,) = world.pods("edc-service")
    assert pod["status"]["phase"] == "Pending"
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["reason"] == "Unschedulable"

    ctx = world.ctx("up")
    nodes = offhours.wake_nodegroups(ctx)
    assert not nodes.ready  # the nodes boot first; workloads wait for them
    nodes = world.wake_nodes(ctx)
    assert nodes.ready
    assert not nodes.timed_out
    state = world.wake_workloads(ctx, nodes)
    assert all(o.awake for o in state.outcomes), state.outcomes
    (pod,) = world.pods("edc-service")
    assert pod["status"]["phase"] == "Running"


def test_a_workload_that_does_not_come_back_is_reported_and_the_others_wake(world: World) -> None:
    world.apply(staging_release())
    world.scale_down()
    world.cluster.images.set(IMAGE.format(name="analytics-service"), Behaviour.crash_loop(exit_code=2))

    summary = world.scale_up()

    assert [o.ref.name for o in summary.not_awake] == ["analytics-service"]
    assert "CrashLoopBackOff" in (summary.not_awake[0].cause or "")
    assert f"Deployment.apps/{NS}/api-gateway" in summary.awake  # the edge still wakes, last
    assert "not awake" in summary.message
    events = world.ledger.events("staging")
    assert events[-1]["outcome"] == "PARTIALLY_AWAKE"


def test_a_scheduled_scale_down_yields_to_a_stay_awake_override_and_a_person_does_not(world: World) -> None:
    world.apply(staging_release())
    ctx = world.ctx("stay-awake", until=(world.now + timedelta(hours=3)).isoformat(), by="ana", reason="late demo")
    offhours.begin(ctx)
    assert not offhours.record_request(ctx).sleep

    skipped = world.scale_down(trigger="schedule")

    assert not skipped.sleep
    assert "ana" in skipped.reason
    assert world.replicas("api-gateway") == 2
    world.cluster.advance(3 * 3600, step=60)  # three idle hours: reconcile once a simulated minute
    assert world.scale_down(trigger="schedule").sleep
    assert world.replicas("api-gateway") == 0
    outcomes = [(e["action"], e["outcome"]) for e in world.ledger.events("staging")]
    assert ("stay-awake", "RECORDED") in outcomes
    assert ("down", "SKIPPED") in outcomes


def test_a_deploy_while_asleep_keeps_it_asleep_and_the_next_wake_brings_up_the_new_release(world: World) -> None:
    world.apply(staging_release())
    world.scale_down()
    new_release = [namespace()]
    for name, (replicas, low, high) in STAGING.items():
        bumped = replicas + 1 if name == "edc-service" else replicas
        new_release += [workload(name, bumped), hpa(name, low, high + (1 if name == "edc-service" else 0))]

    objects, asleep = keep_asleep(
        new_release, environment="staging", release_id="r2", now=world.now, fence=world.fence()
    )
    world.apply(objects, release_id="r2")

    assert asleep
    assert world.replicas("edc-service") == 0
    assert FIELD_MANAGER in replicas_owner(world.workload_object("edc-service"))
    record = world.ledger.read("staging")
    assert record is not None
    assert record.snapshot is not None
    assert record.snapshot.release_id == "r2"

    world.scale_up()

    assert world.replicas("edc-service") == 2
    assert world.hpa_bounds("edc-service") == (1, 4)


def test_without_keep_asleep_the_deploys_forced_apply_would_wake_the_workload(world: World) -> None:
    """Why the deploy must call keep_asleep: server-side apply with force takes spec.replicas back."""
    world.apply(staging_release())
    world.scale_down()

    world.apply(staging_release(), release_id="r2")

    assert world.replicas("api-gateway") == 2
    assert replicas_owner(world.workload_object("api-gateway")) == [FIELD_MANAGER]


# --- workloads an HPA scales: the release carries no spec.replicas -------------------------------------------------


def hpa_release() -> list[dict[str, Any]]:
    """``staging_release`` as rendering produces it: the HPA owns every workload's spec.replicas."""
    objects = staging_release()
    for obj in objects:
        if obj["kind"] == "Deployment":
            del obj["spec"]["replicas"]
    return objects


def hpa_scales(world: World, name: str, replicas: int) -> None:
    """What the HPA controller does on load: an Update of the /scale subresource."""
    dyn = dynamic_client(world.api)
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/scale"
    request_json(dyn, "PATCH", path, body={"spec": {"replicas": replicas}},
                 content_type="application/merge-patch+json",
                 query_params=[("fieldManager", "kube-controller-manager")])  # fmt: skip


def test_an_hpa_scaled_workload_keeps_its_count_across_deploys_and_a_night(world: World) -> None:
    world.apply(hpa_release())
    assert world.replicas("api-gateway") == 2  # created at the default 1, brought to minReplicas by the HPA
    hpa_scales(world, "api-gateway", 3)

    awake, asleep = keep_asleep(
        hpa_release(), environment="staging", release_id="r2", now=world.now, fence=world.fence()
    )
    world.apply(awake, release_id="r2")
    assert not asleep
    assert world.replicas("api-gateway") == 3  # the deploy no longer resets it

    assert world.scale_down().sleep
    world.cluster.advance(30)
    assert world.replicas("api-gateway") == 0
    gateway_hpa = world.get(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/api-gateway")
    active = next(c for c in gateway_hpa["status"]["conditions"] if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "ScalingDisabled")  # the HPA leaves it at 0

    objects, asleep = keep_asleep(
        hpa_release(), environment="staging", release_id="r3", now=world.now, fence=world.fence()
    )
    world.apply(objects, release_id="r3")
    assert asleep
    assert world.replicas("api-gateway") == 0
    record = world.ledger.read("staging")
    assert record is not None
    assert record.snapshot is not None
    assert {w.ref.name: w.replicas for w in record.snapshot.workloads}["api-gateway"] == 3  # what it slept from

    world.scale_up()
    assert world.replicas("api-gateway") == 3
    assert world.replicas("edc-service") == 1

    awake, asleep = keep_asleep(
        hpa_release(), environment="staging", release_id="r4", now=world.now, fence=world.fence()
    )
    world.apply(awake, release_id="r4")
    world.cluster.advance(30)
    assert not asleep
    assert world.replicas("api-gateway") == 3
    assert FIELD_MANAGER not in replicas_owner(world.workload_object("api-gateway"))


def test_an_off_hours_execution_that_lost_the_lock_writes_nothing_further(world: World) -> None:
    """Fencing (issue 12): every step after AcquireLock renews the lease first; once another execution holds the
    lock, each ends LockLostError before touching the ledger, the cluster or the node groups."""
    world.apply(staging_release())
    world.cluster.advance(30)
    before = world.state()
    down = world.ctx("down")
    offhours.begin(down)
    world.hold_lock("arn:aws:states:us-east-1:123456789012:execution:deploy:someone-else")

    for step in (offhours.record_request, offhours.snapshot_environment, offhours.sleep_workloads):
        with pytest.raises(LockLostError, match="no longer holds the lock of staging"):
            step(down)
    with pytest.raises(LockLostError, match="no longer holds the lock of staging"):
        offhours.sleep_nodegroups(down)
    assert world.ledger.read("staging") is None
    assert world.ledger.events("staging") == []  # Begin writes nothing; RecordRequest wrote nothing without the lease
    assert world.state() == before

    world.scale_down()  # asleep, by an execution that holds the lock
    asleep = world.state()
    record = world.ledger.read("staging")
    up = world.ctx("up")
    world.hold_lock("arn:aws:states:us-east-1:123456789012:execution:deploy:someone-else")

    with pytest.raises(LockLostError):
        offhours.wake_nodegroups(up)
    with pytest.raises(LockLostError):
        offhours.restore_wave(up, None, None)
    assert world.state() == asleep
    assert world.ledger.read("staging") == record
