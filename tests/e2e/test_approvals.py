"""Who may change production, through the real state machines and the operator API's function URL (SigV4).

A forged callback with the token from the execution history cannot deploy; a requester cannot approve his own
release; a force without the operator API's signed identity is refused; the ledger never holds the task token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials
from controlplane import platform

from local.pipeline import Pipeline, call_operator_api, pipeline
from tests.eventually import eventually

pytestmark = pytest.mark.e2e


def ledger_items(pipe: Pipeline) -> list[dict[str, Any]]:
    return list(pipe.cloud.client("dynamodb").scan(TableName=str(pipe.cloud.ref("LedgerTable")))["Items"])


def changes(pipe: Pipeline) -> list[Any]:
    return [w for w in pipe.writes() if w.query.get("dryRun") != "All"]


def waiting_token(pipe: Pipeline, arn: str) -> tuple[str, str]:
    """(release id, task token) of the execution's approval, read as anyone with GetExecutionHistory could."""

    def asked() -> tuple[str, str] | None:
        for event in pipe.cloud.client("stepfunctions").get_execution_history(executionArn=arn)["events"]:
            details = event.get("taskScheduledEventDetails")
            if details and "waitForTaskToken" in details["resource"]:
                payload = json.loads(details["parameters"])["Payload"]
                if any(item.get("kind", {}).get("S") == "approval" for item in ledger_items(pipe)):
                    return str(payload["release_id"]), str(payload["task_token"])
        ended = pipe.cloud.describe_execution(arn)
        if ended["status"] != "RUNNING":
            pytest.fail(f"{arn} ended {ended['status']} before asking for approval: {ended.get('cause')}")
        return None

    return eventually(asked, what=f"{arn} to ask for approval")


@pytest.fixture
def production(cluster: Any) -> Iterator[tuple[Pipeline, dict[str, Any]]]:
    with pipeline(cluster, Environment="production") as pipe:
        images = {name: pipe.push(name, "v1.0.0") for name in platform.SERVICE_NAMES}
        pipe.healthy_in_staging(images)
        yield pipe, {"action": "deploy", "environment": "production", "services": images, "reason": "promote"}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"release_id": "x", "status": "APPROVED"},
        {
            "release_id": "<the release>",
            "status": "APPROVED",
            "approver": "carol",
            "decided_at": "2026-01-01T00:00:00Z",
        },
    ],
    ids=["empty", "approved-status", "what-the-operator-api-would-send"],
)
def test_a_forged_callback_with_the_token_from_the_history_cannot_deploy(
    production: tuple[Pipeline, dict[str, Any]], payload: dict[str, Any]
) -> None:
    pipe, request = production
    status, started = pipe.operator("developer", session="bob").call(request)
    assert status == 200, started
    arn = started["execution_arn"]
    release_id, token = waiting_token(pipe, arn)
    stored = json.dumps(ledger_items(pipe))

    forged = {k: (release_id if v == "<the release>" else v) for k, v in payload.items()}
    pipe.cloud.send_task_success(token, forged)
    result = pipe.cloud.wait_execution(arn, timeout=60)

    assert token not in stored  # the ledger holds the token encrypted only
    assert result.status == "FAILED"
    assert result.error == "ApprovalNotVerifiedError"
    assert "no decision was recorded" in str(result.cause)
    assert "PromoteImages" not in result.states_entered()
    assert changes(pipe) == []


