"""Off-hours decisions that need no cluster: configuration, exclusions, wake order, savings, deploy-while-asleep."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controlplane import platform
from controlplane.errors import ConfigurationError
from controlplane.kube.offhours import (
    ASLEEP_ANNOTATION,
    EXCLUDE_ANNOTATION,
    Inventory,
    LiveHpa,
    LiveWorkload,
    keep_asleep_objects,
    snapshot_entries,
)
from controlplane.models.kube import ObjectRef
from controlplane.models.offhours import (
    Exclusion,
    HpaSnapshot,
    NodegroupSnapshot,
    OffhoursRequest,
    Snapshot,
    StayAwake,
    WorkloadSnapshot,
    savings,
    wake_waves,
)
from controlplane.models.offhours_config import OffhoursConfig
from controlplane.settings import _VARIABLES, Settings, get_settings
from pydantic import ValidationError

pytestmark = pytest.mark.unit

NS = platform.NAMESPACE
T0 = datetime(2025, 3, 3, 19, 0, tzinfo=UTC)


BASE_ENV = {
    "ENVIRONMENT": "staging",
    "AWS_REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
    "CLUSTER_NAME": "sts-staging",
    "LEDGER_TABLE_NAME": "ledger",
}


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Settings]:
    """The settings a function with exactly these variables (and the required ones) reads."""

    def load(environ: dict[str, str]) -> Settings:
        for name in _VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**BASE_ENV, **environ}.items():
            monkeypatch.setenv(name, value)
        return get_settings()

    return load


def deployment_ref(name: str, kind: str = "Deployment") -> ObjectRef:
    return ObjectRef(api_version="apps/v1", kind=kind, namespace=NS, name=name)


def hpa_ref(name: str) -> ObjectRef:
    return ObjectRef(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler", namespace=NS, name=name)


def staging_snapshot() -> Snapshot:
    """The seed's staging: 8 replicas over 7 services, general 2x t3.medium, spot 1x t3.large."""
    replicas = {"api-gateway": 2, "edc-service": 1, "data-generation-service": 1, "analytics-service": 1,
                "quality-service": 1, "security-service": 1, "daft-analytics-service": 1}  # fmt: skip
    return Snapshot(
        environment="staging",
        taken_at=T0,
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:offhours:night-1",
        workloads=tuple(
            WorkloadSnapshot(ref=deployment_ref(n), replicas=r, sleep_replicas=0) for n, r in replicas.items()
        ),
        nodegroups=(
            NodegroupSnapshot(name="general", min_size=2, max_size=3, desired_size=2, sleep_desired=1,
                              instance_types=("t3.medium",), capacity_type="ON_DEMAND"),
            NodegroupSnapshot(name="spot", min_size=0, max_size=3, desired_size=1, sleep_desired=0,
                              instance_types=("t3.large", "t3a.large"), capacity_type="SPOT"),
            NodegroupSnapshot(name="compute", min_size=0, max_size=2, desired_size=0, sleep_desired=0,
                              instance_types=("c6i.xlarge",), capacity_type="ON_DEMAND"),
        ),
    )  # fmt: skip


# ---- configuration -------------------------------------------------------------------------------------------


def test_defaults_sleep_everything_in_the_platform_namespace_to_zero_and_wake_the_gateway_last(
    settings_of: Callable[[dict[str, str]], Settings],
) -> None:
    config = settings_of({}).offhours.rules
    assert config.namespaces == (NS,)
    assert config.sleep_replicas == 0
    assert config.nodegroup_sleep_size("anything") == 0
    assert config.wake_last == (platform.EDGE_SERVICE,)
    assert config.wake_on_deploy is False


def test_first_matching_nodegroup_rule_wins_and_excluded_groups_are_left_alone() -> None:
    config = OffhoursConfig.model_validate(
        {
            "nodegroups": [{"match": "General*", "desired": 1}, {"match": "*", "desired": 0}],
            "exclude_nodegroups": ["Gpu*"],
        }
    )
    assert config.nodegroup_sleep_size("GeneralNodeGroup-x1") == 1
    assert config.nodegroup_sleep_size("SpotNodeGroup-x2") == 0
    assert config.nodegroup_sleep_size("GpuNodeGroup-x3") is None


