"""The Kubernetes adapter against the API emulator over HTTPS: apply, diff, prune, errors, health, smoke."""

from __future__ import annotations

import base64
import copy
import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.errors import (
    KubernetesConflictError,
    KubernetesForbiddenError,
    KubernetesNotFoundError,
    KubernetesTransientError,
    PermanentError,
)
from controlplane.kube.apply import (
    FIELD_MANAGER,
    HANDOVER_FIELD_MANAGER,
    OWNERSHIP_LABEL,
    OWNERSHIP_VALUE,
    apply_and_prune,
    apply_objects,
    diff_objects,
    live_owned_objects,
    prune,
)
from controlplane.kube.client import ApiClient, ClusterAccess, build_api_client, dynamic_client, request_json
from controlplane.kube.health import Judge, check_workloads
from controlplane.kube.smoke import smoke_test
from controlplane.models.kube import ObjectRef
from controlplane.render import load_bundle, render_release
from kubernetes.dynamic import DynamicClient

from local.cluster import Behaviour, Cluster, api_client

pytestmark = pytest.mark.integration

NS = "trial-apps"
GOOD_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-trials/edc-service@sha256:" + "a" * 64
CRASH_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-trials/edc-service@sha256:" + "c" * 64
OWNED = {OWNERSHIP_LABEL: OWNERSHIP_VALUE}


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": dict(OWNED)}}


def config_map(name: str, value: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": dict(OWNED)},
        "data": {"VALUE": value},
    }


def pvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS, "labels": dict(OWNED)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def service(name: str, port: int = 8001) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": dict(OWNED)},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def deployment(name: str, image: str = GOOD_IMAGE, replicas: int = 2, port: int = 8001) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {**labels, **OWNED}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": name, "image": image, "ports": [{"name": "http", "containerPort": port}]}]
                },
            },
        },
    }


def release() -> list[dict[str, Any]]:
    return [namespace(), config_map("edc-config"), service("edc-service"), deployment("edc-service")]


def ref(obj: dict[str, Any]) -> ObjectRef:
    return ObjectRef.of(obj)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[ApiClient]:
    client = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    yield client
    client.close()


def request_count(cluster: Cluster) -> int:
    return len(cluster.requests)


# --- server-side apply ----------------------------------------------------------------------------------------


def test_first_apply_creates_and_reapplying_the_same_release_changes_nothing(api: ApiClient) -> None:
    first = apply_objects(api, release(), release_id="rel-1")
    assert [o.action for o in first.objects] == ["created"] * 4
    assert all(o.uid and o.resource_version for o in first.objects)

    again = apply_objects(api, release(), release_id="rel-1")
    assert [o.action for o in again.objects] == ["unchanged"] * 4
    # controllers write a Deployment's status, so only the others keep their resourceVersion for sure
    assert [o.resource_version for o in again.objects[:3]] == [o.resource_version for o in first.objects[:3]]
    assert [o.uid for o in again.objects] == [o.uid for o in first.objects]


def test_changed_object_is_configured_and_carries_no_release_id(api: ApiClient) -> None:
    apply_objects(api, release(), release_id="rel-1")
    objects = release()
    objects[1] = config_map("edc-config", value="2")
    result = apply_objects(api, objects, release_id="rel-1")
    assert [o.action for o in result.objects] == ["unchanged", "configured", "unchanged", "unchanged"]

    live = {o["metadata"]["name"]: o for o in live_owned_objects(api, [NS], [("v1", "ConfigMap")])}
    assert live["edc-config"]["data"] == {"VALUE": "2"}
    assert "annotations" not in live["edc-config"]["metadata"]  # the ledger knows the release, not the object
    managers = {m["manager"] for m in live["edc-config"]["metadata"]["managedFields"]}
    assert FIELD_MANAGER in managers


def test_new_release_with_the_same_objects_changes_nothing(api: ApiClient) -> None:
    apply_objects(api, release(), release_id="rel-1")
    result = apply_objects(api, release(), release_id="rel-2")
    assert {o.action for o in result.objects} == {"unchanged"}


