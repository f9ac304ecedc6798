"""SmokeTest: every service's /health through the API server's service proxy."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import SmokeInput, parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.smoke import smoke_test_release


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return smoke_test_release(parse(SmokeInput, event)).model_dump(mode="json")