def test_without_a_catch_all_rule_an_unmatched_group_is_untouched() -> None:
    config = OffhoursConfig.model_validate({"nodegroups": [{"match": "spot*", "desired": 0}]})
    assert config.nodegroup_sleep_size("general") is None


def test_exclusions_match_namespaces_and_namespace_slash_name_globs() -> None:
    config = OffhoursConfig.model_validate({"exclude": ["monitoring", f"{NS}/daft-*"]})
    assert config.object_excluded("monitoring", "prometheus")
    assert config.object_excluded(NS, "daft-analytics-service")
    assert not config.object_excluded(NS, "edc-service")
    assert config.namespace_excluded("monitoring")
    assert not config.namespace_excluded(NS)


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"OFFHOURS_CONFIG": "{not json"}, "not valid JSON"),
        ({"OFFHOURS_CONFIG": "[1]"}, "JSON object"),
        ({"OFFHOURS_CONFIG": '{"sleep_replicas": -1}'}, "sleep_replicas"),
        ({"OFFHOURS_CONFIG": '{"nodegroups": [{"match": "*"}]}'}, "nodegroups.0.desired"),
        ({"OFFHOURS_CONFIG": '{"sleep_replica": 1}'}, "sleep_replica"),
    ],
)
def test_bad_configuration_names_the_variable_and_field(
    settings_of: Callable[[dict[str, str]], Settings], environ: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match="OFFHOURS_CONFIG") as info:
        settings_of(environ)
    assert fragment in str(info.value)


def test_wake_on_deploy_comes_from_its_own_variable(settings_of: Callable[[dict[str, str]], Settings]) -> None:
    assert settings_of({"OFFHOURS_WAKE_ON_DEPLOY": "true"}).offhours.rules.wake_on_deploy is True
    assert settings_of({"OFFHOURS_WAKE_ON_DEPLOY": "no"}).offhours.rules.wake_on_deploy is False


# ---- requests and overrides ------------------------------------------------------------------------------------


def test_console_input_is_environment_and_action() -> None:
    request = OffhoursRequest.model_validate({"environment": "staging", "action": "down"})
    assert request.trigger == "console"
    with pytest.raises(ValidationError):
        OffhoursRequest.model_validate({"environment": "staging", "action": "sideways"})
    with pytest.raises(ValidationError):
        OffhoursRequest.model_validate({"environment": "dev", "action": "up"})


def test_stay_awake_needs_a_time_and_no_payload_names_a_person() -> None:
    with pytest.raises(ValidationError, match="until"):
        OffhoursRequest.model_validate({"environment": "staging", "action": "stay-awake"})
    ok = OffhoursRequest.model_validate(
        {"environment": "staging", "action": "stay-awake", "until": "2025-03-03T22:00:00Z"}
    )
    assert ok.until == datetime(2025, 3, 3, 22, tzinfo=UTC)
    with pytest.raises(ValidationError, match="requested_by"):  # a typed name is refused, not recorded
        OffhoursRequest.model_validate(
            {"environment": "staging", "action": "stay-awake", "until": "2025-03-03T22:00:00Z", "requested_by": "ana"}
        )
    with pytest.raises(ValidationError, match="reason"):
        OffhoursRequest.model_validate({"environment": "staging", "action": "down", "reason": "bob\nApproved-by: x"})


def test_stay_awake_is_active_until_its_time_only() -> None:
    override = StayAwake(environment="staging", until=T0 + timedelta(hours=3), requested_by="ana", requested_at=T0)
    assert override.active(T0 + timedelta(hours=2, minutes=59))
    assert not override.active(T0 + timedelta(hours=3))


# ---- wake order -------------------------------------------------------------------------------------------------


def test_services_others_call_wake_first_and_the_api_gateway_last() -> None:
    snapshot = staging_snapshot()
    extra = WorkloadSnapshot(ref=deployment_ref("cache", "StatefulSet"), replicas=1, sleep_replicas=0)
    waves = wake_waves([*snapshot.workloads, extra], OffhoursConfig())
    assert [r.name for r in waves[0]] == ["cache"]
    assert platform.EDGE_SERVICE not in {r.name for r in waves[1]}
    assert len(waves[1]) == len(platform.SERVICES) - 1
    assert [r.name for r in waves[-1]] == [platform.EDGE_SERVICE]


