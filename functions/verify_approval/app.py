"""VerifyApproval: after the approval callback, proceed only on the operator API's signed APPROVED decision."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.approval import VerifyApprovalInput
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.verify_approval import verify_approval


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return verify_approval(parse(VerifyApprovalInput, event)).model_dump(mode="json")
