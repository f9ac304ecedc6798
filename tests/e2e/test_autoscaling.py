"""Pods no node can run yet, with the release's Cluster Autoscaler installed: waiting while it adds a node, failing
within seconds (the platform's fault, nothing quarantined) when it says no node group can take them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from controlplane.models.release import ReleaseStatus
from kubernetes.client import CoreV1Api

from local.cluster import api_client
from local.cluster.nodes import DEFAULT_GROUP
from local.pipeline import Pipeline

pytestmark = pytest.mark.e2e


def cordon_every_node(pipe: Pipeline) -> CoreV1Api:
    """Running pods stay; no new pod can be placed on the nodes there are (a new node would not be cordoned)."""
    core = CoreV1Api(api_client(pipe.cluster))
    for node in core.list_node().items:
        core.patch_node(node.metadata.name, {"spec": {"unschedulable": True}})
    return core


def autoscaler_events(core: CoreV1Api, reason: str) -> list[Any]:
    events = core.list_namespaced_event("clinical-trials", field_selector=f"source=cluster-autoscaler,reason={reason}")
    return list(events.items)


def test_a_pod_that_fits_only_on_a_node_the_autoscaler_adds_waits_for_it_and_the_release_succeeds(
    pipe: Pipeline,
) -> None:
    pipe.first_release()
    core = cordon_every_node(pipe)
    general = pipe.cluster.nodes.groups()[DEFAULT_GROUP]
    pipe.cluster.nodes.set_group(DEFAULT_GROUP, general.desired, general.instance_type, max_size=general.desired + 2)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert pipe.cluster.nodes.groups()[DEFAULT_GROUP].desired == general.desired + 1
    (triggered,) = autoscaler_events(core, "TriggeredScaleUp")
    assert triggered.involved_object.name.startswith("edc-service-")
    assert f"{general.desired}->{general.desired + 1} (max: {general.desired + 2})" in triggered.message
    assert pipe.ledger.last_known_good("staging").release_id == pipe.planned_release(result)


def test_a_pod_no_node_group_can_run_even_after_a_scale_up_fails_within_seconds_and_quarantines_nothing(
    pipe: Pipeline,
) -> None:
    pipe.first_release()
    before = pipe.owned()
    core = cordon_every_node(pipe)  # the general group is at its maximum size: no node can be added

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "FAILED"
    assert result.error == "PlatformNotReadyError", result.cause  # the platform's fault, not the image's
    cause = str(result.cause)
    assert "no node group can run it even after a scale-up" in cause
    assert "max node group size reached" in cause
    assert "succeeded" in cause  # rolled back to the last known-good release
    assert pipe.owned() == before
    assert pipe.ledger.quarantined([pipe.digests["edc-service"]]) == {}
    failed = pipe.ledger.require_release(pipe.planned_release(result))
    assert failed.status is ReleaseStatus.ROLLED_BACK
    (said,) = autoscaler_events(core, "NotTriggerScaleUp")
    applied = next(e for e in result.history if e.type == "TaskStateExited" and e.state_name == "ApplyRelease")
    detected = next(
        e for e in result.history if e.type == "TaskStateExited" and e.state_name == "CheckHealth" and e.id > applied.id
    )
    # the autoscaler looks every 10 s; its word fails a pod unschedulable for over DEFINITIVE_GRACE_SECONDS (5 s)
    assert detected.timestamp - applied.timestamp <= timedelta(seconds=15), (applied.timestamp, detected.timestamp)
    assert said.message in cause
