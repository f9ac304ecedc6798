"""Logger, Tracer and Metrics shared by every handler.

Service name, log level and metrics namespace come from the Powertools environment variables that
``template.yaml`` sets once in ``Globals`` (POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL,
POWERTOOLS_METRICS_NAMESPACE). Constructing these objects reads no AWS resource.

:func:`correlate` re-reads those variables on every call: in Lambda they never change, but a process that hosts
several functions (the local cloud runs every handler in one interpreter) may have created these objects before the
function's environment was applied.

The tracer is Powertools' ``Tracer`` built on the first traced call (:class:`LazyTracer`): constructing it imports
aws_xray_sdk and patches botocore (about half a second), which stays off every handler's import path.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer

F = TypeVar("F", bound=Callable[..., Any])


class LazyTracer:
    """``capture_lambda_handler`` and ``capture_method`` of a Powertools ``Tracer`` made on the first traced call."""

    def __init__(self) -> None:
        self._tracer: Tracer | None = None

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            self._tracer = Tracer()
        return self._tracer

    def capture_lambda_handler(self, handler: F) -> F:
        return self._deferred(handler, lambda tracer: tracer.capture_lambda_handler(handler))

    def capture_method(self, method: F) -> F:
        return self._deferred(method, lambda tracer: tracer.capture_method(method))

    def _deferred(self, function: F, decorate: Callable[[Tracer], Callable[..., Any]]) -> F:
        traced: Callable[..., Any] | None = None

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal traced
            if traced is None:
                traced = decorate(self.tracer)
            return traced(*args, **kwargs)

        return cast("F", call)


logger = Logger()
tracer = LazyTracer()
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
