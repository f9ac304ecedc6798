"""Scale-down states: SnapshotEnvironment, SleepWorkloads (cluster identity) and SleepNodegroups (EKS writes).

One entry point per state (``Handler: app.snapshot`` / ``app.workloads`` / ``app.nodegroups``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.offhours import StepContext
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps.offhours import sleep_nodegroups, sleep_workloads, snapshot_environment


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def snapshot(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return snapshot_environment(parse(StepContext, event)).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def workloads(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return sleep_workloads(parse(StepContext, event)).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def nodegroups(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return sleep_nodegroups(parse(StepContext, event)).model_dump(mode="json")
