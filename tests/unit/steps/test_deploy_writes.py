"""What a deploy's preflight asks for: the objects the record and a trusted drift check say it may send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from controlplane.models.addons import ADDON_LABEL
from controlplane.models.drift import DriftFinding, DriftKind, DriftMode, DriftReport
from controlplane.models.kube import AppliedObject, ObjectRef, canonical_sha256
from controlplane.steps.apply import deploy_writes

pytestmark = pytest.mark.unit

NS = "clinical-trials"


def obj(kind: str, name: str, *, namespace: str | None = NS, addon: bool = False, data: str = "1") -> dict[str, Any]:
    api_version = {"Deployment": "apps/v1", "HorizontalPodAutoscaler": "autoscaling/v2"}.get(kind, "v1")
    meta: dict[str, Any] = {"name": name, "labels": {ADDON_LABEL: "x"} if addon else {}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "data": {"k": data}}


def record(*objects: dict[str, Any]) -> dict[str, AppliedObject]:
    return {
        ObjectRef.of(o).key: AppliedObject(ref=ObjectRef.of(o), action="configured", sha256=canonical_sha256(o))
        for o in objects
    }


def report(*found: dict[str, Any], addons: list[dict[str, Any]] | None = None) -> DriftReport:
    findings = [DriftFinding(ref=ObjectRef.of(o), kind=DriftKind.CHANGED, path="data.k") for o in found]
    return DriftReport(
        environment="staging",
        checked_at=datetime(2026, 12, 1, tzinfo=UTC),
        execution_arn="arn:drift",
        mode=DriftMode.REPORT,
        findings=findings,
        findings_total=len(findings),
        addons_checked=sorted(ObjectRef.of(o).key for o in addons or []),
    )


def names(objects: list[Any] | None) -> list[str]:
    assert objects is not None
    return [o["metadata"]["name"] for o in objects]


def test_a_redeploy_asks_only_for_what_changed_drifted_or_may_be_resent_asleep() -> None:
    same, drifted, gone = obj("ConfigMap", "same"), obj("ConfigMap", "drifted"), obj("ConfigMap", "gone")
    workload, hpa = obj("Deployment", "edc-service"), obj("HorizontalPodAutoscaler", "edc-service")
    addon, new_addon = (
        obj("ServiceAccount", "ca", namespace="kube-system", addon=True),
        obj("ServiceAccount", "new", namespace="kube-system", addon=True),
    )
    changed = obj("ConfigMap", "changed")
    last = record(same, drifted, gone, workload, hpa, addon, new_addon, changed)
    objects = [same, drifted, workload, hpa, addon, new_addon, obj("ConfigMap", "changed", data="2")]

    sending, deleting = deploy_writes(objects, last, report(drifted, addons=[addon]), prune=True, sleeping=[NS])
    # the drifted one, the changed one, the workload and its HPA (re-sent while asleep), the add-on the check did
    # not compare; not the unchanged ConfigMap or the compared, unchanged add-on
    assert names(sending) == ["drifted", "edc-service", "edc-service", "new", "changed"]
    assert [r.name for r in deleting] == ["gone"]  # what the prune deletes, by name
    assert deploy_writes(objects, last, report(drifted, addons=[addon]), prune=False, sleeping=[NS])[1] == []


def test_without_a_record_or_a_trusted_check_every_object_is_asked_for() -> None:
    objects = [obj("ConfigMap", "a")]
    assert deploy_writes(objects, {}, report(), prune=True, sleeping=[NS]) == (None, [])
    assert deploy_writes(objects, record(*objects), None, prune=True, sleeping=[NS]) == (None, [])


def test_a_check_that_compared_no_addons_leaves_every_addon_asked_for() -> None:
    addon = obj("ServiceAccount", "ca", namespace="kube-system", addon=True)
    own = obj("ConfigMap", "a")
    sending, _ = deploy_writes([own, addon], record(own, addon), report(), prune=False, sleeping=[NS])
    assert names(sending) == ["ca"]


def test_an_addon_workload_is_asked_for_only_when_it_changed_or_sleeps_with_the_release() -> None:
    """InstallAddons never keeps an add-on asleep and ApplyRelease trusts what it recorded: an unchanged add-on
    Deployment outside the namespaces off-hours scales is not sent, so its permissions are not asked."""
    own = obj("Deployment", "edc-service")
    addon = obj("Deployment", "cluster-autoscaler", namespace="kube-system", addon=True)
    objects = [own, addon]

    sending, _ = deploy_writes(objects, record(*objects), report(addons=[addon]), prune=False, sleeping=[NS])
    assert names(sending) == ["edc-service"]
    sending, _ = deploy_writes(
        objects, record(*objects), report(addons=[addon]), prune=False, sleeping=[NS, "kube-system"]
    )
    assert names(sending) == ["edc-service", "cluster-autoscaler"]
    changed = obj("Deployment", "cluster-autoscaler", namespace="kube-system", addon=True, data="2")
    sending, _ = deploy_writes([own, changed], record(*objects), report(addons=[addon]), prune=False, sleeping=[NS])
    assert names(sending) == ["edc-service", "cluster-autoscaler"]
