"""InstallAddons / ApplyRelease / RollBackApply: render, validate, server-side apply a release (or its add-ons)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import ApplyInput, parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.apply import apply_release


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return apply_release(parse(ApplyInput, event)).model_dump(mode="json")
