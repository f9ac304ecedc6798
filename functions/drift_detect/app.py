"""DetectDrift: compare the cluster with the last known-good release, record the report, notify."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.drift import DriftRequest
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.drift import detect_drift


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return detect_drift(parse(DriftRequest, event)).model_dump(mode="json")
