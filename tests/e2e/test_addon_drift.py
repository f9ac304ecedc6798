"""A redeploy sends only the add-on objects whose content changed or which drifted: the hourly drift check compares
the add-ons too (listing as the drift role, and the ledger's record of the last apply), and InstallAddons trusts its
latest complete check within DRIFT_TRUST_SECONDS instead of listing every add-on kind on every release."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from controlplane.models.kube import ObjectRef
from controlplane.render import addon_objects
from kubernetes.client import AppsV1Api

from local.cluster import api_client
from local.pipeline import MANIFESTS, Pipeline, pipeline

pytestmark = pytest.mark.e2e

SYSTEM = "kube-system"
ADDON_NAMESPACES = {SYSTEM, "external-secrets"}
COMMAND = "spec.template.spec.containers[name=cluster-autoscaler].command"


def hand_edit(pipe: Pipeline, namespace: str, name: str, field: str, old: str, new: str) -> None:
    """kubectl edit of a Deployment's first container's ``field`` (a list of arguments): ``old`` becomes ``new``."""
    api = api_client(pipe.cluster)
    try:
        apps = AppsV1Api(api)
        live = api.sanitize_for_serialization(apps.read_namespaced_deployment(name, namespace))
        container = live["spec"]["template"]["spec"]["containers"][0]
        assert old in container[field]
        container[field] = [new if arg == old else arg for arg in container[field]]
        apps.replace_namespaced_deployment(name, namespace, live, field_manager="kubectl-edit")
    finally:
        api.close()


def live_args(pipe: Pipeline, namespace: str, name: str, field: str) -> list[str]:
    api = api_client(pipe.cluster)
    try:
        container = AppsV1Api(api).read_namespaced_deployment(name, namespace).spec.template.spec.containers[0]
        return list(getattr(container, field))
    finally:
        api.close()


def apply_requests(pipe: Pipeline) -> list[Any]:
    """The Kubernetes requests of the deploy's apply steps (InstallAddons, ApplyRelease) since the log was cleared,
    without the preflight's self reviews."""
    return [
        r
        for r in pipe.cluster.requests
        if r.user.endswith("-ApplyFunction") and r.resource != "selfsubjectaccessreviews"
    ]


def drift_check(pipe: Pipeline) -> dict[str, Any]:
    done = pipe.cloud.run("DriftStateMachine", {"environment": "staging"})
    assert done.status == "SUCCEEDED", (done.error, done.cause)
    return dict(done.output)


def deploy(pipe: Pipeline, service: str, tag: str) -> None:
    pipe.cluster.requests.clear()
    result = pipe.push_and_deploy(service, tag)
    assert result.status == "SUCCEEDED", (result.error, result.cause)


def test_redeploys_send_only_changed_or_drifted_addons_as_the_drift_check_covers_them(
    cluster: Any, tmp_path: Path
) -> None:
    manifests = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, manifests)
    shutil.copytree(MANIFESTS.parent / "addons", tmp_path / "addons")
    with pipeline(cluster, ManifestsDir=str(manifests)) as pipe:
        first = pipe.first_release()
        assert first.status == "SUCCEEDED", first.cause
        lkg = pipe.ledger.last_known_good("staging")
        assert lkg is not None
        addons = sorted(ObjectRef.of(o).key for o in addon_objects(pipe.ledger.applied_objects(lkg.release_id)))

        # The hourly check compares the add-ons too, as the drift role (list only in kube-system and the add-ons'
        # namespace): nothing drifted.
        clean = drift_check(pipe)
        assert (clean["findings"], clean["addons_checked"]) == ([], addons)
        assert len(addons) >= 20

        # A 1-service redeploy after it: no add-on listed or written; one PATCH of the service, a read before the
        # first write, and the webhook certificate's Secret read (its CA is every webhook's caBundle: InstallAddons
        # and ApplyRelease each read it).
        deploy(pipe, "edc-service", "main-2")
        sent = apply_requests(pipe)
        assert [(r.verb, r.resource, r.name) for r in sent if r.verb not in {"get", "list"}] == [
            ("patch", "deployments", "edc-service")
        ]
        assert {(r.verb, r.resource, r.name) for r in sent if r.namespace in ADDON_NAMESPACES} == {
            ("get", "secrets", "aws-load-balancer-tls")
        }
        assert len(sent) <= 12, [(r.verb, r.resource, r.namespace, r.name) for r in sent]

        # An add-on whose manifest changed is applied (its rendered digest differs from the record), alone.
        vendored = tmp_path / "addons" / "cluster-autoscaler" / "cluster-autoscaler.yaml"
        vendored.write_text(vendored.read_text().replace("- --v=4\n", "- --v=2\n", 1))
        deploy(pipe, "api-gateway", "main-2")
        assert [(r.resource, r.namespace, r.name) for r in apply_requests(pipe) if r.verb == "patch"] == [
            ("deployments", SYSTEM, "cluster-autoscaler"),
            ("deployments", "clinical-trials", "api-gateway"),
        ]
        assert "--v=2" in live_args(pipe, SYSTEM, "cluster-autoscaler", "command")

        # A hand edit in kube-system is reported by the next check (who, what) and re-applied by the next release.
        hand_edit(pipe, SYSTEM, "cluster-autoscaler", "command", "--v=2", "--v=9")
        report = drift_check(pipe)
        found = {(f["ref"]["namespace"], f["ref"]["name"], f["path"]): f for f in report["findings"]}
        edit = found[SYSTEM, "cluster-autoscaler", COMMAND]
        assert (edit["kind"], edit["manager"]) == ("changed", "kubectl-edit")
        assert "--v=9" in edit["live"]
        assert "--v=2" in edit["desired"]
        assert len(found) == 1, sorted(found)
        deploy(pipe, "edc-service", "main-3")
        assert "--v=2" in live_args(pipe, SYSTEM, "cluster-autoscaler", "command")
        assert ("patch", "deployments", "cluster-autoscaler") in [
            (r.verb, r.resource, r.name) for r in apply_requests(pipe)
        ]

        # With DRIFT_TRUST_SECONDS=0 (update-function-configuration of the apply function) a release checks the live
        # add-ons and re-applies one edited after the latest check, which no check has reported.
        spec = pipe.cloud.runtime.lookup(str(pipe.cloud.ref("ApplyFunction")))
        assert spec is not None
        pipe.cloud.runtime.register(replace(spec, environment={**spec.environment, "DRIFT_TRUST_SECONDS": "0"}))
        hand_edit(pipe, "external-secrets", "external-secrets", "args", "--concurrent=1", "--concurrent=8")
        deploy(pipe, "api-gateway", "main-3")
        assert "--concurrent=1" in live_args(pipe, "external-secrets", "external-secrets", "args")
        # InstallAddons listed the add-ons' kinds; ApplyRelease trusted what it had just checked (no second list)
        lists = [(r.resource, r.namespace) for r in apply_requests(pipe) if r.verb == "list"]
        addon_lists = [(resource, ns) for resource, ns in lists if ns in ADDON_NAMESPACES]
        assert addon_lists
        assert len(addon_lists) == len(set(addon_lists)), addon_lists
