"""VerifyStagingHealth (production): every new digest was healthy in staging (staging's ledger)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import parse
from controlplane.models.staging_health import StagingHealthInput
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.staging_health import verify_staging_health


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return verify_staging_health(parse(StagingHealthInput, event)).model_dump(mode="json")
