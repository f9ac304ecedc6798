"""The operator API (a Lambda function URL with ``AuthType: AWS_IAM``): every human action, by an authenticated caller.

AWS authenticates the SigV4-signed request before the function runs and puts the caller in
``requestContext.authorizer.iam`` (``userArn``: an IAM user, or ``arn:aws:sts::<account>:assumed-role/<role>/<session>``
for a role's session). That ARN is the only identity this module uses; bodies naming people are refused.

* ``approve`` / ``reject``: the caller must be in ``APPROVERS`` and must not be the requester of the release (two
  sessions of one role are one principal). The decision is signed (KMS HMAC) and stored with what it approves; then the
  waiting execution is answered. VerifyApproval re-reads the signed decision; the callback's payload proves nothing.
* ``unquarantine``: the digest leaves the quarantine and the ledger records who released it and why (409 when the
  digest is not quarantined for that service).
* ``deploy`` (``force`` included), ``rollback``, ``offhours``: the request is validated here (the same models the
  state machines use: a refusal names the field and nothing starts), signed over the execution's name, and started
  on the state machine. The state machines honour ``force`` and production overrides only with a valid signature.
* ``resend``: a push event EventBridge dead-lettered (``trialstudio pushes resend`` reads PushDeadLetterQueue) is
  started on the deploy state machine exactly as the push rule's target does (the event unchanged as the input,
  unsigned like EventBridge's), once it is shown to be a successful push of this account and region to one of our
  repositories with a tag the rule forwards; the execution is named after the event, so sending it twice starts it
  once. The caller is logged; nobody gets ``states:StartExecution`` for it.

Answers: HTTP 200 with :class:`~controlplane.models.operator.OperatorResponse`, 400 (bad input, the field named),
403 (not allowed: the rule named), 409 (the approval is not pending, the digest is not quarantined).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from pydantic import TypeAdapter, ValidationError

from controlplane import platform
from controlplane.aws import approval as approvals
from controlplane.aws import signing
from controlplane.aws.decision import Decisions
from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.aws.ledger import Ledger
from controlplane.errors import (
    ApprovalRejectedError,
    ApprovalStateError,
    InputValidationError,
    OperatorNotAuthorizedError,
    QuarantineStateError,
)
from controlplane.models.approval import ApprovalStatus, Decision
from controlplane.models.arn import Arn, execution_of
from controlplane.models.base import at
from controlplane.models.offhours import OffhoursRequest
from controlplane.models.operator import (
    DecideBody,
    DecisionRecord,
    DecisionStatus,
    DeployBody,
    IamAuthorizer,
    OffHoursBody,
    OperatorAction,
    OperatorBody,
    OperatorCaller,
    OperatorResponse,
    OperatorSignature,
    ResendBody,
    RollbackBody,
    SignedDecision,
    UnquarantineBody,
    is_one_of,
    principal_key,
)
from controlplane.models.release import (
    ConsoleRequest,
    EcrPushEvent,
    OperatorRollbackRequest,
    parse,
    validation_message,
)
from controlplane.observability import correlate, logger, metrics
from controlplane.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

MAX_BODY_BYTES = 16 * 1024
_BODY = TypeAdapter[Any](OperatorBody)
AnyBody = DecideBody | DeployBody | RollbackBody | OffHoursBody | UnquarantineBody | ResendBody
_EXECUTION_NAME = re.compile(r"[^A-Za-z0-9_-]")
PROMOTION_TAGS = ("staging", "production")
"""Tags the push rule never forwards (``anything-but: {wildcard: [staging*, production*]}``): PromoteImages' retags."""


