"""StartStacks / AdvanceStacks: the platform's CloudFormation stacks, one non-blocking step per call; and the
provisioning state machine's AcquireLock / ReleaseLock (the deploy lock, purpose ``provision``).

StartStacks and AdvanceStacks run while their execution (a deploy or a provisioning run) holds the lock: each renews
the lease before any change (``LockLostError``: no change set is made, executed or deleted) and writes the ledger
behind it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from controlplane.aws import lock, provision
from controlplane.models.base import at
from controlplane.models.lease import Lease
from controlplane.models.lock import LockPurpose, LockRequest, LockStepInput, ReleaseLockResult, WaitedLock
from controlplane.models.provision import AdvanceStacksInput, ProvisionState, StartStacksInput
from controlplane.observability import correlate, logger
from controlplane.settings import get_settings


def _provisioner(lease: Lease, now: datetime) -> provision.Provisioner:
    """The provisioner of a lock holder: its lease renewed first (``LockLostError`` when another execution holds the
    lock now: nothing is changed), every ledger write fenced by it."""
    settings = get_settings()
    gates = settings.gates
    lock.renew(
        lock.LockTable(settings.ledger_table_name, region=settings.region), lease, now=now, ttl_s=gates.lock_ttl_s
    )
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
        fence=lock.fence(lease),
    )


def start_stacks(event: StartStacksInput) -> ProvisionState:
    """StartStacks (deploy and provision state machines): the stacks to provision, in order, and the provisioning
    deadline; then the first advance."""
    get_settings().require_environment(event.environment)  # a staging control plane never touches production stacks
    now = at(event.now)
    provisioner = _provisioner(event.lease, now)
    state = provisioner.start(event, now=now, timeout_s=get_settings().gates.provision_timeout_s)
    return provisioner.advance(state, now=now)


def advance_stacks(event: AdvanceStacksInput) -> ProvisionState:
    """AdvanceStacks: one non-blocking step; IN_PROGRESS means Wait and call again, COMPLETE means go on."""
    now = at(event.now)
    state = _provisioner(event.lease, now).advance(event.provision, now=now)
    logger.info(
        "stacks", extra={"status": state.status.value, "stacks": {s.suffix: s.phase.value for s in state.stacks}}
    )
    return state


def acquire_lock(event: LockStepInput) -> WaitedLock:
    """AcquireLock (provisioning): the environment's deploy lock, purpose ``provision``, so that no release applies
    while the stacks change. A running deploy, rollback or scaling holds it: the ASL waits and asks again until
    PROVISION_LOCK_WAIT_SECONDS after the execution started, then :class:`LockHeldError`. Deploy pushes arriving
    while provisioning holds it are queued and deployed by the follow-up ReleaseLock starts."""
    correlate(execution_arn=event.execution_arn, environment=event.environment)
    settings = get_settings()
    settings.require_environment(event.environment)
    gates = settings.gates
    return lock.take_or_wait(
        LockRequest(environment=event.environment, owner=event.execution_arn, purpose=LockPurpose.PROVISION),
        started_at=event.started_at,
        wait_s=gates.provision_lock_wait_s,
        table_name=settings.ledger_table_name,
        region=settings.region,
        now=event.now,
        ttl_s=gates.lock_ttl_s,
        grace_s=gates.handoff_grace_s,
        who="provisioning",
    )


def release_lock(event: LockStepInput) -> ReleaseLockResult:
    """ReleaseLock (provisioning, every exit path after AcquireLock): deploy pushes queued meanwhile start a
    follow-up on the *deploy* state machine."""
    correlate(execution_arn=event.execution_arn, environment=event.environment)
    return lock.give_back_to_deploys(event, get_settings())
