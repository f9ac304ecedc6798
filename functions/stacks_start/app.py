"""StartStacks: the platform stacks to provision for this release, and the first step on them."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.provision import StartStacksInput
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.provision import start_stacks


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return start_stacks(parse(StartStacksInput, event)).model_dump(mode="json")
