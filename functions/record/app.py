"""RecordOutcome: ledger, last-known-good pointer, metrics and the SNS notification."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import RecordInput, parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.record import record_outcome


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return record_outcome(parse(RecordInput, event)).model_dump(mode="json")
