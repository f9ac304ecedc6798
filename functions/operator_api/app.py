"""The operator API (function URL, AuthType AWS_IAM): approve/reject, deploy, rollback, off-hours, as the caller."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.operator import handle


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return handle(event)
