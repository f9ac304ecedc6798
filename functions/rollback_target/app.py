"""ResolveRollbackTarget: which release a rollback re-applies."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.release import RollbackTargetInput, parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.rollback import resolve_rollback_target


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return resolve_rollback_target(parse(RollbackTargetInput, event)).model_dump(mode="json")