def test_a_requester_cannot_approve_his_own_release_and_another_approver_can(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    pipe, request = production
    manager = pipe.operator("release-manager", session="mallory")  # an approver who asks for the release
    status, started = manager.call(request)
    assert status == 200, started
    arn = started["execution_arn"]
    release_id, _ = waiting_token(pipe, arn)

    own = manager.call({"action": "approve", "release_id": release_id})
    other_session = pipe.operator("release-manager", session="mallory-again").call(
        {"action": "approve", "release_id": release_id}
    )
    outsider = pipe.operator("developer", session="eve").call({"action": "approve", "release_id": release_id})
    approver = pipe.operator("release-approver", session="carol")
    approved = approver.call({"action": "approve", "release_id": release_id, "comment": "checked the diff"})
    result = pipe.cloud.wait_execution(arn, timeout=90)

    assert own[0] == 403
    assert own[1]["error"] == "OperatorNotAuthorizedError"
    assert "separation of duties" in own[1]["message"]
    assert other_session[0] == 403  # two sessions of one role are one principal
    assert outsider[0] == 403
    assert "not an approver" in outsider[1]["message"]
    assert approved[0] == 200, approved[1]
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["approval"]["approver"] == approver.session_arn
    assert result.output["plan"]["trigger"]["requested_by"] == manager.session_arn


def test_the_operator_api_refuses_unsigned_and_wrongly_signed_requests_without_invoking_the_function(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    pipe, request = production
    url = str(pipe.cloud.outputs["OperatorApiUrl"])
    before = len(pipe.cloud.runtime.invocations)
    real = pipe.operator("developer", session="bob").credentials

    unsigned = call_operator_api(url, request, None)
    made_up = call_operator_api(url, request, Credentials("AKIAIOSFODNN7EXAMPLE", "x" * 40))
    wrong_secret = call_operator_api(url, request, Credentials(real.access_key, "x" * 40, real.token))
    no_session_token = call_operator_api(url, request, Credentials(real.access_key, real.secret_key))

    not_an_operator = pipe.operator("auditor", session="dan", access=False).call(request)

    for status, answer in (unsigned, made_up, wrong_secret, no_session_token, not_an_operator):
        assert (status, answer) == (403, {"Message": "Forbidden"})
    assert len(pipe.cloud.runtime.invocations) == before


def test_an_unauthenticated_force_in_production_is_refused_before_any_write(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    pipe, request = production
    console = {k: v for k, v in request.items() if k != "action"}
    before = ledger_items(pipe)

    direct = pipe.deploy({**console, "force": True})
    status, signed = pipe.operator("developer", session="bob").call({**request, "force": True})
    original = pipe.cloud.describe_execution(signed["execution_arn"])
    replayed = pipe.deploy(json.loads(original["input"]))  # the signed input in a new execution

    assert direct.status == "FAILED"
    assert direct.error == "OperatorNotAuthorizedError"
    assert "force" in str(direct.cause)
    assert direct.states_entered() == ["AcquireLock", "InputRefused", "Rejected"]
    assert status == 200
    assert replayed.status == "FAILED"
    assert replayed.error == "OperatorNotAuthorizedError"
    assert "operator: the signature does not match" in str(replayed.cause)
    assert replayed.states_entered() == ["AcquireLock", "InputRefused", "Rejected"]
    after = ledger_items(pipe)
    counters = [i for i in after if i not in before and i["sk"]["S"] == "SEQUENCE"]
    # the push counter numbered exactly one request: the signed execution's (the refused ones were never numbered)
    assert [c["value"]["N"] for c in counters] == ["1"]
    unchanged = [i for i in after if i in before or i in counters or "op-deploy-" in json.dumps(i)]
    assert len(unchanged) == len(after)  # only the signed execution wrote anything
    assert changes(pipe) == []


def test_a_production_rollback_needs_an_authenticated_operator(production: tuple[Pipeline, dict[str, Any]]) -> None:
    pipe, _ = production
    request = {"environment": "production", "reason": "bad release"}

    direct = pipe.cloud.run("RollbackStateMachine", request)
    status, started = pipe.operator("developer", session="bob").call({"action": "rollback", **request})
    signed = pipe.cloud.wait_execution(started["execution_arn"])

    assert direct.status == "FAILED"
    assert direct.error == "OperatorNotAuthorizedError"
    assert "production rollback needs an authenticated operator" in str(direct.cause)
    assert status == 200, started
    assert signed.error == "PlanError"  # past the identity check: production has no previous release yet
    assert "no previous good release" in str(signed.cause)
    assert changes(pipe) == []


def test_off_hours_on_production_by_hand_needs_an_authenticated_operator(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    pipe, _ = production
    until = "2099-01-01T00:00:00Z"

    direct = pipe.cloud.run(
        "OffHoursStateMachine", {"environment": "production", "action": "stay_awake", "until": until}
    )
    bob = pipe.operator("developer", session="bob")
    status, started = bob.call(
        {"action": "offhours", "environment": "production", "mode": "stay_awake", "until": until}
    )
    signed = pipe.cloud.wait_execution(started["execution_arn"])

    assert direct.status == "FAILED"
    assert direct.error == "OperatorNotAuthorizedError"
    assert status == 200, started
    assert signed.status == "SUCCEEDED", signed.cause
    assert bob.session_arn in json.dumps(ledger_items(pipe))  # the override records who asked


def test_in_staging_too_a_rollback_or_an_off_hours_action_by_hand_needs_an_authenticated_operator(
    pipe: Pipeline,
) -> None:
    """A person's action always carries the operator API's signed identity; a name typed into the payload is refused
    by name; an unsigned "schedule" request is honoured only where the schedules run (staging by default)."""
    pipe.first_release()
    before = ledger_items(pipe)
    writes = len(pipe.writes())

    rollback = pipe.cloud.run("RollbackStateMachine", {"environment": "staging", "reason": "by hand"})
    acknowledge = pipe.cloud.run("RollbackStateMachine", {"environment": "staging", "acknowledge": True})
    down = pipe.cloud.run("OffHoursStateMachine", {"environment": "staging", "action": "down"})
    heal = pipe.cloud.run("RollbackStateMachine", {"environment": "staging", "trigger": "drift"})  # DriftMode report
    typed = pipe.cloud.run(
        "OffHoursStateMachine",
        {"environment": "staging", "action": "stay_awake", "until": "2099-01-01T00:00:00Z", "requested_by": "ana"},
    )

    for result in (rollback, acknowledge, down, heal):
        assert result.status == "FAILED"
        assert result.error == "OperatorNotAuthorizedError", (result.error, result.cause)
        assert "needs an authenticated operator" in str(result.cause)
    assert "does not heal drift" in str(heal.cause)
    assert "AcquireLock" in rollback.states_entered()  # refused there, before the lock was written
    assert typed.status == "FAILED"
    assert "requested_by" in str(typed.cause)
    assert ledger_items(pipe) == before  # no lock, no event, no override
    assert len(pipe.writes()) == writes


def test_an_unsigned_schedule_request_is_refused_where_no_schedule_runs(
    production: tuple[Pipeline, dict[str, Any]],
) -> None:
    pipe, _ = production
    before = ledger_items(pipe)

    forged = pipe.cloud.run(
        "OffHoursStateMachine", {"environment": "production", "action": "down", "trigger": "schedule"}
    )

    assert forged.status == "FAILED"
    assert forged.error == "OperatorNotAuthorizedError"
    assert "runs no off-hours schedule" in str(forged.cause)
    assert ledger_items(pipe) == before
    assert changes(pipe) == []
