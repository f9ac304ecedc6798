"""Release models: what crosses state boundaries survives JSON, names bad fields, and stays small."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controlplane import platform
from controlplane.errors import InputValidationError
from controlplane.models.lease import Lease
from controlplane.models.release import (
    ApplyOutput,
    ApplyPurpose,
    ConsoleRequest,
    EcrPushEvent,
    HealthInput,
    Outcome,
    PlanOutput,
    RecordInput,
    ReleaseRef,
    RollbackTarget,
    RollbackTargetInput,
    RolloutRef,
    SmokeInput,
    StepError,
    Trigger,
    TriggerKind,
    parse,
    release_id_for,
)

from tests.conftest import load_event

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 16, 1, 54, 34, tzinfo=UTC)
STATE_LIMIT = 256 * 1024


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def full_images() -> dict[str, str]:
    return {name: digest(i + 1) for i, name in enumerate(platform.SERVICE_NAMES)}


def test_real_ecr_push_event_parses_with_hyphenated_fields() -> None:
    event = parse(EcrPushEvent, load_event("ecr_push"))
    assert event.detail.repository_name == "clinical-trials/edc-service"
    assert event.detail.image_tag == "main-4f1c2d9"
    assert event.detail.image_digest.startswith("sha256:")


def test_malformed_ecr_event_names_the_bad_field() -> None:
    with pytest.raises(InputValidationError, match=r"detail\.image-digest"):
        parse(EcrPushEvent, load_event("ecr_push_malformed"), what="ECR event")


def test_ecr_event_ignores_fields_aws_adds_later() -> None:
    raw = load_event("ecr_push")
    raw["detail"]["manifest-media-type"] = "application/vnd.oci.image.manifest.v1+json"
    assert parse(EcrPushEvent, raw).detail.action_type == "PUSH"


def test_console_request_accepts_repository_names_and_tags() -> None:
    request = parse(ConsoleRequest, load_event("console_deploy"))
    assert request.services == {
        "edc-service": "v1.4.2",
        "api-gateway": digest(0x1111111111111111111111111111111111111111111111111111111111111111),
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"environment": "qa"}, "environment"),
        ({"services": {"no-such-service": "v1"}}, "services.no-such-service"),
        ({"services": {"edc-service": "bad tag!"}}, "services.edc-service"),
        ({"reason": ""}, "reason"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_console_request_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    raw = {**load_event("console_deploy"), **change}
    with pytest.raises(InputValidationError) as caught:
        parse(ConsoleRequest, raw, what="console request")
    assert field in str(caught.value)


def test_release_id_is_deterministic_and_order_independent() -> None:
    images = full_images()
    reversed_images = dict(reversed(list(images.items())))
    a = ReleaseRef.build("staging", images, "sha256:bundle")
    b = ReleaseRef.build("staging", reversed_images, "sha256:bundle")
    assert a == b
    assert a.release_id != ReleaseRef.build("production", images, "sha256:bundle").release_id
    assert a.release_id != ReleaseRef.build("staging", images, "sha256:other").release_id
    assert a.release_id == release_id_for("staging", images, "sha256:bundle")


def _plan(images: dict[str, str]) -> PlanOutput:
    release = ReleaseRef.build("staging", images, "sha256:" + "b" * 64)
    return PlanOutput(
        action="deploy",
        reason="push",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:deploy:abc",
        started_at=NOW,
        deadline_at=NOW + timedelta(minutes=15),
        trigger=Trigger(kind=TriggerKind.ECR_PUSH, reason="push", event_id="e", repository="r", tag="t"),
        release=release,
        previous_release_id="rel-" + "0" * 20,
        changed=dict(list(images.items())[:1]),
    )


LEASE = Lease(environment="staging", owner="arn", token=3)


def _apply(images: dict[str, str], release_id: str) -> ApplyOutput:
    return ApplyOutput(
        release_id=release_id,
        applied=len(images) * 6,
        pruned=0,
        rollout=RolloutRef(
            release_id=release_id,
            purpose=ApplyPurpose.DEPLOY,
            chunks=1,
            workloads=len(images),
            smoke_targets=len(images),
        ),
        applied_at=NOW,
        source="render",
    )


@pytest.mark.parametrize(
    "model",
    [
        lambda: _plan(full_images()),
        lambda: _apply(full_images(), "rel-" + "1" * 20),
        lambda: HealthInput(
            release_id="rel-" + "1" * 20,
            execution_arn="arn",
            rollout=RolloutRef(
                release_id="rel-" + "1" * 20, purpose=ApplyPurpose.ROLLBACK, chunks=1, workloads=1, smoke_targets=0
            ),
            now=NOW,
            started_at=NOW,
            deadline_at=NOW,
            lease=LEASE,
        ),
        lambda: RecordInput(
            outcome=Outcome.ROLLED_BACK,
            execution_arn="arn",
            now=NOW,
            lease=LEASE,
            plan=_plan(full_images()),
            error=StepError(Error="RolloutFailedError", Cause='{"errorMessage": "boom"}'),
            rollback=RollbackTarget(found=False, reason="first release", started_at=NOW, deadline_at=NOW),
        ),
        lambda: RollbackTargetInput.model_validate(
            {
                "now": NOW.isoformat(),
                "execution_arn": "arn",
                "lease": LEASE.model_dump(),
                "request": {"environment": "staging"},
            }
        ),
    ],
    ids=["plan", "apply", "health", "record", "rollback-target"],
)
def test_state_payloads_survive_a_json_round_trip(model: Any) -> None:
    value = model()
    again = type(value).model_validate(json.loads(json.dumps(value.model_dump(mode="json"))))
    assert again == value


def test_rollback_target_input_needs_exactly_one_of_request_or_automatic() -> None:
    with pytest.raises(InputValidationError, match="exactly one"):
        parse(RollbackTargetInput, {"now": NOW.isoformat(), "execution_arn": "arn", "lease": LEASE.model_dump()})


def test_step_error_message_extracts_lambda_error_message() -> None:
    cause = json.dumps({"errorType": "PlanError", "errorMessage": "tag 'x' matches no rule", "stackTrace": []})
    assert StepError(Error="PlanError", Cause=cause).message() == "tag 'x' matches no rule"
    assert StepError(Error="States.Timeout", Cause="timed out").message() == "timed out"


def test_a_100_service_release_state_stays_far_below_the_256_kib_limit() -> None:
    images = {f"service-{i:03d}": digest(i) for i in range(100)}
    plan = _plan(images)
    assert plan.release is not None
    apply = _apply(images, plan.release.release_id)
    # The whole deploy state at its largest: plan, apply, health, rollback target, a failure cause.
    state = {
        "plan": plan.model_dump(mode="json"),
        "apply": apply.model_dump(mode="json"),
        "health": {
            "release_id": plan.release.release_id,
            "healthy": False,
            "checked_at": NOW.isoformat(),
            "pending": [f"Deployment.apps/clinical-trials/service-{i:03d}: waiting" for i in range(100)],
        },
        "rollback": RollbackTarget(
            found=True, reason="r", started_at=NOW, deadline_at=NOW, release=plan.release
        ).model_dump(mode="json"),
        "rollback_apply": apply.model_dump(mode="json"),
        "error": {"Error": "RolloutFailedError", "Cause": "x" * 4000},
    }
    size = len(json.dumps(state).encode())
    assert size < STATE_LIMIT / 2, f"{size} bytes"


def test_a_step_error_keeps_a_json_or_missing_cause_as_text() -> None:
    assert StepError.model_validate({"Error": "ApprovalRejectedError", "Cause": {"b": 1, "a": "x"}}).Cause == (
        '{"a": "x", "b": 1}'
    )
    assert StepError.model_validate({"Error": "ApprovalRejectedError", "Cause": None}).Cause == ""
    assert StepError.model_validate({"Error": "E", "Cause": "text"}).Cause == "text"


def test_health_and_smoke_inputs_take_their_lists_by_reference_or_inline_never_both() -> None:
    ref = {"release_id": "rel-x", "purpose": "deploy", "chunks": 1, "workloads": 1, "smoke_targets": 1}
    common = {"release_id": "rel-x", "execution_arn": "arn"}
    health = common | {"lease": LEASE.model_dump(), "now": NOW, "started_at": NOW, "deadline_at": NOW}
    with pytest.raises(InputValidationError, match=r"exactly one of rollout .* or workloads"):
        parse(HealthInput, health)
    with pytest.raises(InputValidationError, match=r"exactly one of rollout .* or workloads"):
        parse(HealthInput, health | {"rollout": ref, "workloads": []})
    assert parse(HealthInput, health | {"rollout": ref}).rollout is not None
    with pytest.raises(InputValidationError, match=r"exactly one of rollout .* or targets"):
        parse(SmokeInput, common)
    assert parse(SmokeInput, common | {"targets": []}).targets == []
