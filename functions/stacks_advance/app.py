"""AdvanceStacks: one non-blocking step of the platform stacks' change sets."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.provision import AdvanceStacksInput
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.provision import advance_stacks


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return advance_stacks(parse(AdvanceStacksInput, event)).model_dump(mode="json")