def test_conflict_with_another_manager_names_the_field_unless_forced(api: ApiClient, cluster: Cluster) -> None:
    apply_objects(api, release(), release_id="rel-1")
    dyn = DynamicClient(api_client(cluster))  # someone else, with the official client
    cm = dyn.resources.get(api_version="v1", kind="ConfigMap")
    dyn.server_side_apply(cm, body=config_map("edc-config", "9"), field_manager="kubectl-edit", force_conflicts=True)

    with pytest.raises(KubernetesConflictError, match=r"ConfigMap/trial-apps/edc-config.*data\.VALUE"):
        apply_objects(api, [config_map("edc-config", "1")], release_id="rel-1", force=False)
    result = apply_objects(api, [config_map("edc-config", "1")], release_id="rel-1", force=True)
    assert result.objects[0].action == "configured"


def test_dry_run_changes_nothing_and_the_diff_shows_replicas_and_image(api: ApiClient) -> None:
    applied = apply_objects(api, release(), release_id="rel-1")
    changed = release()
    changed[3] = deployment("edc-service", image=CRASH_IMAGE, replicas=4)
    changed.append(config_map("new-config"))

    dry = apply_objects(api, changed, release_id="rel-1", dry_run=True)
    assert [o.action for o in dry.objects] == ["unchanged", "unchanged", "unchanged", "configured", "created"]

    diffs = {d.ref.key: d for d in diff_objects(api, changed)}
    assert diffs["ConfigMap/trial-apps/new-config"].action == "created"
    assert diffs["ConfigMap/trial-apps/edc-config"].action == "unchanged"
    assert diffs["Service/trial-apps/edc-service"].changes == ()
    edc = diffs["Deployment.apps/trial-apps/edc-service"]
    assert edc.action == "configured"
    assert {(c.path, c.live, c.desired) for c in edc.changes} == {
        ("spec.replicas", 2, 4),
        ("spec.template.spec.containers[name=edc-service].image", GOOD_IMAGE, CRASH_IMAGE),
    }

    after = apply_objects(api, release(), release_id="rel-1")  # nothing was persisted by the dry runs
    assert {o.action for o in after.objects} == {"unchanged"}
    assert [o.uid for o in after.objects] == [o.uid for o in applied.objects]
    assert [o["metadata"]["name"] for o in live_owned_objects(api, [NS], [("v1", "ConfigMap")])] == ["edc-config"]


def replicas_owners(obj: dict[str, Any]) -> list[str]:
    return sorted(
        m["manager"]
        for m in obj["metadata"].get("managedFields") or []
        if "f:replicas" in ((m.get("fieldsV1") or {}).get("f:spec") or {})
    )


def live_deployment(api: ApiClient, name: str) -> dict[str, Any]:
    live = {o["metadata"]["name"]: o for o in live_owned_objects(api, [NS], [("apps/v1", "Deployment")])}
    return live[name]


def scale(api: ApiClient, name: str, replicas: int, manager: str) -> None:
    """What the HPA controller does: an Update of the /scale subresource."""
    dyn = dynamic_client(api)
    path = dyn.resources.get(api_version="apps/v1", kind="Deployment").path(name=name, namespace=NS) + "/scale"
    request_json(
        dyn,
        "PATCH",
        path,
        body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
        query_params=[("fieldManager", manager)],
    )


