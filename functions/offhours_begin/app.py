"""Begin (off-hours): read and authenticate the request (nothing written); RecordRequest (holding the lock): record
it behind the lease, store a stay-awake override; a scheduled scale-down yields to one."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.offhours import StepContext
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.offhours import begin, record_request


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return begin(parse(StepContext, event)).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def record(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return record_request(parse(StepContext, event)).model_dump(mode="json")
