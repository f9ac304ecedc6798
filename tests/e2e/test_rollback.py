"""Failures after the first cluster write roll back to the last known-good release; operators can roll back too."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from controlplane.models.release import ReleaseStatus
from kubernetes.client import CoreV1Api

from local.cluster import Behaviour, api_client
from local.pipeline import Pipeline, pipeline

pytestmark = pytest.mark.e2e


def cause_of(result: Any) -> str:
    return str(result.cause or "")


# case -> (behaviour, reasons in the cause, error, whether the image is to blame and its digest quarantined)
FAIL_FAST = {
    "crash-loop": (Behaviour.crash_loop, "CrashLoopBackOff", "RolloutFailedError", True),
    "image-pull": (Behaviour.err_image_pull, "ImagePullBackOff|ErrImagePull", "RolloutFailedError", True),
    # secret "app-secrets" not found: the platform lacks an object the release refers to; the image is innocent
    "config-error": (
        Behaviour.create_container_config_error,
        "CreateContainerConfigError",
        "PlatformNotReadyError",
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(FAIL_FAST))
def test_a_fail_fast_pod_state_rolls_back_to_the_previous_release(pipe: Pipeline, case: str) -> None:
    behaviour, reason, error, image_to_blame = FAIL_FAST[case]
    pipe.first_release()
    before = pipe.owned()
    good = pipe.ledger.last_known_good("staging")
    assert good is not None

    result = pipe.push_and_deploy("edc-service", "main-2", behaviour())

    assert result.status == "FAILED"
    assert result.error == error
    cause = cause_of(result)
    assert any(r in cause for r in reason.split("|")), cause
    assert f"rollback to {good.release_id} succeeded" in cause
    assert pipe.owned() == before
    failed = pipe.ledger.require_release(pipe.planned_release(result))
    assert failed.status is ReleaseStatus.ROLLED_BACK
    assert failed.rolled_back_to == good.release_id
    bad_digest = pipe.digests["edc-service"]
    assert (bad_digest in pipe.ledger.quarantined([bad_digest])) is image_to_blame
    assert pipe.ledger.last_known_good("staging") == good


def test_a_quarantined_digest_is_refused_unless_forced(pipe: Pipeline) -> None:
    pipe.first_release()
    failed = pipe.push_and_deploy("edc-service", "main-2", Behaviour.crash_loop())
    assert failed.status == "FAILED"
    digest = pipe.digests["edc-service"]
    writes = len(pipe.writes())

    again = pipe.deploy({"environment": "staging", "services": {"edc-service": digest}, "reason": "retry"})

    assert again.status == "FAILED"
    assert again.error == "PlanError"
    assert "quarantined" in cause_of(again)
    assert len(pipe.writes()) == writes


def test_a_release_that_never_becomes_ready_fails_at_its_readiness_deadline_and_rolls_back(cluster: Any) -> None:
    with pipeline(cluster, DeployDeadlineSeconds=600) as pipe:
        pipe.first_release()
        before = pipe.owned()
        result = pipe.push_and_deploy("edc-service", "main-2", Behaviour.never_ready())
        assert result.status == "FAILED"
        assert result.error == "RolloutFailedError"
        assert "NeverReady: running but not ready for over 120 s" in cause_of(result)  # not the 600 s deadline
        assert "succeeded" in cause_of(result)
        assert pipe.owned() == before


def test_a_release_not_healthy_by_its_deadline_fails_and_rolls_back(cluster: Any) -> None:
    with pipeline(cluster, DeployDeadlineSeconds=60) as pipe:  # shorter than the 120 s readiness deadline
        pipe.first_release()
        before = pipe.owned()
        result = pipe.push_and_deploy("edc-service", "main-2", Behaviour.never_ready())
        assert result.status == "FAILED"
        assert result.error == "DeadlineExceededError"
        assert "succeeded" in cause_of(result)
        assert pipe.owned() == before


def test_a_failing_rollback_ends_with_rollback_failed_error(pipe: Pipeline) -> None:
    pipe.first_release()
    good_digest = pipe.digests["edc-service"]
    # The last known-good image now crashes too (say, a dependency it needs broke): its pods are replaced by
    # pods that crash, so re-applying it cannot make the environment healthy.
    pipe.cluster.images.set(good_digest, Behaviour.crash_loop())
    core = CoreV1Api(api_client(pipe.cluster))
    core.delete_collection_namespaced_pod("clinical-trials", label_selector="app.kubernetes.io/name=edc-service")

    result = pipe.push_and_deploy("edc-service", "main-2", Behaviour.crash_loop())

    assert result.status == "FAILED"
    assert result.error == "RollbackFailedError"
    assert "ROLLBACK" in cause_of(result)
    assert "operators must act" in cause_of(result)
    failed = pipe.ledger.require_release(pipe.planned_release(result))
    assert failed.status is ReleaseStatus.ROLLBACK_FAILED
    rollback_failures = [e for e in result.history if e.type == "FailStateEntered"]
    assert [e.state_name for e in rollback_failures] == ["RollbackFailed"]
    # The metric the RollbacksFailedAlarm watches, in its namespace and with its dimension (EMF lines in the
    # function's log stream, which is where CloudWatch extracts metrics from).
    logs = [line.message for line in pipe.cloud.runtime.logs]
    emf = [json.loads(line) for line in logs if '"RollbacksFailed"' in line]
    assert emf, "no RollbacksFailed metric emitted"
    directive = emf[-1]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SyntheticTrialStudio/ControlPlane"
    assert ["service"] in directive["Dimensions"]
    assert emf[-1]["service"] == "sts-controlplane"
    assert emf[-1]["RollbacksFailed"] == [1.0] or emf[-1]["RollbacksFailed"] == 1.0


def test_operator_rolls_back_to_the_previous_release_by_default_and_to_a_named_one(pipe: Pipeline) -> None:
    pipe.first_release()
    first = pipe.ledger.last_known_good("staging")
    assert first is not None
    first_image = pipe.deployment_image("edc-service")
    assert pipe.push_and_deploy("edc-service", "main-2").status == "SUCCEEDED"
    second = pipe.ledger.last_known_good("staging")
    assert second is not None
    second_image = pipe.deployment_image("edc-service")

    back = pipe.rollback({"environment": "staging", "reason": "bad export"})

    assert back.status == "SUCCEEDED", cause_of(back)
    assert pipe.deployment_image("edc-service") == first_image
    assert pipe.ledger.last_known_good("staging").release_id == first.release_id  # type: ignore[union-attr]

    forward = pipe.rollback({"environment": "staging", "release_id": second.release_id})

    assert forward.status == "SUCCEEDED", cause_of(forward)
    assert pipe.deployment_image("edc-service") == second_image


def test_operator_rollback_to_an_unknown_release_changes_nothing(pipe: Pipeline) -> None:
    pipe.first_release()
    writes = len(pipe.writes())
    result = pipe.rollback({"environment": "staging", "release_id": "rel-00000000000000000000"})
    assert result.status == "FAILED"
    assert "rel-00000000000000000000" in cause_of(result)
    assert len(pipe.writes()) == writes


def test_a_rollback_replaying_tampered_ledger_objects_is_refused_before_any_cluster_write(pipe: Pipeline) -> None:
    """Given a release planned with an older manifests layer (so a rollback replays its recorded objects), when
    someone with write access to the ledger swaps the image digest of one recorded Deployment (still a valid,
    pinned image of our ECR: validation alone would let it through), the rollback refuses to replay it."""
    pipe.first_release()
    first = pipe.ledger.last_known_good("staging")
    assert first is not None
    assert pipe.push_and_deploy("edc-service", "main-2").status == "SUCCEEDED"
    table, dynamodb = pipe.ledger.table_name, pipe.cloud.client("dynamodb")
    pk = {"S": f"RELEASE#{first.release_id}"}
    dynamodb.update_item(
        TableName=table,
        Key={"pk": pk, "sk": {"S": "META"}},
        UpdateExpression="SET bundle_hash = :old",
        ExpressionAttributeValues={":old": {"S": "sha256:" + "0" * 64}},
    )
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": pk, ":p": {"S": "OBJECT#"}},
    )["Items"]
    victim = next(i for i in items if i["sk"]["S"].endswith("#Deployment#clinical-trials#edc-service"))
    deployment = json.loads(zlib.decompress(victim["manifest"]["B"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].split("@")[0] + "@sha256:" + "e" * 64
    dynamodb.put_item(
        TableName=table, Item={**victim, "manifest": {"B": zlib.compress(json.dumps(deployment).encode())}}
    )
    image = pipe.deployment_image("edc-service")
    writes = len(pipe.writes())

    result = pipe.rollback({"environment": "staging", "release_id": first.release_id, "reason": "bad export"})

    assert result.status == "FAILED"
    assert "LedgerIntegrityError" in f"{result.error} {cause_of(result)}"
    assert f"{victim['sk']['S']}: sha256 mismatch" in cause_of(result)
    assert len(pipe.writes()) == writes
    assert pipe.deployment_image("edc-service") == image
