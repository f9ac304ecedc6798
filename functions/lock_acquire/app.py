"""AcquireLock: own the environment's deploy lock, or queue this execution's pushes behind its owner."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.lock import AcquireLockInput
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.lock import acquire_lock


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return acquire_lock(parse(AcquireLockInput, event)).model_dump(mode="json")
