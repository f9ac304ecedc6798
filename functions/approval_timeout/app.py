"""RecordApprovalTimeout: the approval expired; mark it TIMED_OUT (a decision that won the race stays)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.approval import ApprovalTimeoutRequest
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.approval import record_approval_timeout


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return record_approval_timeout(parse(ApprovalTimeoutRequest, event)).model_dump(mode="json")
