"""The deploy state machine, end to end on the local cloud: our ASL in moto, our handlers, the emulator as EKS.

Every test starts from an empty account and cluster. Time inside the executions is the simulated clock: Wait states
and Retry back-offs advance it, so a 15-minute deadline costs milliseconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.models.release import ReleaseStatus

from local.pipeline import MANIFESTS, Pipeline, pipeline

pytestmark = pytest.mark.e2e


def cause_of(result: Any) -> str:
    return str(result.cause or "")


def subscribe(pipe: Pipeline) -> str:
    """An SQS queue subscribed to the notification topic (raw delivery); returns its URL."""
    sqs, sns = pipe.cloud.client("sqs"), pipe.cloud.client("sns")
    url = sqs.create_queue(QueueName="release-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = str(pipe.cloud.ref("NotificationTopic"))
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return str(url)


def notifications(pipe: Pipeline, url: str) -> list[dict[str, Any]]:
    messages = pipe.cloud.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


# ---- happy path ------------------------------------------------------------------------------------------------


def test_ecr_push_deploys_the_new_digest_to_a_healthy_cluster_and_records_it(pipe: Pipeline) -> None:
    first = pipe.first_release()
    first_lkg = pipe.ledger.last_known_good("staging")
    assert first_lkg is not None
    assert [e.state_name for e in first.history if e.type == "SucceedStateEntered"] == ["Deployed"]

    inbox = subscribe(pipe)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", cause_of(result)
    notes = notifications(pipe, inbox)
    assert [(n["outcome"], n["release_id"]) for n in notes] == [
        ("succeeded", result.output["plan"]["release"]["release_id"])
    ]
    digest = pipe.digests["edc-service"]
    assert pipe.deployment_image("edc-service").endswith(f"@{digest}")
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    assert lkg.previous_release_id == first_lkg.release_id
    record = pipe.ledger.require_release(lkg.release_id)
    assert record.status is ReleaseStatus.SUCCEEDED
    assert record.images["edc-service"] == digest
    assert record.changed == {"edc-service": digest}
    assert record.trigger.kind.value == "ecr_push"
    assert record.healthy_at is not None
    assert record.execution_arn == result.arn
    assert len(pipe.ledger.applied_objects(lkg.release_id)) == record.applied_objects


def test_a_push_the_tag_rules_send_to_another_environment_is_skipped(pipe: Pipeline) -> None:
    digest = pipe.push("edc-service", "v9.9.9")
    arns = pipe.deliver(pipe.push_event("clinical-trials/edc-service", digest, "v9.9.9"))
    result = pipe.cloud.wait_execution(arns[0])
    assert result.status == "SUCCEEDED"
    assert result.output["lock"]["outcome"] == "SKIPPED"  # decided before locking or planning anything
    assert result.states_entered()[-1] == "NothingToDeploy"
    assert pipe.writes() == []


def test_pushes_outside_clinical_trials_never_start_the_pipeline(pipe: Pipeline) -> None:
    event = pipe.push_event("other-team/edc-service", "sha256:" + "1" * 64, "main-1")
    assert pipe.deliver(event) == []
    failed_push = pipe.push_event("clinical-trials/edc-service", "sha256:" + "1" * 64, "main-1")
    failed_push["detail"]["result"] = "FAILURE"
    assert pipe.deliver(failed_push) == []


# ---- bad inputs: clear cause, nothing written to the cluster ----------------------------------------------------


def test_a_malformed_event_fails_naming_the_field_and_touches_nothing(pipe: Pipeline) -> None:
    event = json.loads((MANIFESTS.parents[1] / "tests" / "events" / "ecr_push_malformed.json").read_text())
    result = pipe.deploy(event)
    assert result.status == "FAILED"
    assert result.error == "InputValidationError"
    assert "detail.image-digest" in cause_of(result)
    assert pipe.writes() == []


def test_an_unknown_repository_fails_naming_it(pipe: Pipeline) -> None:
    pipe.first_release()
    writes = len(pipe.writes())
    digest = str(pipe.cloud.push_image("clinical-trials/unknown-service", "main-2", emit_event=False))
    arns = pipe.deliver(pipe.push_event("clinical-trials/unknown-service", digest, "main-2"))
    result = pipe.cloud.wait_execution(arns[0])
    assert result.status == "FAILED"
    assert result.error == "PlanError"
    assert "unknown-service" in cause_of(result)
    assert len(pipe.writes()) == writes


def test_a_tag_outside_the_rules_fails_naming_tag_and_rules(pipe: Pipeline) -> None:
    digest = pipe.push("edc-service", "feature-x")
    arns = pipe.deliver(pipe.push_event("clinical-trials/edc-service", digest, "feature-x"))
    result = pipe.cloud.wait_execution(arns[0])
    assert result.status == "FAILED"
    assert result.error == "PlanError"
    assert "'feature-x'" in cause_of(result)
    assert "TAG_RULES" in cause_of(result)
    assert pipe.writes() == []


def test_the_first_release_says_which_digests_are_missing(pipe: Pipeline) -> None:
    result = pipe.push_and_deploy("edc-service", "main-1")
    assert result.status == "FAILED"
    assert result.error == "PlanError"
    assert "first release" in cause_of(result)
    assert "api-gateway" in cause_of(result)
    assert pipe.writes() == []


def test_a_console_request_for_another_environment_fails_naming_the_field(pipe: Pipeline) -> None:
    result = pipe.deploy({"environment": "production", "services": {"edc-service": "v1"}, "reason": "x"})
    assert result.status == "FAILED"
    assert result.error == "InputValidationError"
    assert "environment" in cause_of(result)


def test_a_release_whose_manifests_fail_validation_never_reaches_the_cluster(cluster: Any, tmp_path: Path) -> None:
    broken = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, broken)
    shutil.copytree(MANIFESTS.parent / "addons", tmp_path / "addons")
    target = broken / "services" / "edc-service.yaml"
    target.write_text(target.read_text().replace("containerPort:", "containerPortt:", 1))
    with pipeline(cluster, ManifestsDir=str(broken)) as pipe:
        images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
        result = pipe.deploy({"environment": "staging", "services": images, "reason": "broken manifests"})
        assert result.status == "FAILED"
        assert result.error == "ManifestValidationError"
        assert "containerPortt" in cause_of(result)
        assert pipe.writes() == []


# ---- reruns ------------------------------------------------------------------------------------------------------


def test_rerunning_the_same_input_reaches_the_same_state_without_duplicate_ledger_entries(pipe: Pipeline) -> None:
    images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
    request = {"environment": "staging", "services": images, "reason": "first release"}
    first = pipe.deploy(request)
    second = pipe.deploy(request)
    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    plans = [r.output["plan"]["release"]["release_id"] for r in (first, second)]
    assert plans[0] == plans[1]
    table = pipe.cloud.client("dynamodb")
    items = table.scan(TableName=str(pipe.cloud.ref("LedgerTable")))["Items"]
    metas = [i for i in items if i["sk"]["S"] == "META"]
    assert len(metas) == 1
    assert set(metas[0]["executions"]["SS"]) == {first.arn, second.arn}
    lkg = pipe.ledger.last_known_good("staging")
    assert lkg is not None
    assert (lkg.release_id, lkg.previous_release_id) == (plans[0], None)


def test_a_rerun_after_a_mid_run_failure_reaches_the_intended_end_state(pipe: Pipeline) -> None:
    """moto cannot redrive (RedriveNotSupportedError): an operator re-runs the same input instead."""
    images = {name: pipe.push(name, "main-1") for name in platform.SERVICE_NAMES}
    request = {"environment": "staging", "services": images, "reason": "first release"}
    pipe.cluster.faults.add(verb="apply", resource="deployments", status=500, times=None)
    failed = pipe.deploy(request)
    assert failed.status == "FAILED"
    assert "KubernetesTransientError" in (failed.error or "") + cause_of(failed)
    pipe.cluster.faults.clear()

    rerun = pipe.deploy(request)

    assert rerun.status == "SUCCEEDED", cause_of(rerun)
    release_id = rerun.output["plan"]["release"]["release_id"]
    record = pipe.ledger.require_release(release_id)
    assert record.status is ReleaseStatus.SUCCEEDED
    assert pipe.ledger.last_known_good("staging").release_id == release_id  # type: ignore[union-attr]


# ---- transient Kubernetes failures are retried -------------------------------------------------------------------


def test_429_and_503_during_apply_and_health_are_retried_and_the_deploy_succeeds(pipe: Pipeline) -> None:
    pipe.first_release()
    pipe.cluster.faults.add(verb="apply", resource="deployments", status=429, retry_after=1, times=2)
    pipe.cluster.faults.add(verb="list", resource="pods", status=503, times=2)

    result = pipe.push_and_deploy("edc-service", "main-2")

    assert result.status == "SUCCEEDED", cause_of(result)
    retried = [e for e in pipe.cloud.history(result.arn) if e.type == "LambdaFunctionFailed"]
    assert {e.details["error"] for e in retried} == {"KubernetesTransientError"}
    assert len(retried) >= 2