def caller_of(event: Mapping[str, Any]) -> OperatorCaller:
    """The authenticated caller of a function URL request; :class:`OperatorNotAuthorizedError` without one."""
    context = event.get("requestContext")
    context = context if isinstance(context, Mapping) else {}
    authorizer = context.get("authorizer")
    iam = authorizer.get("iam") if isinstance(authorizer, Mapping) else None
    if not isinstance(iam, Mapping):
        raise OperatorNotAuthorizedError(
            "no authenticated AWS identity in the request (the operator API is a function URL with AuthType AWS_IAM: "
            "sign the request with SigV4, service 'lambda')"
        )
    try:
        identity = IamAuthorizer.model_validate(iam)
    except ValidationError as exc:
        raise OperatorNotAuthorizedError(f"unusable caller identity: {validation_message(exc)}") from None
    http = context.get("http")
    method = http.get("method", "") if isinstance(http, Mapping) else ""
    if str(method).upper() != "POST":
        raise InputValidationError("method: the operator API takes POST with a JSON body")
    return OperatorCaller(
        principal=identity.user_arn, request_id=str(context.get("requestId", "")), body=_json_body(event)
    )


def _json_body(event: Mapping[str, Any]) -> Any:
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise InputValidationError("body: a JSON object is required")
    data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise InputValidationError(f"body: {len(data)} bytes; at most {MAX_BODY_BYTES}")
    try:
        body = json.loads(data)
    except ValueError:
        raise InputValidationError("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise InputValidationError(f"body: a JSON object is required, not a JSON {type(body).__name__}")
    return body


def parse_body(body: Any) -> AnyBody:
    try:
        parsed: AnyBody = _BODY.validate_python(body)
    except ValidationError as exc:
        raise InputValidationError(f"invalid operator request: {validation_message(exc)}") from None
    return parsed


# --------------------------------------------------------------------------------------------------- the handler
def handle(event: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """A function URL event (payload format 2.0) in, the HTTP response out."""
    correlate()
    try:
        caller = caller_of(event)
        response = dispatch(caller, parse_body(caller.body), now=at(now))
        status = 200
    except InputValidationError as exc:
        status, response = 400, _refusal(exc)
    except OperatorNotAuthorizedError as exc:
        status, response = 403, _refusal(exc)
    except (ApprovalStateError, QuarantineStateError) as exc:
        status, response = 409, _refusal(exc)
    if status != 200:
        logger.warning("operator request refused", extra={"status": status, "error": response.error})
        metrics.add_metric(name="OperatorRequestsRefused", unit="Count", value=1)
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": response.model_dump_json(exclude_none=True),
    }


def _refusal(exc: Exception) -> OperatorResponse:
    return OperatorResponse(ok=False, error=type(exc).__name__, message=str(exc))


def dispatch(caller: OperatorCaller, body: AnyBody, *, now: datetime) -> OperatorResponse:
    settings = get_settings()
    if not isinstance(body, DecideBody) and body.environment != settings.environment:
        raise InputValidationError(
            f"environment: {body.environment!r} is not run by this control plane (it runs {settings.environment!r}); "
            f"call the {body.environment} control plane's operator API"
        )
    logger.info("operator request", extra={"action": body.action, "principal": caller.principal})
    if isinstance(body, DecideBody):
        return decide(caller, body, settings=settings, now=now)
    if isinstance(body, UnquarantineBody):
        return unquarantine(caller, body, settings=settings, now=now)
    if isinstance(body, ResendBody):
        return resend(caller, body, settings=settings)
    action, machine, request = execution_request(body, settings)
    return start(caller, action, machine, request, settings=settings, now=now)


def execution_request(
    body: DeployBody | RollbackBody | OffHoursBody, settings: Settings
) -> tuple[OperatorAction, str, dict[str, Any]]:
    """The state machine and input ``body`` asks for, validated with the state machine's own input model."""
    request: dict[str, Any] = {"environment": body.environment}
    if isinstance(body, DeployBody):
        request |= {"services": body.services, "reason": body.reason} | ({"force": True} if body.force else {})
        parse(ConsoleRequest, request, what="deploy")
        return OperatorAction.DEPLOY, settings.require("deploy_state_machine_arn"), request
    if isinstance(body, RollbackBody):
        request |= {"reason": body.reason} | ({"release_id": body.release_id} if body.release_id else {})
        request |= {"acknowledge": True} if body.acknowledge else {}
        parse(OperatorRollbackRequest, request, what="rollback")
        return OperatorAction.ROLLBACK, settings.require("rollback_state_machine_arn"), request
    request |= {"action": body.mode, "trigger": "console"} | ({"until": body.until} if body.until else {})
    request |= {"reason": body.reason} if body.reason else {}
    # Signed as the off-hours machine will read it back (e.g. "stay_awake" -> "stay-awake", times normalised).
    normalised = parse(OffhoursRequest, request, what="offhours").model_dump(mode="json", exclude_unset=True)
    return OperatorAction.OFFHOURS, settings.require("offhours_state_machine_arn"), normalised


# ------------------------------------------------------------------------------------------------------- approvals
def decide(caller: OperatorCaller, body: DecideBody, *, settings: Settings, now: datetime) -> OperatorResponse:
    """Approve or reject a pending production release (see the module docstring for who may)."""
    if not is_one_of(caller.principal, settings.approvers):
        raise OperatorNotAuthorizedError(
            f"{caller.principal} is not an approver of {settings.environment} (the Approvers parameter)"
        )
    table = approvals.Approvals(settings.ledger_table_name, region=settings.region)
    pending = table.get(body.release_id)
    if pending is None:
        raise ApprovalStateError(f"release {body.release_id} has no approval request")
    if pending.get("status") != ApprovalStatus.PENDING.value or not pending.get("task_token_ciphertext"):
        raise ApprovalStateError(f"release {body.release_id} is not awaiting approval (status: {pending['status']})")
    requested_by = pending.get("requested_by") or None
    if requested_by and principal_key(requested_by) == principal_key(caller.principal):
        raise OperatorNotAuthorizedError(
            f"separation of duties: {caller.principal} requested release {body.release_id}; another approver decides"
        )
    status = DecisionStatus.APPROVED if body.action == "approve" else DecisionStatus.REJECTED
    record = DecisionRecord(
        release_id=body.release_id,
        environment=pending["environment"],  # type: ignore[arg-type]
        execution_arn=pending["execution_arn"],
        images=json.loads(pending.get("images") or "{}"),
        bundle_hash=pending.get("bundle_hash", ""),
        status=status,
        approver=caller.principal,
        requested_by=requested_by,
        comment=body.comment or "",
        decided_at=now,
    )
    mac = signing.sign(settings.require("decision_key_id"), record.material(), region=settings.region)
    Decisions(settings.ledger_table_name, region=settings.region).record(SignedDecision(record=record, mac=mac))
    token = signing.decrypt_token(
        pending["task_token_ciphertext"],
        {"release_id": record.release_id, "execution_arn": record.execution_arn},
        region=settings.region,
    )
    decision = Decision.APPROVE if status is DecisionStatus.APPROVED else Decision.REJECT
    approvals.send_decision(
        token,
        decision,
        output={"release_id": record.release_id, "status": status.value},
        cause=f"{ApprovalRejectedError.__name__}: rejected by {caller.principal}: {record.comment}",
        region=settings.region,
    )
    logger.info("approval decided", extra={"release_id": record.release_id, "status": status.value})
    metrics.add_metric(name="ApprovalsDecided", unit="Count", value=1)
    return OperatorResponse(
        ok=True,
        action=body.action,
        principal=caller.principal,
        release_id=record.release_id,
        status=status.value,
        execution_arn=record.execution_arn,
    )


# ------------------------------------------------------------------------------------------------------ quarantine
def unquarantine(
    caller: OperatorCaller, body: UnquarantineBody, *, settings: Settings, now: datetime
) -> OperatorResponse:
    """Release ``body.service``'s digest from quarantine; the ledger records the caller and the reason."""
    ledger = Ledger(settings.ledger_table_name, region=settings.region)
    record = ledger.unquarantine(
        body.digest, service=body.service, principal=caller.principal, reason=body.reason, now=now
    )
    if record is None:
        raise QuarantineStateError(f"{body.service}@{body.digest} is not quarantined (see `trialstudio status`)")
    logger.info("digest released from quarantine", extra={"service": body.service, "digest": body.digest})
    metrics.add_metric(name="DigestsUnquarantined", unit="Count", value=1)
    return OperatorResponse(
        ok=True,
        action=body.action,
        principal=caller.principal,
        release_id=str(record["quarantine"].get("release_id") or "") or None,
        status="UNQUARANTINED",
    )


# ----------------------------------------------------------------------------------------------- dead-lettered pushes
def resend_request(body: ResendBody, deploy_state_machine_arn: str) -> EcrPushEvent:
    """The dead-lettered event, if it is what the push rule forwards for this control plane: a successful ECR push
    of this account and region, to one of our repositories, with a tag that is not a promotion's retag."""
    event = parse(EcrPushEvent, body.event, what="event")
    machine = Arn.parse(deploy_state_machine_arn)
    if (event.account, event.region) != (machine.account, machine.region):
        raise InputValidationError(
            f"event.account/region: {event.account}/{event.region} is not this control plane's "
            f"({machine.account}/{machine.region}); the push rule forwards only its own account's pushes"
        )
    try:
        platform.service_for_repository(event.detail.repository_name)
    except KeyError as exc:
        raise InputValidationError(f"event.detail.repository-name: not a repository of the platform: {exc}") from None
    tag = event.detail.image_tag
    if tag is not None and tag.startswith(PROMOTION_TAGS):
        raise InputValidationError(
            f"event.detail.image-tag: {tag!r} is a promotion's retag, which the push rule never forwards"
        )
    return event


def resend(
    caller: OperatorCaller, body: ResendBody, *, settings: Settings, client: SFNClient | None = None
) -> OperatorResponse:
    """Start the deploy state machine on a dead-lettered push event as the push rule's target would have."""
    machine = settings.require("deploy_state_machine_arn")
    event = resend_request(body, machine)
    name = f"resend-{_EXECUTION_NAME.sub('-', event.id)}"[:80]
    sfn: SFNClient = client or boto3.client("stepfunctions", region_name=settings.region)
    try:
        with translate_aws_errors("states:StartExecution"):
            arn = str(
                sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(body.event))["executionArn"]
            )
        status = "STARTED"
    except ClientError as exc:
        if error_code(exc) != "ExecutionAlreadyExists":
            raise
        arn, status = execution_of(machine, name), "ALREADY_STARTED"  # sent before: the execution runs or ran
    logger.info(
        "dead-lettered push sent again",
        extra={"event_id": event.id, "digest": event.detail.image_digest, "status": status},
    )
    metrics.add_metric(name="PushesResent", unit="Count", value=1)
    return OperatorResponse(ok=True, action=body.action, principal=caller.principal, execution_arn=arn, status=status)