def without_replicas(obj: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    del body["spec"]["replicas"]
    return body


def test_leaving_out_replicas_we_own_hands_them_over_instead_of_resetting_them_to_one(api: ApiClient) -> None:
    apply_objects(api, [namespace(), deployment("edc-service", replicas=3)], release_id="rel-1")
    assert replicas_owners(live_deployment(api, "edc-service")) == [FIELD_MANAGER]
    hpa_managed = [namespace(), without_replicas(deployment("edc-service"))]

    diffs = {d.ref.key: d for d in diff_objects(api, hpa_managed)}
    assert diffs["Deployment.apps/trial-apps/edc-service"].changes == ()  # the diff shows what the handover keeps
    dry = apply_objects(api, hpa_managed, release_id="rel-1", dry_run=True)
    assert dry.objects[1].action == "unchanged"
    assert replicas_owners(live_deployment(api, "edc-service")) == [FIELD_MANAGER]  # a dry run hands nothing over

    result = apply_objects(api, hpa_managed, release_id="rel-2")

    edc = live_deployment(api, "edc-service")
    assert edc["spec"]["replicas"] == 3  # not the default 1
    assert replicas_owners(edc) == [HANDOVER_FIELD_MANAGER]
    assert result.objects[1].action == "unchanged"  # the field's owner changed, no value did
    apply_objects(api, hpa_managed, release_id="rel-3")
    assert live_deployment(api, "edc-service")["spec"]["replicas"] == 3

    scale(api, "edc-service", 5, "kube-controller-manager")  # the HPA's first write takes the field
    assert replicas_owners(live_deployment(api, "edc-service")) == ["kube-controller-manager"]
    apply_objects(api, hpa_managed, release_id="rel-4")
    assert live_deployment(api, "edc-service")["spec"]["replicas"] == 5


# --- prune ----------------------------------------------------------------------------------------------------


KINDS = [("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "PersistentVolumeClaim"), ("v1", "Service")]


def test_prune_deletes_owned_objects_that_left_the_release_and_spares_namespaces_and_pvcs(
    api: ApiClient, cluster: Cluster
) -> None:
    old = [namespace(), config_map("keep"), config_map("gone"), pvc("data"), service("old-service")]
    apply_objects(api, old, release_id="rel-1")
    cm = DynamicClient(api_client(cluster)).resources.get(api_version="v1", kind="ConfigMap")  # someone else's
    cm.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-ours", "namespace": NS}})

    new = [namespace(), config_map("keep")]
    pruned = prune(api, keep=[ref(o) for o in new[1:]], namespaces=[NS], kinds=KINDS)
    assert sorted(r.key for r in pruned) == ["ConfigMap/trial-apps/gone", "Service/trial-apps/old-service"]

    left = {ObjectRef.of(o).key for o in live_owned_objects(api, [NS], KINDS)}
    assert left == {"Namespace/trial-apps", "ConfigMap/trial-apps/keep", "PersistentVolumeClaim/trial-apps/data"}
    assert cm.get(name="not-ours", namespace=NS).metadata.name == "not-ours"  # unlabelled: never ours to delete

    assert prune(api, keep=[ref(o) for o in new[1:]], namespaces=[NS], kinds=KINDS) == []  # idempotent
    allowed = prune(api, keep=[ref(o) for o in new], namespaces=[NS], kinds=KINDS, allow={"PersistentVolumeClaim"})
    assert [r.key for r in allowed] == ["PersistentVolumeClaim/trial-apps/data"]


def test_apply_and_prune_prunes_from_the_listing_the_apply_already_made(api: ApiClient, cluster: Cluster) -> None:
    apply_objects(api, [namespace(), config_map("keep"), config_map("gone"), service("old-service")], release_id="r1")
    new = [namespace(), config_map("keep", "2")]
    before = len(cluster.requests)

    result, pruned = apply_and_prune(api, new, release_id="r1", namespaces=[NS], kinds=KINDS)

    assert [o.action for o in result.objects] == ["unchanged", "configured"]
    assert sorted(r.key for r in pruned) == ["ConfigMap/trial-apps/gone", "Service/trial-apps/old-service"]
    made = [(r.method, r.resource) for r in list(cluster.requests)[before:] if r.resource]
    # one list per applied type, one apply per object, one list per type only the prune scope has, one delete each
    assert sorted(made) == sorted(
        [
            ("GET", "namespaces"),
            ("PATCH", "namespaces"),
            ("GET", "configmaps"),
            ("PATCH", "configmaps"),
            ("GET", "persistentvolumeclaims"),
            ("GET", "services"),
            ("DELETE", "configmaps"),
            ("DELETE", "services"),
        ]
    )


# --- apply only what changed (the ledger's record of the last apply) ------------------------------------------


def state_of(result: Any) -> dict[str, Any]:
    return {o.ref.key: o for o in result.objects}


def made_since(cluster: Cluster, before: int) -> list[tuple[str, str]]:
    return [(r.method, r.resource) for r in list(cluster.requests)[before:] if r.resource]


def test_with_a_record_nothing_changed_sends_nothing_and_a_change_sends_only_that_object(
    api: ApiClient, cluster: Cluster
) -> None:
    before = len(cluster.requests)
    marked: list[list[tuple[str, str]]] = []
    first = apply_objects(
        api,
        release(),
        release_id="rel-1",
        last_applied={},
        before_first_write=lambda: marked.append(made_since(cluster, before)),
    )
    assert [o.action for o in first.objects] == ["created"] * 4
    # nothing recorded: one list (the server answers before the hook marks the first write), one apply per object
    assert marked == [[("GET", "namespaces")]]
    assert made_since(cluster, before) == [("GET", "namespaces")] + [
        ("PATCH", r) for r in ("namespaces", "configmaps", "services", "deployments")
    ]

    before = len(cluster.requests)
    again = apply_objects(api, release(), release_id="rel-2", last_applied=state_of(first))
    assert [o.action for o in again.objects] == ["unchanged"] * 4
    assert all(method == "GET" for method, _ in made_since(cluster, before))  # the drift check lists, never writes

    changed = release()
    changed[1] = config_map("edc-config", value="2")
    before = len(cluster.requests)
    third = apply_objects(api, changed, release_id="rel-3", last_applied=state_of(again))
    assert [o.action for o in third.objects] == ["unchanged", "configured", "unchanged", "unchanged"]
    assert [m for m in made_since(cluster, before) if m[0] != "GET"] == [("PATCH", "configmaps")]


def test_an_object_changed_in_the_cluster_since_it_was_recorded_is_applied_again(
    api: ApiClient, cluster: Cluster
) -> None:
    first = apply_objects(api, release(), release_id="rel-1", last_applied={})
    cm = DynamicClient(api_client(cluster)).resources.get(api_version="v1", kind="ConfigMap")  # edited by hand
    cm.patch(
        name="edc-config",
        namespace=NS,
        body={"data": {"VALUE": "edited"}},
        content_type="application/merge-patch+json",
    )
    result = apply_objects(api, release(), release_id="rel-1", last_applied=state_of(first))
    assert [o.action for o in result.objects] == ["unchanged", "configured", "unchanged", "unchanged"]
    assert cm.get(name="edc-config", namespace=NS).data.VALUE == "1"


def test_trusting_the_record_sends_what_changed_and_what_drift_found_reading_nothing_else(
    api: ApiClient, cluster: Cluster
) -> None:
    first = apply_objects(api, release(), release_id="rel-1", last_applied={})
    changed = release()
    changed[1] = config_map("edc-config", value="2")
    before = len(cluster.requests)
    marked: list[int] = []
    result = apply_objects(
        api,
        changed,
        release_id="rel-2",
        last_applied=state_of(first),
        drifted=frozenset({ref(release()[2]).key}),  # a recent drift check found the Service changed
        before_first_write=lambda: marked.append(len(cluster.requests) - before),
    )
    assert [o.action for o in result.objects] == ["unchanged", "configured", "unchanged", "unchanged"]
    made = made_since(cluster, before)
    # one read (the server answers before the first write is marked), then only the two objects sent
    assert marked == [1]
    assert made[0][0] == "GET"
    assert made[1:] == [("PATCH", "configmaps"), ("PATCH", "services")]


def test_objects_the_caller_verified_are_trusted_to_the_record_while_the_others_are_listed(
    api: ApiClient, cluster: Cluster
) -> None:
    first = apply_objects(api, release(), release_id="rel-1", last_applied={})
    changed = release()
    changed[1] = config_map("edc-config", value="2")
    before = len(cluster.requests)
    # InstallAddons checked the Service and the Deployment moments ago (the add-ons, in a deploy): not listed again
    verified = frozenset({ref(release()[2]).key, ref(release()[3]).key})
    result = apply_objects(api, changed, release_id="rel-2", last_applied=state_of(first), verified=verified)
    assert [o.action for o in result.objects] == ["unchanged", "configured", "unchanged", "unchanged"]
    made = made_since(cluster, before)
    assert ("GET", "services") not in made
    assert ("GET", "deployments") not in made
    assert ("GET", "namespaces") in made  # the one not verified: its live object checked
    assert [m for m in made if m[0] != "GET"] == [("PATCH", "configmaps")]


def test_prune_from_the_record_deletes_what_left_the_release_without_listing(api: ApiClient, cluster: Cluster) -> None:
    old = [namespace(), config_map("keep"), config_map("gone"), service("old-service")]
    first = apply_objects(api, old, release_id="r1", last_applied={})
    before = len(cluster.requests)

    result, pruned = apply_and_prune(
        api,
        [namespace(), config_map("keep")],
        release_id="r2",
        namespaces=[NS],
        kinds=KINDS,
        last_applied=state_of(first),
    )

    assert sorted(r.key for r in pruned) == ["ConfigMap/trial-apps/gone", "Service/trial-apps/old-service"]
    assert {o.action for o in result.objects} == {"unchanged"}
    assert sorted(m for m in made_since(cluster, before) if m[0] != "GET") == [
        ("DELETE", "configmaps"),
        ("DELETE", "services"),
    ]
    left = {ObjectRef.of(o).key for o in live_owned_objects(api, [NS], KINDS)}
    assert left == {"Namespace/trial-apps", "ConfigMap/trial-apps/keep"}


def test_live_owned_objects_match_the_release(api: ApiClient) -> None:
    apply_objects(api, release(), release_id="rel-1")
    kinds = [("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment")]
    live = {ObjectRef.of(o).key for o in live_owned_objects(api, [NS], kinds)}
    assert live == {ref(o).key for o in release()}


# --- errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_short_retry_after_is_waited_out_and_the_request_sent_again(
    api: ApiClient, cluster: Cluster, status: int
) -> None:
    apply_objects(api, release(), release_id="rel-1")  # warm discovery
    cluster.faults.add(verb="patch", resource="configmaps", status=status, retry_after=1, times=1)
    before = len(cluster.requests)
    started = time.monotonic()

    result = apply_objects(api, release(), release_id="rel-2")

    assert time.monotonic() - started >= 1  # not sooner than the server asked
    assert result.objects[1].action == "unchanged"
    patches = [m for m in made_since(cluster, before) if m == ("PATCH", "configmaps")]
    assert len(patches) == 2  # the refused one, then the one sent after the wait


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_beyond_the_budget_raises_a_transient_error_naming_the_wait(
    api: ApiClient, cluster: Cluster, status: int
) -> None:
    apply_objects(api, release(), release_id="rel-1")  # warm discovery
    cluster.faults.add(verb="patch", resource="configmaps", status=status, retry_after=120, times=1)
    with pytest.raises(KubernetesTransientError, match=r"ConfigMap/trial-apps/edc-config.*retry after 120s"):
        apply_objects(api, release(), release_id="rel-2")
    assert apply_objects(api, release(), release_id="rel-2").objects[1].action == "unchanged"  # retry works


def test_connection_reset_is_transient(api: ApiClient, cluster: Cluster) -> None:
    apply_objects(api, release(), release_id="rel-1")
    cluster.faults.add(verb="list", resource="pods", reset=True, times=1)
    with pytest.raises(KubernetesTransientError, match="no answer from the API server"):
        check_workloads(api, [ref(deployment("edc-service"))], now=cluster.clock.utcnow())


def test_forbidden_raises_forbidden_error(api: ApiClient, cluster: Cluster) -> None:
    apply_objects(api, release(), release_id="rel-1")
    cluster.faults.add(verb="patch", resource="deployments", status=403, times=1)
    with pytest.raises(KubernetesForbiddenError, match=r"Deployment\.apps/trial-apps/edc-service"):
        apply_objects(api, release(), release_id="rel-1")


def test_bad_token_is_forbidden_and_never_shown(cluster: Cluster) -> None:
    token = "k8s-aws-v1.bm90LWEtcmVhbC10b2tlbg"
    client = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=token))
    with pytest.raises(KubernetesForbiddenError) as info:
        apply_objects(client, release(), release_id="rel-1")
    assert token not in str(info.value)
    assert token not in repr(info.value)


