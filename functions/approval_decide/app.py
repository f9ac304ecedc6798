"""The approval handler: {task_token | release_id, decision, approver, comment} answers the waiting deploy."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.gates import ApprovalDecision
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.gates import decide_approval


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return decide_approval(parse(ApprovalDecision, event)).model_dump(mode="json")
