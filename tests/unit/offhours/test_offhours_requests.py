"""The off-hours state machine's console and schedule inputs, as the Begin handler parses them."""

from __future__ import annotations

import pytest
from controlplane.errors import InputValidationError
from controlplane.models.lock import LockStepInput
from controlplane.models.offhours import OffhoursRequest, StepContext, WakeSummary
from controlplane.models.release import parse

pytestmark = pytest.mark.unit

NOW = "2026-11-26T19:00:00.000Z"
ARN = "arn:aws:states:us-east-1:123456789012:execution:offhours:run-1"


def test_the_console_spelling_stay_awake_is_the_stay_awake_action_and_needs_only_until() -> None:
    request = OffhoursRequest.model_validate(
        {"environment": "staging", "action": "stay_awake", "until": "2026-11-26T23:00:00+01:00"}
    )
    assert request.action == "stay-awake"
    assert request.operator is None  # who asked is the operator API's signature, never a payload name


def test_stay_awake_without_until_is_rejected_naming_the_field() -> None:
    with pytest.raises(InputValidationError, match="until"):
        parse(StepContext, {"request": {"environment": "staging", "action": "stay_awake"}, "execution_arn": ARN,
                            "now": NOW})  # fmt: skip


def test_a_schedule_input_parses_and_an_unknown_action_is_rejected() -> None:
    scheduled = parse(
        StepContext,
        {"request": {"environment": "staging", "action": "down", "trigger": "schedule"}, "execution_arn": ARN,
         "now": NOW},
    )  # fmt: skip
    assert (scheduled.request.action, scheduled.request.trigger) == ("down", "schedule")
    with pytest.raises(InputValidationError, match="action"):
        parse(StepContext, {"request": {"environment": "staging", "action": "sleep"}, "execution_arn": ARN, "now": NOW})


def test_a_request_for_an_unknown_environment_is_rejected() -> None:
    with pytest.raises(InputValidationError, match="environment"):
        parse(StepContext, {"request": {"environment": "dev", "action": "up"}, "execution_arn": ARN, "now": NOW})


def test_the_lock_step_input_carries_the_deploy_machine_for_follow_ups() -> None:
    step = parse(
        LockStepInput,
        {"environment": "staging", "execution_arn": ARN, "started_at": NOW, "now": NOW,
         "deploy_state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:sts-deploy"},
    )  # fmt: skip
    assert step.deploy_state_machine_arn is not None
    assert step.deploy_state_machine_arn.endswith(":stateMachine:sts-deploy")


def test_a_summary_is_all_awake_unless_said_otherwise() -> None:
    assert WakeSummary(environment="staging", message="m").all_awake
