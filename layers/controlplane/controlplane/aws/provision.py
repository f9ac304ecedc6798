"""Create or update the platform's CloudFormation stacks through change sets, one non-blocking step at a time.

The state machine calls :func:`advance` in a loop with a Wait state between calls. Each call moves the first
unfinished stack (``manifests/stacks.yaml`` order) as far as it can without waiting, and moves on to the next stack
when one finishes in the same call:

``PENDING``
    Skip the stack when its template hash and parameters equal the ledger's record of its last successful
    change and the stack is in a ``*_COMPLETE`` state (outputs are still read). A stack without data left in
    ``ROLLBACK_COMPLETE`` by a failed create cannot be updated: it is deleted (``DELETING``) and created again; a
    data stack (``holds_data``) in that state stops the deploy for an operator (the control plane never deletes
    one, and its termination protection would refuse it anyway). A new data stack is created by ``CreateStack``
    with termination protection and the stack policy in the same call (``EXECUTING``); otherwise create a change
    set (``CREATE`` or ``UPDATE``) with a deterministic name.
``CHANGE_SET``
    ``FAILED`` with "didn't contain changes" / "No updates are to be performed" is success (``NO_CHANGES``);
    other failures end the deploy. ``CREATE_COMPLETE`` is executed (``EXECUTING``).
``EXECUTING``
    ``CREATE_COMPLETE`` / ``UPDATE_COMPLETE``: a stack without data gets termination protection and the stack
    policy protecting data resources; outputs read, the hash recorded (``DONE``). A rollback or failure state raises
    :class:`~controlplane.errors.StackFailedError` with the failing resources' status reasons.

Every create and change set passes the control plane's CloudFormation service role (``RoleARN``; CloudFormation
acts with it, never with the function's credentials) and a ``TemplateURL`` in the artifacts bucket's
``cloudformation/`` prefix: the function's IAM policy allows nothing else (template.yaml).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import yaml
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.aws.table import Fence, Items, Key, Put, environment_key
from controlplane.errors import ConfigurationError, DeadlineExceededError, StackFailedError
from controlplane.models.provision import (
    ProvisionRequest,
    ProvisionState,
    ProvisionStatus,
    StackCatalog,
    StackPhase,
    StackProgress,
    StackSpec,
    stack_policy,
    template_hash,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

NO_CHANGES_MARKERS = ("didn't contain changes", "No updates are to be performed")
GOOD_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
FAILED_STATUSES = frozenset(
    {
        "CREATE_FAILED",
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "UPDATE_FAILED",
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "DELETE_FAILED",
        "IMPORT_ROLLBACK_COMPLETE",
        "IMPORT_ROLLBACK_FAILED",
    }
)
# Stable states a new change set can start from (an earlier run's failed update left the stack usable).
UPDATABLE_STATUSES = GOOD_STATUSES | {"UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
_REASONS_LIMIT = 10


class _TolerantLoader(yaml.SafeLoader):
    """Reads a CloudFormation template's structure; short-form tags (``!Ref``) become plain values."""


_TolerantLoader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)


def declared_parameters(template_body: str) -> list[str]:
    data = yaml.load(template_body, Loader=_TolerantLoader)  # noqa: S506 - SafeLoader subclass
    return sorted((data or {}).get("Parameters") or {})


def load_catalog(path: Path) -> StackCatalog:
    try:
        return StackCatalog.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read stack catalog {path}: {exc}") from None


