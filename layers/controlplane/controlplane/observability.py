"""Logger, Tracer and Metrics shared by every handler.

Service name, log level and metrics namespace come from the Powertools environment variables that
``template.yaml`` sets once in ``Globals`` (POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL,
POWERTOOLS_METRICS_NAMESPACE). Constructing these objects reads no AWS resource.

:func:`correlate` re-reads those variables on every call: in Lambda they never change, but a process that hosts
several functions (the local cloud runs every handler in one interpreter) may have created these objects before the
function's environment was applied.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def _sync_with_environment() -> None:
    service = os.environ.get("POWERTOOLS_SERVICE_NAME")
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
    level = os.environ.get("POWERTOOLS_LOG_LEVEL")
    if service:
        metrics.service = service
        logger.append_keys(service=service)
    if namespace and metrics.namespace != namespace:
        metrics.namespace = namespace
    if level:
        logger.setLevel(level.upper())


def correlate(
    *, execution_arn: str | None = None, release_id: str | None = None, environment: str | None = None
) -> None:
    """Attach the execution ARN (correlation id), release id and environment to every following log line."""
    _sync_with_environment()
    if execution_arn:
        logger.set_correlation_id(execution_arn)
    keys = {k: v for k, v in {"release_id": release_id, "environment": environment}.items() if v}
    if keys:
        logger.append_keys(**keys)
