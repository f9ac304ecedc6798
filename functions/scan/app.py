"""ScanImages: the ECR scan verdict of the release's new digests (PASSED, IN_PROGRESS, or blocked)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import parse
from controlplane.models.scan import ScanRequest
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.scan import check_image_scans


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return check_image_scans(parse(ScanRequest, event)).model_dump(mode="json")