@dataclass
class Provisioner:
    """Everything :func:`advance` needs; clients are created by the step (per invocation) or injected by tests."""

    catalog: StackCatalog
    templates_dir: Path
    project: str
    table_name: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    artifacts_bucket: str | None = None
    role_arn: str | None = None
    region: str | None = None
    cfn: CloudFormationClient | None = None
    s3: S3Client | None = None
    ddb: DynamoDBClient | None = None
    fence: Fence | None = None
    """The lock holder's lease: every ledger write (the stacks' template hashes) is behind it (``LockLostError``)."""
    _items: Items = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.role_arn:
            raise ConfigurationError(
                "STACK_ROLE_ARN is not set: the platform stacks are changed only by the control plane's CloudFormation "
                "service role (template.yaml StackRole), never with the provisioning function's own credentials"
            )
        if not self.artifacts_bucket:
            raise ConfigurationError(
                "ARTIFACTS_BUCKET is not set: stack templates are passed by TemplateURL from the artifacts bucket"
            )
        self.cfn = self.cfn or boto3.client("cloudformation", region_name=self.region)
        self._items = Items(self.table_name, region=self.region, client=self.ddb, fence=self.fence)

    @property
    def _cfn(self) -> CloudFormationClient:
        assert self.cfn is not None  # set in __post_init__
        return self.cfn

    # ------------------------------------------------------------------------------------------------ the loop
    def start(self, request: ProvisionRequest, *, now: datetime, timeout_s: int) -> ProvisionState:
        stacks = [
            StackProgress(
                suffix=spec.suffix,
                stack_name=self.catalog.stack_name(spec, project=self.project, environment=request.environment),
            )
            for spec in self.catalog.stacks
        ]
        return ProvisionState(
            environment=request.environment,
            release_id=request.release_id,
            deadline=now + timedelta(seconds=timeout_s),
            stacks=stacks,
        )

    def advance(self, state: ProvisionState, *, now: datetime) -> ProvisionState:
        """Move the stacks forward as far as possible without waiting (see the module docstring)."""
        stacks = list(state.stacks)
        for index, progress in enumerate(stacks):
            if progress.finished:
                continue
            spec = self._spec(progress.suffix)
            outputs = {s.suffix: dict(s.outputs) for s in stacks[:index]}
            updated, waiting = self._step(spec, progress, state, outputs, now)
            stacks[index] = updated
            if waiting:
                if now >= state.deadline:
                    raise DeadlineExceededError(
                        f"stack {progress.stack_name} still {updated.phase.value} at the provisioning deadline "
                        f"{state.deadline.isoformat()}"
                    )
                return state.model_copy(update={"stacks": stacks})
        return state.model_copy(update={"stacks": stacks, "status": ProvisionStatus.COMPLETE})

    def _spec(self, suffix: str) -> StackSpec:
        for spec in self.catalog.stacks:
            if spec.suffix == suffix:
                return spec
        raise ConfigurationError(f"stack {suffix!r} is not in the stack catalog")

    def _step(
        self,
        spec: StackSpec,
        progress: StackProgress,
        state: ProvisionState,
        outputs: Mapping[str, Mapping[str, str]],
        now: datetime,
    ) -> tuple[StackProgress, bool]:
        """One stack, as far as it goes now. Returns the new progress and whether we must wait."""
        while True:
            phase = progress.phase
            if phase is StackPhase.PENDING:
                progress, waiting = self._begin(spec, progress, state, outputs, now)
            elif phase is StackPhase.DELETING:
                progress, waiting = self._deleting(progress)
            elif phase is StackPhase.CHANGE_SET:
                progress, waiting = self._change_set(progress, state)
            elif phase is StackPhase.EXECUTING:
                progress, waiting = self._executing(progress, state)
            else:
                return progress, False
            if waiting or progress.finished:
                return progress, waiting

    # ------------------------------------------------------------------------------------------------ phases
    def _begin(
        self,
        spec: StackSpec,
        progress: StackProgress,
        state: ProvisionState,
        outputs: Mapping[str, Mapping[str, str]],
        now: datetime,
    ) -> tuple[StackProgress, bool]:
        body = (self.templates_dir / spec.template).read_text(encoding="utf-8")
        common = {"Environment": state.environment, "ProjectName": self.project}
        common = {k: v for k, v in common.items() if k in self.catalog.common_parameters}
        parameters = spec.resolve_parameters(
            common=common, inputs=self.inputs, outputs=outputs, declared=declared_parameters(body)
        )
        digest = template_hash(body, parameters)
        stack = self.describe(progress.stack_name)
        status = str(stack["StackStatus"]) if stack else None
        busy = self._not_ready(spec, progress, status, digest)
        if busy is not None:
            return busy, True
        if (
            stack is not None
            and status in GOOD_STATUSES
            and self.recorded_hash(state.environment, progress.stack_name) == digest
        ):
            return progress.model_copy(
                update={"phase": StackPhase.SKIPPED, "template_hash": digest, "outputs": _outputs(stack)}
            ), False
        change_set = f"cp-{state.release_id}-{digest[:12]}"
        if stack is None and spec.holds_data:
            self._create_protected(spec, progress.stack_name, change_set, body, parameters, state=state)
            return progress.model_copy(
                update={"phase": StackPhase.EXECUTING, "template_hash": digest, "started_at": now}
            ), False
        create = stack is None or status == "REVIEW_IN_PROGRESS"
        if not self._create_change_set(
            spec, progress.stack_name, change_set, body, parameters, create=create, state=state
        ):
            done = progress.model_copy(
                update={"phase": StackPhase.NO_CHANGES, "template_hash": digest, "outputs": _outputs(stack or {})}
            )
            self.record_hash(state, done)
            return done, False
        return progress.model_copy(
            update={
                "phase": StackPhase.CHANGE_SET,
                "template_hash": digest,
                "change_set_name": change_set,
                "started_at": now,
            }
        ), False

    def _not_ready(
        self, spec: StackSpec, progress: StackProgress, status: str | None, digest: str
    ) -> StackProgress | None:
        """The stack cannot take a change set yet: a failed create is being deleted, or another operation runs
        (wait and look again); a stack in a failed state needs an operator (:class:`StackFailedError`)."""
        if status == "ROLLBACK_COMPLETE" and spec.holds_data:
            raise StackFailedError(
                f"data stack {progress.stack_name} failed its first create and is left in ROLLBACK_COMPLETE, "
                "termination-protected; the control plane never deletes a data stack. An operator reads the cause "
                "below, checks that nothing was retained (DeletionPolicy Retain/Snapshot), then disables termination "
                "protection and deletes the stack; the next deploy creates it again"
                + self.failure_reasons(progress.stack_name, since=None)
            )
        if status == "ROLLBACK_COMPLETE":
            self._delete_failed_create(progress.stack_name)
            return progress.model_copy(update={"phase": StackPhase.DELETING, "template_hash": digest})
        if status is None or status == "REVIEW_IN_PROGRESS":
            return None
        if status.endswith("_IN_PROGRESS"):
            return progress.model_copy(update={"template_hash": digest})  # someone else's operation
        if status not in UPDATABLE_STATUSES:
            raise StackFailedError(
                f"stack {progress.stack_name} is {status}; an operator must repair it before deploying"
                + self.failure_reasons(progress.stack_name, since=None)
            )
        return None

    def _deleting(self, progress: StackProgress) -> tuple[StackProgress, bool]:
        stack = self.describe(progress.stack_name)
        status = str(stack["StackStatus"]) if stack else "DELETE_COMPLETE"
        if status == "DELETE_COMPLETE":
            return progress.model_copy(update={"phase": StackPhase.PENDING}), False
        if status == "DELETE_FAILED":
            raise StackFailedError(
                f"stack {progress.stack_name} (left in ROLLBACK_COMPLETE) could not be deleted"
                + self.failure_reasons(progress.stack_name, since=None)
            )
        return progress, True

    def _change_set(self, progress: StackProgress, state: ProvisionState) -> tuple[StackProgress, bool]:
        assert progress.change_set_name is not None  # set with the CHANGE_SET phase
        with translate_aws_errors("cloudformation:DescribeChangeSet"):
            change_set = self._cfn.describe_change_set(
                ChangeSetName=progress.change_set_name, StackName=progress.stack_name
            )
        status = str(change_set.get("Status", ""))
        reason = str(change_set.get("StatusReason", ""))
        if status in {"CREATE_PENDING", "CREATE_IN_PROGRESS"}:
            return progress, True
        if status == "FAILED":
            if any(marker in reason for marker in NO_CHANGES_MARKERS):
                self._delete_change_set(progress)
                stack = self.describe(progress.stack_name)
                self.record_hash(state, progress)
                return progress.model_copy(
                    update={"phase": StackPhase.NO_CHANGES, "outputs": _outputs(stack) if stack else {}}
                ), False
            raise StackFailedError(f"change set for {progress.stack_name} failed: {reason[:1000]}")
        execution = str(change_set.get("ExecutionStatus", ""))
        if status == "CREATE_COMPLETE" and execution == "AVAILABLE":
            try:
                with translate_aws_errors("cloudformation:ExecuteChangeSet"):
                    self._cfn.execute_change_set(ChangeSetName=progress.change_set_name, StackName=progress.stack_name)
            except ClientError as exc:
                if error_code(exc) != "InvalidChangeSetStatus":  # a retried call: already executing
                    raise
            return progress.model_copy(update={"phase": StackPhase.EXECUTING}), False
        if execution in {"EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE", "EXECUTE_FAILED"}:
            return progress.model_copy(update={"phase": StackPhase.EXECUTING}), False
        raise StackFailedError(
            f"change set for {progress.stack_name} is {status}/{execution}, not executable: {reason[:500]}"
        )

    def _executing(self, progress: StackProgress, state: ProvisionState) -> tuple[StackProgress, bool]:
        stack = self.describe(progress.stack_name)
        if stack is None:
            raise StackFailedError(f"stack {progress.stack_name} disappeared while its change set was executing")
        status = str(stack["StackStatus"])
        if status.endswith("_IN_PROGRESS"):
            return progress, True
        if status in GOOD_STATUSES:
            if not self._spec(progress.suffix).holds_data:  # a data stack was created protected
                self.protect(progress.stack_name)
            self.record_hash(state, progress)
            return progress.model_copy(update={"phase": StackPhase.DONE, "outputs": _outputs(stack)}), False
        if status in FAILED_STATUSES:
            raise StackFailedError(
                f"stack {progress.stack_name} ended {status}"
                + self.failure_reasons(progress.stack_name, since=progress.started_at)
            )
        raise StackFailedError(f"stack {progress.stack_name} is in unexpected status {status}")

    # -------------------------------------------------------------------------------------------- CloudFormation
    def describe(self, stack_name: str) -> Mapping[str, Any] | None:
        try:
            with translate_aws_errors("cloudformation:DescribeStacks"):
                stacks = self._cfn.describe_stacks(StackName=stack_name)["Stacks"]
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return None
            raise
        return stacks[0] if stacks else None

    def _template_argument(self, stack_name: str, body: str, state: ProvisionState) -> dict[str, str]:
        """``TemplateURL`` of the template uploaded under the artifacts bucket's ``cloudformation/`` prefix (the only
        templates the function may pass, whatever their size)."""
        assert self.artifacts_bucket is not None  # checked in __post_init__
        key = f"cloudformation/{state.environment}/{stack_name}/{hashlib.sha256(body.encode()).hexdigest()}.yaml"
        s3: S3Client = self.s3 or boto3.client("s3", region_name=self.region)
        with translate_aws_errors("s3:PutObject"):
            s3.put_object(Bucket=self.artifacts_bucket, Key=key, Body=body.encode(), ContentType="text/yaml")
        region = self.region or s3.meta.region_name
        return {"TemplateURL": f"https://{self.artifacts_bucket}.s3.{region}.amazonaws.com/{key}"}

    def _create_change_set(
        self,
        spec: StackSpec,
        stack_name: str,
        change_set: str,
        body: str,
        parameters: Mapping[str, str],
        *,
        create: bool,
        state: ProvisionState,
    ) -> bool:
        """Create the change set; ``False`` when CloudFormation refuses it up front as having no changes."""
        capabilities = cast("list[CapabilityType]", list(spec.capabilities))
        try:
            with translate_aws_errors("cloudformation:CreateChangeSet"):
                self._cfn.create_change_set(
                    StackName=stack_name,
                    ChangeSetName=change_set,
                    ChangeSetType="CREATE" if create else "UPDATE",
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                    Capabilities=capabilities,
                    Description=f"control plane release {state.release_id}"[:1024],
                    Tags=[
                        {"Key": "Project", "Value": self.project},
                        {"Key": "Environment", "Value": state.environment},
                    ],
                    **self._template_argument(stack_name, body, state),  # type: ignore[arg-type]
                    **self._role_argument(),
                )
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and any(m in str(exc) for m in NO_CHANGES_MARKERS):
                return False
            if error_code(exc) != "AlreadyExistsException":  # a retried call created it already
                raise
        return True

    def _create_protected(
        self,
        spec: StackSpec,
        stack_name: str,
        token: str,
        body: str,
        parameters: Mapping[str, str],
        *,
        state: ProvisionState,
    ) -> None:
        """A new data stack: termination protection and the stack policy from its first moment, in one call (the
        control plane may not call UpdateTerminationProtection or SetStackPolicy on data stacks at all)."""
        capabilities = cast("list[CapabilityType]", list(spec.capabilities))
        try:
            with translate_aws_errors("cloudformation:CreateStack"):
                self._cfn.create_stack(
                    StackName=stack_name,
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                    Capabilities=capabilities,
                    OnFailure="ROLLBACK",
                    EnableTerminationProtection=True,
                    StackPolicyBody=json.dumps(stack_policy()),
                    ClientRequestToken=token[:128],
                    Tags=[
                        {"Key": "Project", "Value": self.project},
                        {"Key": "Environment", "Value": state.environment},
                    ],
                    **self._template_argument(stack_name, body, state),  # type: ignore[arg-type]
                    **self._role_argument(),
                )
        except ClientError as exc:
            if error_code(exc) != "AlreadyExistsException":  # a retried call created it already
                raise

    def _role_argument(self) -> dict[str, Any]:
        """``RoleARN``: the service role CloudFormation acts with (required: see ``__post_init__``)."""
        return {"RoleARN": self.role_arn}

    def _delete_change_set(self, progress: StackProgress) -> None:
        assert progress.change_set_name is not None
        try:
            with translate_aws_errors("cloudformation:DeleteChangeSet"):
                self._cfn.delete_change_set(ChangeSetName=progress.change_set_name, StackName=progress.stack_name)
        except ClientError as exc:
            if error_code(exc) not in {"ChangeSetNotFound", "ChangeSetNotFoundException", "ValidationError"}:
                raise

    def _delete_failed_create(self, stack_name: str) -> None:
        """A ROLLBACK_COMPLETE stack holds no resources and cannot be updated: delete it to create it again.

        Termination protection is only turned on after a successful create, so it is off here.
        """
        with translate_aws_errors("cloudformation:DeleteStack"):
            self._cfn.delete_stack(StackName=stack_name)

    def protect(self, stack_name: str) -> None:
        """Termination protection on; data resources (RDS, ElastiCache, S3) may not be replaced or deleted."""
        with translate_aws_errors("cloudformation:UpdateTerminationProtection"):
            self._cfn.update_termination_protection(EnableTerminationProtection=True, StackName=stack_name)
        with translate_aws_errors("cloudformation:SetStackPolicy"):
            self._cfn.set_stack_policy(StackName=stack_name, StackPolicyBody=json.dumps(stack_policy()))

    def failure_reasons(self, stack_name: str, *, since: datetime | None) -> str:
        """``: Logical (Type) STATUS: reason; ...`` for the failed resources, oldest (the root cause) first."""
        reasons: list[str] = []
        try:
            with translate_aws_errors("cloudformation:DescribeStackEvents"):
                pages = self._cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name)
                for page in pages:
                    for event in page["StackEvents"]:
                        if since is not None and event["Timestamp"] < since:
                            break
                        status = str(event.get("ResourceStatus", ""))
                        reason = str(event.get("ResourceStatusReason", ""))
                        if status.endswith("FAILED") and event.get("LogicalResourceId") != stack_name:
                            reasons.append(
                                f"{event.get('LogicalResourceId')} ({event.get('ResourceType')}) {status}: {reason}"
                            )
                    else:
                        continue
                    break
        except ClientError:
            return ""  # the failure itself is reported; missing events must not hide it
        if not reasons:
            return ""
        reasons.reverse()
        shown = reasons[:_REASONS_LIMIT]
        more = f"; and {len(reasons) - _REASONS_LIMIT} more" if len(reasons) > _REASONS_LIMIT else ""
        return ": " + "; ".join(r[:500] for r in shown) + more

    # --------------------------------------------------------------------------------------------------- ledger
    def _record_key(self, environment: str, stack_name: str) -> Key:
        return environment_key(environment, f"STACK#{stack_name}")

    def recorded_hash(self, environment: str, stack_name: str) -> str | None:
        data = self._items.table.get(self._record_key(environment, stack_name))
        return str(data["template_hash"]) if data is not None else None

    def record_hash(self, state: ProvisionState, progress: StackProgress) -> None:
        assert progress.template_hash is not None
        self._items.write(
            Put(
                self._record_key(state.environment, progress.stack_name),
                {
                    "kind": "stack",
                    "stack_name": progress.stack_name,
                    "template_hash": progress.template_hash,
                    "release_id": state.release_id,
                },
            )
        )


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in stack.get("Outputs") or []}