def test_wrong_ca_is_a_permanent_tls_error(cluster: Cluster) -> None:
    with Cluster("other") as other:
        access = ClusterAccess(endpoint=cluster.endpoint, ca_data=other.ca_data, token=cluster.token())
        client = build_api_client(access)
        with pytest.raises(PermanentError, match="TLS"):
            apply_objects(client, release(), release_id="rel-1")


# --- health and smoke -----------------------------------------------------------------------------------------


def test_health_check_sees_a_healthy_rollout_finish(api: ApiClient, cluster: Cluster) -> None:
    cluster.images.set(GOOD_IMAGE, Behaviour.ready(after=2))
    apply_objects(api, release(), release_id="rel-1")
    workload = ref(deployment("edc-service"))
    report = check_workloads(api, [workload], now=cluster.clock.utcnow())
    assert not report.healthy
    assert not report.failed
    cluster.advance(30)
    report = check_workloads(api, [workload], now=cluster.clock.utcnow())
    assert report.healthy, report
    assert report.workloads[0].reason == "RolledOut"


def test_health_check_fails_fast_on_a_crash_looping_image(api: ApiClient, cluster: Cluster) -> None:
    cluster.images.set(GOOD_IMAGE, Behaviour.ready(after=2))
    cluster.images.set(CRASH_IMAGE, Behaviour.crash_loop(exit_code=3))
    apply_objects(api, release(), release_id="rel-1")
    cluster.advance(30)
    workload = ref(deployment("edc-service"))
    assert check_workloads(api, [workload], now=cluster.clock.utcnow()).healthy

    broken = release()
    broken[3] = deployment("edc-service", image=CRASH_IMAGE)
    apply_objects(api, broken, release_id="rel-2")
    cluster.advance(20)
    early = check_workloads(api, [workload], now=cluster.clock.utcnow())
    assert not early.failed  # crashing, but not for long enough yet

    cluster.advance(180)
    report = check_workloads(api, [workload], now=cluster.clock.utcnow())
    assert report.failed
    assert not report.healthy
    assert {f.reason for f in report.failures} == {"CrashLoopBackOff"}
    failure = report.failures[0]
    assert failure.workload == workload
    assert failure.restart_count >= 3
    assert "exit code 3" in failure.message
    assert all(f.since <= cluster.clock.utcnow() - timedelta(seconds=60) for f in report.failures)


