"""Scale-up states: WakeNodegroups (EKS writes), CheckNodes, RestoreWave, CheckWave (cluster identity), FinishWake.

One entry point per state (``Handler: app.nodegroups`` / ``app.check_nodes`` / ``app.restore`` / ``app.check`` /
``app.finish``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from controlplane.models.offhours import NodesStepInput, RestoreWaveInput, StepContext, WakeStepInput
from controlplane.models.release import parse
from controlplane.observability import logger, metrics, tracer
from controlplane.steps import offhours


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def nodegroups(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    return offhours.wake_nodegroups(parse(StepContext, event)).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def check_nodes(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    step = parse(NodesStepInput, event)
    return offhours.check_nodes(step, step.state).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def restore(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    step = parse(RestoreWaveInput, event)
    return offhours.restore_wave(step, step.state, step.nodes).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def check(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    step = parse(WakeStepInput, event)
    return offhours.check_wave(step, step.state).model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def finish(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Powertools reads it
    step = parse(WakeStepInput, event)
    return offhours.finish_wake(step, step.state).model_dump(mode="json")