def test_wake_first_moves_a_service_into_the_first_wave() -> None:
    waves = wake_waves(staging_snapshot().workloads, OffhoursConfig(wake_first=("security-service",)))
    assert [r.name for r in waves[0]] == ["security-service"]


# ---- savings -------------------------------------------------------------------------------------------------------


def test_a_twelve_hour_staging_night_saves_node_hours_pod_hours_and_dollars() -> None:
    night = savings(staging_snapshot(), slept_at=T0, woke_at=T0 + timedelta(hours=12), config=OffhoursConfig())
    assert night.hours == 12
    assert night.node_hours == 24  # one t3.medium and one spot node, 12 h each
    assert night.pod_hours == 8 * 12
    on_demand = 12 * 0.0416
    spot = 12 * 0.0832 * 0.35
    assert night.estimated_cost == pytest.approx(on_demand + spot, abs=1e-3)
    assert night.unpriced == ()
    assert {g.name: g.nodes_saved for g in night.nodegroups} == {"general": 1, "spot": 1, "compute": 0}


def test_an_instance_type_missing_from_the_price_table_counts_hours_but_no_cost() -> None:
    night = savings(
        staging_snapshot(),
        slept_at=T0,
        woke_at=T0 + timedelta(hours=10),
        config=OffhoursConfig(prices={"t3.medium": 0.0416}),
    )
    assert night.node_hours == 20
    assert night.estimated_cost == pytest.approx(10 * 0.0416)
    assert night.unpriced == ("t3.large",)


# ---- snapshot entries ------------------------------------------------------------------------------------------------


def test_an_object_already_marked_asleep_records_what_it_wakes_to_not_its_sleeping_size() -> None:
    found = Inventory(
        workloads=[
            LiveWorkload(deployment_ref("edc-service"), 0, {ASLEEP_ANNOTATION: json.dumps({"replicas": 3})}),
            LiveWorkload(deployment_ref("quality-service"), 2, {}),
        ],
        hpas=[
            LiveHpa(hpa_ref("edc-service"), deployment_ref("edc-service"), 1, 1,
                    {ASLEEP_ANNOTATION: json.dumps({"minReplicas": 2, "maxReplicas": 6})}),
            LiveHpa(hpa_ref("orphan"), deployment_ref("gone"), 1, 4, {}),
        ],
    )  # fmt: skip
    workloads, hpas = snapshot_entries(found, sleep_replicas=0)
    assert {w.ref.name: w.replicas for w in workloads} == {"edc-service": 3, "quality-service": 2}
    assert [(h.ref.name, h.min_replicas, h.max_replicas, h.pinned) for h in hpas] == [("edc-service", 2, 6, False)]


def test_a_non_zero_off_hours_size_pins_the_hpa_and_never_raises_a_workload() -> None:
    found = Inventory(
        workloads=[LiveWorkload(deployment_ref("a"), 3, {}), LiveWorkload(deployment_ref("b"), 0, {})],
        hpas=[LiveHpa(hpa_ref("a"), deployment_ref("a"), 2, 5, {})],
    )
    workloads, hpas = snapshot_entries(found, sleep_replicas=1)
    assert {w.ref.name: w.sleep_replicas for w in workloads} == {"a": 1, "b": 0}
    assert (hpas[0].sleep_min, hpas[0].sleep_max) == (1, 1)


# ---- deploy while asleep ------------------------------------------------------------------------------------------


def rendered(name: str, replicas: int, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "annotations": dict(annotations)},
        "spec": {"replicas": replicas},
    }


def rendered_hpa(name: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }


