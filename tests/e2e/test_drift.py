"""Drift detection end to end on the local cloud: the scheduled drift state machine compares the cluster with the last
known-good release as the drift role (its own EKS access entry and RBAC), records the report in the ledger and S3,
and in heal mode restores the cluster through the rollback state machine; ``trialstudio drift`` shows the report.

Every workload of the bundle has an HPA, so "a scaled Deployment without an HPA" is proven at the Kubernetes tier
(tests/integration/kube/test_drift.py) and here the HPA-owned count is shown not to count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.aws.drift import DriftReports
from kubernetes.client import AppsV1Api, CoreV1Api

from local.cluster import api_client
from local.pipeline import Pipeline, pipeline
from tests.e2e.test_addon_drift import hand_edit, live_args
from tests.e2e.test_cli import Cli
from tests.e2e.test_deploy import notifications, subscribe

pytestmark = pytest.mark.e2e

NS = platform.NAMESPACE
ENV_PATH = "spec.template.spec.containers[name=edc-service].env[name=DEBUG]"
IMAGE_PATH = "spec.template.spec.containers[name=analytics-service].image"


def tamper(pipe: Pipeline) -> None:
    """What people do by hand: kubectl edit (an env var; an image), kubectl scale of an HPA'd workload, kubectl
    delete of a Service."""
    api = api_client(pipe.cluster)  # the official client, as a person would
    try:
        apps, core = AppsV1Api(api), CoreV1Api(api)
        edc = api.sanitize_for_serialization(apps.read_namespaced_deployment("edc-service", NS))
        edc["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append({"name": "DEBUG", "value": "1"})
        apps.replace_namespaced_deployment("edc-service", NS, edc, field_manager="kubectl-edit")
        analytics = api.sanitize_for_serialization(apps.read_namespaced_deployment("analytics-service", NS))
        analytics["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
        apps.replace_namespaced_deployment("analytics-service", NS, analytics, field_manager="kubectl-edit")
        apps.patch_namespaced_deployment_scale("api-gateway", NS, {"spec": {"replicas": 4}}, field_manager="kubectl")
        core.delete_namespaced_service("quality-service", NS)
    finally:
        api.close()
    pipe.cluster.advance(30)


def findings(report: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(f["ref"]["name"], f["path"]): f for f in report["findings"]}


def test_the_hourly_check_reports_what_others_changed_and_changes_nothing(
    pipe: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    cli = Cli(pipe, tmp_path)
    assert cli.json("drift")["report"] is None  # nothing checked yet
    pipe.first_release()

    inbox = subscribe(pipe)
    clean = pipe.cloud.fire_schedule("DriftStateMachineDriftCheck")  # EventBridge Scheduler -> the drift machine
    assert clean.execution_arn
    assert pipe.cloud.wait_execution(clean.execution_arn).status == "SUCCEEDED"
    code, out, _ = cli("--output", "json", "drift")
    report = json.loads(out)["report"]
    assert (report["findings"], report["skipped"], report["mode"]) == ([], None, "report")
    assert code == 0
    assert report["objects"] > 10

    assert notifications(pipe, inbox) == []  # nothing drifted: nobody is told
    tamper(pipe)
    before = pipe.resource_versions()
    done = pipe.cloud.run("DriftStateMachine", {"environment": "staging"})
    assert done.status == "SUCCEEDED", (done.error, done.cause)
    report = cli.json("drift", expect=1)["report"]
    found = findings(report)
    env = found["edc-service", ENV_PATH]
    assert (env["kind"], env["manager"], env["live"]) == ("added", "kubectl-edit", {"name": "DEBUG", "value": "1"})
    image = found["analytics-service", IMAGE_PATH]
    assert (image["kind"], image["manager"], image["live"]) == ("changed", "kubectl-edit", "nginx:1.27")
    assert image["desired"].endswith(pipe.ledger.require_release(report["release_id"]).images["analytics-service"])
    service = found["quality-service", None]
    assert (service["ref"]["kind"], service["kind"]) == ("Service", "deleted")
    assert ("api-gateway", "spec.replicas") not in found  # the HPA owns it
    assert not [p for _, p in found if p and p.startswith("status")]
    assert report["findings_total"] == len(found) == 3
    assert report["should_heal"] is False
    assert pipe.resource_versions() == before  # report mode writes nothing to the cluster
    (note,) = notifications(pipe, inbox)  # one notice, saying what drifted and what to do
    assert (note["findings"], note["release_id"], note["report"]) == (3, report["release_id"], report["report_uri"])
    assert "trialstudio drift" in note["what_to_do"]

    # the report in S3 is the same document; the ledger keeps every check
    bucket, key = report["report_uri"].removeprefix("s3://").split("/", 1)
    stored = json.loads(pipe.cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored["findings_total"] == 3
    latest = DriftReports(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").latest("staging")
    assert latest is not None
    assert latest.findings_total == 3

    code, table, _ = cli("drift")
    assert code == 1
    assert "3 finding(s)" in table
    assert f"added   Deployment {NS}/edc-service  {ENV_PATH} by kubectl-edit" in table
    assert f"deleted Service {NS}/quality-service" in table


def test_heal_mode_restores_the_cluster_through_the_rollback_and_records_it(cluster: Any) -> None:
    with pipeline(cluster, DriftMode="heal") as pipe:
        pipe.first_release()
        lkg = pipe.ledger.last_known_good("staging")
        assert lkg is not None
        tamper(pipe)
        # and an add-on in kube-system: the autoscaler's command (kubectl edit)
        hand_edit(pipe, "kube-system", "cluster-autoscaler", "command", "--v=4", "--v=9")

        done = pipe.cloud.run("DriftStateMachine", {"environment": "staging"})
        assert done.status == "SUCCEEDED", (done.error, done.cause)
        report = done.output
        assert report["should_heal"] is True
        assert report["heal"]["status"] == "succeeded"
        assert report["heal"]["remaining"] == 0
        heal = pipe.cloud.client("stepfunctions").describe_execution(executionArn=report["heal"]["execution_arn"])
        assert heal["status"] == "SUCCEEDED"
        assert "-rollback:drift-heal-" in heal["executionArn"]

        # restored: the env var gone, the image back, the Service re-created; the pointer unchanged
        owned = pipe.owned()
        assert f"Service/{NS}/quality-service" in owned
        assert pipe.deployment_image("analytics-service").endswith(
            pipe.ledger.require_release(lkg.release_id).images["analytics-service"]
        )
        api = api_client(pipe.cluster)
        try:
            edc = AppsV1Api(api).read_namespaced_deployment("edc-service", NS)
        finally:
            api.close()
        assert not [e for e in edc.spec.template.spec.containers[0].env or [] if e.name == "DEBUG"]
        assert "--v=4" in live_args(pipe, "kube-system", "cluster-autoscaler", "command")
        after = pipe.ledger.last_known_good("staging")
        assert after is not None
        assert after.release_id == lkg.release_id
        # recorded: the report names the heal and its outcome
        latest = DriftReports(str(pipe.cloud.ref("LedgerTable")), region="us-east-1").latest("staging")
        assert latest is not None
        assert latest.heal is not None
        assert (latest.heal.status.value, latest.heal.remaining, latest.findings_total) == ("succeeded", 0, 4)
        # a forged heal (anyone with StartExecution can write trigger "drift") re-applies only the last known-good
        writes = len(pipe.writes())
        older = pipe.cloud.run(
            "RollbackStateMachine", {"environment": "staging", "trigger": "drift", "release_id": "rel-" + "0" * 20}
        )
        acknowledge = pipe.cloud.run(
            "RollbackStateMachine", {"environment": "staging", "trigger": "drift", "acknowledge": True}
        )
        assert older.status == "FAILED"
        assert "re-applies only the last known-good" in str(older.cause)
        assert acknowledge.status == "FAILED"
        assert acknowledge.error == "OperatorNotAuthorizedError"
        assert len(pipe.writes()) == writes
