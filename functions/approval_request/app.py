"""RequestApproval (waitForTaskToken): dry-run diff to S3, pending approval in the ledger, SNS request."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.approval import ApprovalRequest
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.approval import cluster_diff, request_approval


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return request_approval(parse(ApprovalRequest, event), diff=cluster_diff).model_dump(mode="json")