def test_a_deploy_while_asleep_wakes_hpa_scaled_workloads_to_what_they_slept_from_within_the_new_bounds() -> None:
    """Rendering leaves spec.replicas out when an HPA scales the workload: the snapshot's size is kept."""
    snapshot = staging_snapshot().model_copy(
        update={"workloads": (
            WorkloadSnapshot(ref=deployment_ref("api-gateway"), replicas=4, sleep_replicas=0),
            WorkloadSnapshot(ref=deployment_ref("edc-service"), replicas=3, sleep_replicas=0),
            WorkloadSnapshot(ref=deployment_ref("stopped"), replicas=0, sleep_replicas=0),
        )}
    )  # fmt: skip
    names = ("api-gateway", "edc-service", "stopped", "brand-new")
    objects = []
    for name, (low, high) in zip(names, [(2, 6), (1, 2), (1, 3), (2, 4)], strict=True):
        workload = rendered(name, 1)
        del workload["spec"]["replicas"]
        objects += [workload, rendered_hpa(name, low, high)]

    out, rebased = keep_asleep_objects(objects, snapshot, OffhoursConfig(), release_id="r-43", now=T0)

    wakes_to = {name: rebased.workload(deployment_ref(name)) for name in names}
    assert {n: w.replicas for n, w in wakes_to.items() if w is not None} == {
        "api-gateway": 4,  # what it slept from
        "edc-service": 2,  # the release lowered maxReplicas
        "stopped": 0,  # was at 0 (the HPA leaves it there)
        "brand-new": 2,  # new: the HPA's minimum
    }
    for obj in out:
        if obj["kind"] == "Deployment":
            assert obj["spec"]["replicas"] == 0  # applied at the sleeping size
            assert (
                json.loads(obj["metadata"]["annotations"][ASLEEP_ANNOTATION])["replicas"]
                == wakes_to[obj["metadata"]["name"]].replicas
            )  # type: ignore[union-attr]
    assert "replicas" not in objects[0]["spec"]  # the caller's objects are not modified


def test_a_deploy_while_asleep_applies_the_sleeping_size_and_rebases_the_snapshot_on_the_release() -> None:
    snapshot = staging_snapshot().model_copy(
        update={
            "hpas": (HpaSnapshot(ref=hpa_ref("edc-service"), target=deployment_ref("edc-service"), min_replicas=1,
                                 max_replicas=3),),
            "excluded": (Exclusion(key=deployment_ref("quality-service").key, reason="annotation"),),
        }
    )  # fmt: skip
    objects = [
        rendered("edc-service", 2),
        rendered_hpa("edc-service", 2, 5),
        rendered("quality-service", 1),
        rendered("brand-new", 1),
        rendered("opted-out", 1, **{EXCLUDE_ANNOTATION: "true"}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": NS}},
    ]
    out, rebased = keep_asleep_objects(objects, snapshot, OffhoursConfig(), release_id="r-42", now=T0)

    by_name = {(o["kind"], o["metadata"]["name"]): o for o in out}
    assert by_name[("Deployment", "edc-service")]["spec"]["replicas"] == 0
    note = json.loads(by_name[("Deployment", "edc-service")]["metadata"]["annotations"][ASLEEP_ANNOTATION])
    assert note["replicas"] == 2
    assert by_name[("Deployment", "brand-new")]["spec"]["replicas"] == 0
    assert by_name[("Deployment", "quality-service")]["spec"]["replicas"] == 1  # excluded: as rendered
    assert by_name[("Deployment", "opted-out")]["spec"]["replicas"] == 1
    assert by_name[("HorizontalPodAutoscaler", "edc-service")]["spec"]["minReplicas"] == 2  # HPA inactive at 0
    assert objects[0]["spec"]["replicas"] == 2  # the caller's objects are not modified

    assert rebased.release_id == "r-42"
    edc = rebased.workload(deployment_ref("edc-service"))
    assert edc is not None
    assert (edc.replicas, edc.release_id) == (2, "r-42")
    assert rebased.workload(deployment_ref("brand-new")) is not None
    assert rebased.workload(deployment_ref("opted-out")) is None
    (hpa,) = rebased.hpas_for(deployment_ref("edc-service"))
    assert (hpa.min_replicas, hpa.max_replicas) == (2, 5)
    gateway = rebased.workload(deployment_ref("api-gateway"))
    assert gateway is not None
    assert gateway.replicas == 2
