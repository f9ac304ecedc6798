"""Watches through the official client's ``kubernetes.watch.Watch`` on the simulated clock: ``timeoutSeconds`` counts
simulated seconds, bookmarks come when asked for, a compacted resourceVersion is 410 Expired, and the server's
``Date`` header is the simulated time.

The clock is driven by its waiters here (as in the AWS harness's simulated mode): a watch with nothing to report lets
simulated time pass itself, so nothing in these tests sleeps or advances the clock by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from local.cluster import Cluster, api_client

from .conftest import NAMESPACE

pytestmark = pytest.mark.integration


@pytest.fixture
def driven(shared_cluster: Cluster) -> Iterator[Cluster]:
    shared_cluster.clock.drive_by_waiters()
    yield shared_cluster
    shared_cluster.clock.drive_by_waiters(on=False)


def _config_map(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": "r/a:1"}]}},
        },
    }


def test_a_watch_ends_after_timeout_seconds_of_simulated_time(driven: Cluster, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map(NAMESPACE).metadata.resource_version
    before = driven.clock.now()
    events = list(
        watch.Watch().stream(
            v1.list_namespaced_config_map,
            NAMESPACE,
            label_selector="nobody=here",
            resource_version=rv,
            timeout_seconds=45,
        )
    )
    waited = driven.clock.now() - before
    assert events == []
    assert 45 <= waited < 47


def test_a_watch_follows_a_rollout_while_simulated_time_passes(driven: Cluster, api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(NAMESPACE, _deployment("followed"))
    before = driven.clock.now()
    ready: list[int] = []
    w = watch.Watch()
    for event in w.stream(
        apps.list_namespaced_deployment,
        NAMESPACE,
        field_selector="metadata.name=followed",
        resource_version=created.metadata.resource_version,
        timeout_seconds=120,
    ):
        assert event["type"] == "MODIFIED"
        ready.append(event["object"].status.ready_replicas or 0)
        if event["object"].status.available_replicas == 2:
            w.stop()
    assert ready[-1] == 2
    assert 0 < driven.clock.now() - before < 30  # the watch stopped as soon as it saw the rollout end


def test_bookmarks_come_every_minute_and_before_the_timeout_when_asked_for(
    driven: Cluster, api: client.ApiClient
) -> None:
    v1 = client.CoreV1Api(api)
    rv = v1.list_namespaced_config_map(NAMESPACE).metadata.resource_version
    start = driven.clock.now()
    marks: list[tuple[float, str]] = []
    for event in watch.Watch().stream(
        v1.list_namespaced_config_map,
        NAMESPACE,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=130,
    ):
        assert event["type"] == "BOOKMARK"
        marks.append((driven.clock.now() - start, event["raw_object"]["metadata"]["resourceVersion"]))
    # read by the client as they arrive: the clock may have moved on by a second
    assert [t - expected for (t, _), expected in zip(marks, (60, 120, 128), strict=True)] == pytest.approx(
        [0.5, 0.5, 0.5], abs=1.0
    )
    assert all(int(mark) >= int(rv) for _, mark in marks)
    unasked = list(
        watch.Watch().stream(v1.list_namespaced_config_map, NAMESPACE, resource_version=rv, timeout_seconds=70)
    )
    assert unasked == []


def test_a_compacted_resource_version_is_410_expired_for_the_official_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import local.cluster.store as store_module  # noqa: PLC0415

    monkeypatch.setattr(store_module, "HISTORY", 5)
    with Cluster() as small:
        small.clock.drive_by_waiters()
        with api_client(small) as kube:
            v1 = client.CoreV1Api(kube)
            for i in range(10):
                v1.create_namespaced_config_map("default", _config_map(f"c{i}"))
            with pytest.raises(ApiException) as gone:
                list(
                    watch.Watch().stream(
                        v1.list_namespaced_config_map, "default", resource_version="2", timeout_seconds=5
                    )
                )
    assert gone.value.status == 410
    assert "Expired: too old resource version: 2" in str(gone.value.reason)


def test_the_date_header_is_the_simulated_time(shared_cluster: Cluster, api: client.ApiClient) -> None:
    shared_cluster.advance(3600 * 24, step=3600)
    v1 = client.CoreV1Api(api)
    response = v1.list_namespaced_config_map(NAMESPACE, _preload_content=False)
    assert json.loads(response.data)["kind"] == "ConfigMapList"
    served = parsedate_to_datetime(response.headers["Date"])
    assert abs(served.timestamp() - shared_cluster.clock.now()) < 1.0
