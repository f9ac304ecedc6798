"""PromoteImages: tag the release's digests for the environment (idempotent, also on immutable tags)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.promote import PromotionRequest
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.promote import promote_images


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return promote_images(parse(PromotionRequest, event)).model_dump(mode="json")