def test_smoke_test_through_the_service_proxy(api: ApiClient, cluster: Cluster) -> None:
    cluster.images.set(GOOD_IMAGE, Behaviour.ready(after=2))
    apply_objects(api, release(), release_id="rel-1")
    cluster.advance(30)
    result = smoke_test(api, namespace=NS, service="edc-service", port=8001)
    assert result.ok, result
    assert "healthy" in result.body_excerpt
    # A missing Service is the API server's answer, not the service's: an error, never a failed smoke test.
    with pytest.raises(KubernetesNotFoundError, match='services "no-such-service" not found'):
        smoke_test(api, namespace=NS, service="no-such-service", port=8001)


def test_smoke_test_raises_the_api_servers_own_failures_instead_of_reporting_them(
    api: ApiClient, cluster: Cluster
) -> None:
    """A 503 or 429 from the API server on the proxy GET says nothing about the service: retried, not judged."""
    cluster.images.set(GOOD_IMAGE, Behaviour.ready(after=2))
    apply_objects(api, release(), release_id="rel-1")
    cluster.advance(30)
    cluster.faults.add(verb="get", resource="services", status=503, times=1)
    with pytest.raises(KubernetesTransientError, match=r"transient failure \(503\)"):
        smoke_test(api, namespace=NS, service="edc-service", port=8001)
    cluster.faults.add(verb="get", resource="services", status=429, retry_after=300, times=1)
    with pytest.raises(KubernetesTransientError, match="retry after 300s"):
        smoke_test(api, namespace=NS, service="edc-service", port=8001)
    assert smoke_test(api, namespace=NS, service="edc-service", port=8001).ok  # the outage is over


