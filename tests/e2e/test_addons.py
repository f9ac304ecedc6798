"""The add-ons a release needs (manifests/addons) are installed and ready before the release is applied."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from controlplane import platform
from controlplane.models.addons import ADDON_LABEL
from kubernetes.client import AdmissionregistrationV1Api, AppsV1Api, CoreV1Api

from local.cluster import Behaviour, api_client
from local.pipeline import CLUSTER_NAME, Pipeline, pipeline

ESO_IMAGE = "ghcr.io/external-secrets/external-secrets:v2.9.0"


def cause_of(result: Any) -> str:
    try:
        return str(json.loads(result.cause or "{}").get("errorMessage", result.cause))
    except json.JSONDecodeError:
        return str(result.cause)


def test_the_first_release_installs_its_addons_before_anything_of_its_own_and_records_them(pipe: Pipeline) -> None:
    result = pipe.first_release()

    states = result.states_entered()
    assert states.index("InstallAddons") < states.index("CheckAddons") < states.index("ApplyRelease")
    apps = AppsV1Api(api_client(pipe.cluster))
    eso = apps.read_namespaced_deployment("external-secrets", "external-secrets")
    assert eso.metadata.labels[ADDON_LABEL] == "external-secrets"
    assert eso.status.ready_replicas == 1
    autoscaler = apps.read_namespaced_deployment("cluster-autoscaler", "kube-system")
    args = autoscaler.spec.template.spec.containers[0].command
    assert (
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/{CLUSTER_NAME}"
        in args
    )
    # The load balancer controller: ready in CheckAddons, its webhooks trusting the certificate the control plane made.
    alb = apps.read_namespaced_deployment("aws-load-balancer-controller", "kube-system")
    assert (alb.metadata.labels[ADDON_LABEL], alb.status.ready_replicas) == ("aws-load-balancer-controller", 2)
    assert f"--cluster-name={CLUSTER_NAME}" in alb.spec.template.spec.containers[0].args
    tls = CoreV1Api(api_client(pipe.cluster)).read_namespaced_secret("aws-load-balancer-tls", "kube-system")
    hooks = AdmissionregistrationV1Api(api_client(pipe.cluster))
    for config in (
        hooks.read_mutating_webhook_configuration("aws-load-balancer-webhook"),
        hooks.read_validating_webhook_configuration("aws-load-balancer-webhook"),
    ):
        assert {base64.b64encode(w.client_config.ca_bundle).decode() if isinstance(w.client_config.ca_bundle, bytes)
                else w.client_config.ca_bundle for w in config.webhooks} == {tls.data["ca.crt"]}  # fmt: skip
    # Recorded with the release: a rollback to it re-applies these add-on versions.
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    recorded = pipe.ledger.applied_objects(lkg.release_id)
    assert {o["metadata"]["name"] for o in recorded if ADDON_LABEL in o["metadata"].get("labels", {})} >= {
        "external-secrets",
        "cluster-autoscaler",
        "clustersecretstores.external-secrets.io",
    }


@pytest.mark.parametrize(
    ("behaviour", "shows"),
    [
        # the readiness deadline (120 s from the pod's start) or the release's deadline (120 s), whichever is seen first
        (Behaviour.never_ready(), r"not ready by its deadline|NeverReady: running but not ready for over 120 s"),
        (Behaviour.crash_loop(), "CrashLoopBackOff"),
    ],
    ids=["never-ready", "crash-loop"],
)
def test_an_addon_that_never_becomes_ready_stops_the_first_release_with_its_cause_and_no_quarantine(
    cluster: Any, behaviour: Behaviour, shows: str
) -> None:
    cluster.images.set(ESO_IMAGE, behaviour)
    with pipeline(cluster, DeployDeadlineSeconds=120) as pipe:
        images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
        result = pipe.deploy({"environment": "staging", "services": images, "reason": "first release"})

        assert result.status == "FAILED"
        assert result.error == "AddonNotReadyError"
        cause = cause_of(result)
        assert "external-secrets" in cause
        assert re.search(shows, cause), cause
        assert "nothing quarantined" in cause
        assert "ApplyRelease" not in result.states_entered()
        assert pipe.ledger.quarantined(images.values()) == {}
        # Nothing of the release itself reached the cluster (only the add-ons' objects, cluster-scoped CRDs among them).
        assert [key for key in pipe.owned() if f"/{platform.NAMESPACE}/" in key] == []
        (release,) = pipe.releases("staging")
        assert release.status.value == "failed"


def test_an_addon_crash_looping_after_checkaddons_is_the_platforms_never_the_release_and_quarantines_nothing(
    pipe: Pipeline,
) -> None:
    """Failure attribution (#12): CheckHealth and Bake watch the release's own workloads; an add-on (CheckAddons'
    subject, proven ready before ApplyRelease) that starts crash-looping during the bake neither rolls the release
    back nor quarantines a service's digest. The next deploy's CheckAddons reports it as the platform's."""
    # Ready in CheckAddons, crash-looping 30 s (simulated) after it started: while the release is checked and bakes.
    pipe.cluster.images.set(ESO_IMAGE, Behaviour.crashes_after(30))

    first = pipe.first_release()

    entered = first.states_entered()
    assert "Bake" in entered
    assert "RecordSuccess" in entered
    release = pipe.planned_release(first)
    assert pipe.ledger.require_release(release).status.value == "succeeded"
    assert pipe.ledger.last_known_good("staging").release_id == release  # type: ignore[union-attr]
    assert pipe.ledger.quarantined(pipe.digests.values()) == {}
    eso = CoreV1Api(api_client(pipe.cluster)).list_namespaced_pod("external-secrets").items
    assert any(
        (s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff") or s.restart_count > 0
        for p in eso
        for s in p.status.container_statuses or []
    )  # the add-on did regress while the release baked

    # The next deploy finds it in CheckAddons: the platform's (AddonNotReadyError), its release never applied, nothing
    # quarantined. (What follows, the rollback to the last known-good release, also watches the add-ons: see README.)
    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "FAILED"
    assert "AddonNotReadyError: release" in result.cause
    assert "external-secrets" in result.cause
    assert "nothing quarantined" in result.cause
    assert "ApplyRelease" not in result.states_entered()
    assert pipe.ledger.quarantined(pipe.digests.values()) == {}
