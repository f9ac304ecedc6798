"""StartStacks / AdvanceStacks: the platform's CloudFormation stacks, one non-blocking step per call."""

from __future__ import annotations

from pathlib import Path

from controlplane.aws import provision
from controlplane.models.base import at
from controlplane.models.provision import AdvanceStacksInput, ProvisionRequest, ProvisionState
from controlplane.observability import logger
from controlplane.settings import get_settings


def _provisioner() -> provision.Provisioner:
    settings = get_settings()
    gates = settings.gates
    stacks_file = Path(gates.stacks_file)
    catalog = provision.load_catalog(stacks_file)
    return provision.Provisioner(
        catalog=catalog,
        templates_dir=stacks_file.parent / catalog.template_dir,
        project=gates.project_name,
        table_name=settings.ledger_table_name,
        inputs=gates.stack_inputs,
        artifacts_bucket=gates.artifacts_bucket,
        role_arn=gates.stack_role_arn,
        region=settings.region,
    )


def start_stacks(event: ProvisionRequest) -> ProvisionState:
    """StartStacks (deploy and provision state machines): the stacks to provision, in order, and the provisioning
    deadline; then the first advance."""
    get_settings().require_environment(event.environment)  # a staging control plane never touches production stacks
    provisioner = _provisioner()
    now = at(event.now)
    state = provisioner.start(event, now=now, timeout_s=get_settings().gates.provision_timeout_s)
    return provisioner.advance(state, now=now)


def advance_stacks(event: AdvanceStacksInput) -> ProvisionState:
    """AdvanceStacks: one non-blocking step; IN_PROGRESS means Wait and call again, COMPLETE means go on."""
    state = _provisioner().advance(event.provision, now=at(event.now))
    logger.info(
        "stacks", extra={"status": state.status.value, "stacks": {s.suffix: s.phase.value for s in state.stacks}}
    )
    return state
