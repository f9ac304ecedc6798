"""PlanRelease: validate the execution input and plan the release (no cluster write)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import PlanInput, parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.plan import plan_release


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return plan_release(parse(PlanInput, event)).model_dump(mode="json")
