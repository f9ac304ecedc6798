"""CheckAddons / CheckHealth / Bake: watch the add-ons' or the release's rollout until its verdict, within a budget."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import HealthInput, parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.health import check_health


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    remaining_s = context.get_remaining_time_in_millis() / 1000
    return check_health(parse(HealthInput, event), remaining_s=remaining_s).model_dump(mode="json")