# ------------------------------------------------------------------------------------------------- started actions
def start(
    caller: OperatorCaller,
    action: OperatorAction,
    state_machine_arn: str,
    request: dict[str, Any],
    *,
    settings: Settings,
    now: datetime,
    client: SFNClient | None = None,
) -> OperatorResponse:
    """Sign ``request`` for a new execution of ``state_machine_arn`` and start it."""
    name = f"op-{action.value}-{uuid.uuid4().hex}"
    unsigned = OperatorSignature(principal=caller.principal, action=action, signed_at=now, mac="AA==")
    mac = signing.sign(
        settings.require("decision_key_id"),
        unsigned.material(execution_name=name, request=request),
        region=settings.region,
    )
    signature = unsigned.model_copy(update={"mac": mac})
    sfn: SFNClient = client or boto3.client("stepfunctions", region_name=settings.region)
    try:
        with translate_aws_errors("states:StartExecution"):
            started = sfn.start_execution(
                stateMachineArn=state_machine_arn,
                name=name,
                input=json.dumps({**request, "operator": signature.model_dump(mode="json")}),
            )
    except ClientError as exc:
        if error_code(exc) in {"InvalidExecutionInput", "ValidationException"}:
            raise InputValidationError(f"the state machine refused the input: {exc}") from None
        raise
    metrics.add_metric(name="OperatorExecutionsStarted", unit="Count", value=1)
    return OperatorResponse(
        ok=True, action=action.value, principal=caller.principal, execution_arn=str(started["executionArn"])
    )
