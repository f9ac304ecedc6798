"""EventBridge "Step Functions Execution Status Change" (FAILED, TIMED_OUT, ABORTED): release what it held."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.lock import release_lock_after_execution


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    result = release_lock_after_execution(event)
    return result.model_dump(mode="json") if result is not None else {"released": False}
