"""CheckFreeze: refuse a deploy inside a freeze window unless forced by a named person (recorded)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.freeze import FreezeCheckRequest
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.freeze import check_freeze


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return check_freeze(parse(FreezeCheckRequest, event)).model_dump(mode="json")