def test_smoke_test_reports_a_service_without_ready_endpoints_as_its_answer(api: ApiClient, cluster: Cluster) -> None:
    cluster.images.set(GOOD_IMAGE, Behaviour.never_ready())
    apply_objects(api, release(), release_id="rel-1")
    cluster.advance(30)
    result = smoke_test(api, namespace=NS, service="edc-service", port=8001)
    assert (result.ok, result.status_code) == (False, 503)
    assert "no endpoints available" in result.body_excerpt


def test_smoke_test_reports_an_unhealthy_service_without_raising(api: ApiClient, cluster: Cluster) -> None:
    cluster.images.set(GOOD_IMAGE, Behaviour.unhealthy())
    apply_objects(api, release(), release_id="rel-1")
    cluster.advance(30)
    result = smoke_test(api, namespace=NS, service="edc-service", port="http")
    assert not result.ok
    assert result.status_code >= 500


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour.err_image_pull(), {"ErrImagePull", "ImagePullBackOff"}),
        (Behaviour.create_container_config_error(), {"CreateContainerConfigError"}),
    ],
)
def test_health_check_fails_fast_on_pull_and_config_errors_after_the_grace(
    api: ApiClient, cluster: Cluster, behaviour: Behaviour, reason: set[str]
) -> None:
    cluster.images.set(CRASH_IMAGE, behaviour)
    objects = release()
    objects[3] = deployment("edc-service", image=CRASH_IMAGE)
    apply_objects(api, objects, release_id="rel-1")
    workload = ref(objects[3])
    cluster.advance(30)
    assert not check_workloads(api, [workload], now=cluster.clock.utcnow(), judge=Judge(grace_seconds=60)).failed
    cluster.advance(40)
    report = check_workloads(api, [workload], now=cluster.clock.utcnow(), judge=Judge(grace_seconds=60))
    assert report.failed
    assert {f.reason for f in report.failures} <= reason
    assert len(report.failures) == 2  # both replicas of the new revision


