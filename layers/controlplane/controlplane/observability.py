"""Logger, Tracer and Metrics shared by every handler.

Service name, log level and metrics namespace come from the Powertools environment variables that
``template.yaml`` sets once in ``Globals`` (POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL,
POWERTOOLS_METRICS_NAMESPACE). Constructing these objects reads no AWS resource.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def correlate(
    *, execution_arn: str | None = None, release_id: str | None = None, environment: str | None = None
) -> None:
    """Attach the execution ARN (correlation id), release id and environment to every following log line."""
    if execution_arn:
        logger.set_correlation_id(execution_arn)
    keys = {k: v for k, v in {"release_id": release_id, "environment": environment}.items() if v}
    if keys:
        logger.append_keys(**keys)
