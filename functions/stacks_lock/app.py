"""AcquireLock / ReleaseLock (provisioning): the environment's deploy lock with purpose ``provision``.

Two entry points, one per state (``Handler: app.acquire`` / ``app.release``), sharing this code directory.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.lock import LockStepInput
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.provision import acquire_lock, release_lock


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def acquire(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return acquire_lock(parse(LockStepInput, event)).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def release(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return release_lock(parse(LockStepInput, event)).model_dump(mode="json")