# --- request budget -------------------------------------------------------------------------------------------


def test_warm_discovery_cache_keeps_requests_per_applied_object_low(api: ApiClient, cluster: Cluster) -> None:
    objects = [namespace(), *[config_map(f"cm-{i}") for i in range(8)], service("edc-service"), deployment("edc")]
    apply_objects(api, objects, release_id="rel-1")  # fills the discovery cache

    fresh = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    before = request_count(cluster)
    apply_objects(fresh, [copy.deepcopy(o) for o in objects], release_id="rel-2")
    requests = request_count(cluster) - before
    fresh.close()
    # no discovery: one PATCH per object plus one list per (kind, namespace), 11 objects of 4 kinds here.
    # (bench/kube_bench.py measures the whole platform: 74 objects of 13 kinds.)
    assert requests == len(objects) + 4


def test_discovery_is_fetched_once_per_endpoint(api: ApiClient, cluster: Cluster) -> None:
    apply_objects(api, release(), release_id="rel-1")
    fresh = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    before = len(cluster.requests)
    apply_objects(fresh, release(), release_id="rel-1")
    discovery = [r.path for r in list(cluster.requests)[before:] if not r.resource]
    fresh.close()
    assert discovery == []


def test_ca_data_is_base64_of_the_clusters_pem(cluster: Cluster) -> None:
    assert base64.b64decode(cluster.ca_data).startswith(b"-----BEGIN CERTIFICATE-----")


# --- the rendered platform ------------------------------------------------------------------------------------


def platform_release() -> list[dict[str, Any]]:
    digests = {n: f"sha256:{hashlib.sha256(n.encode()).hexdigest()}" for n in platform.SERVICE_NAMES}
    manifests = Path(__file__).resolve().parents[3] / "manifests" / "kubernetes"
    return render_release(
        load_bundle(manifests), "staging", digests, account_id="123456789012", region="us-east-1", cluster_name="t"
    )


def test_platform_diff_on_an_empty_cluster_is_all_creates_then_nothing_after_apply(api: ApiClient) -> None:
    objects = platform_release()
    assert any(o["kind"] == "CustomResourceDefinition" for o in objects)  # custom kinds not served yet
    before = diff_objects(api, objects)
    assert {d.action for d in before} == {"created"}
    assert len(before) == len(objects)

    apply_objects(api, objects, release_id="rel-1")
    after = diff_objects(api, objects)
    assert [(d.ref.key, d.changes) for d in after if d.action != "unchanged"] == []


def test_a_deploy_leaves_the_count_an_hpa_scaled_to_alone(api: ApiClient, cluster: Cluster) -> None:
    objects = platform_release()
    apply_objects(api, objects, release_id="rel-1")
    ns = platform.NAMESPACE
    live = {o["metadata"]["name"]: o for o in live_owned_objects(api, [ns], [("apps/v1", "Deployment")])}
    hpas = {o["metadata"]["name"]: o for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    for name, hpa in hpas.items():  # created without spec.replicas (default 1): the HPA brought each to its minimum
        assert live[name]["spec"]["replicas"] == hpa["spec"]["minReplicas"], name
    gateway = hpas["api-gateway"]["spec"]
    dyn = dynamic_client(api)
    path = dyn.resources.get(api_version="apps/v1", kind="Deployment").path(name="api-gateway", namespace=ns)
    request_json(dyn, "PATCH", path + "/scale", body={"spec": {"replicas": gateway["maxReplicas"]}},
                 content_type="application/merge-patch+json", query_params=[("fieldManager", "load")])  # fmt: skip

    apply_objects(api, platform_release(), release_id="rel-2")

    _, after = request_json(dyn, "GET", path)
    assert after["spec"]["replicas"] == gateway["maxReplicas"]  # the deploy did not reset it to the overlay's count
