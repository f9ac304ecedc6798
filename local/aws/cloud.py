"""`LocalCloud`: moto + in-process Lambda + simulated time + the Kubernetes emulator, built from the SAM template."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from unittest import mock

from local.aws.authz import HARNESS_ACCESS_KEY, Authorizer, SessionRouter, installed
from local.aws.eks_access import (
    DEPLOY_ROLE,
    DRIFT_ROLE,
    FALLBACK_DEPLOY_ROLE_NAME,
    GrantableCluster,
    grant_control_plane,
    session_arn,
)
from local.aws.eventbridge import (
    EVENTBRIDGE_PRINCIPAL,
    TargetFailure,
    dead_letter_attributes,
    envelope,
    queue_policy_allows_eventbridge,
    target_input,
    with_retries,
)
from local.aws.faults import AwsFaults, acting_as
from local.aws.lambdas import FunctionSpec, InvocationResult, LambdaRuntime, environ
from local.aws.provision import EventSource, Provisioner, Resource
from local.aws.seams import patched_moto, pattern_matches
from local.aws.template import Pseudo, Resolver, TemplateError, creation_order, load_template, resolve_parameters
from local.aws.timing import ClockTimekeeper, TimeMode
from local.aws.transform import sam_transformed
from local.cluster.clock import SimClock
from trialstudio.render import HistoryEvent, history_events

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ACCOUNT_ID = "123456789012"  # moto's default account
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_MOTO_ENV = {
    # moto fills each account's EC2 backend with thousands of public AMIs (and a snapshot and volume each) when it is
    # first touched (an EKS node group touches it): ~0.5 s of CPU per cloud. Nothing here looks an AMI up.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
WAIT_TIMEOUT_S = 180.0
"""Wall seconds a wait gives an execution by default: a deploy takes seconds on an idle machine and can take a minute
on a loaded 2-core one; only a hung execution waits this long."""
_POLL_S = 0.01
_MAX_POLL_S = 0.2


class NodePoolLike(Protocol):
    def set_group(
        self,
        name: str,
        desired: int,
        instance_type: str,
        *,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] | None = None,
        capacity_type: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
    ) -> Any: ...


class ClusterLike(Protocol):
    """What the harness needs from ``local.cluster.Cluster`` (a stub with these attributes works too)."""

    @property
    def endpoint(self) -> str: ...

    @property
    def ca_data(self) -> str: ...

    @property
    def clock(self) -> SimClock: ...

    @property
    def nodes(self) -> NodePoolLike: ...


class LocalCloudError(RuntimeError):
    """Base class of the harness's own errors."""


class ExecutionTimeoutError(LocalCloudError, TimeoutError):
    """An execution was still running when ``wait_execution``'s deadline passed."""


class RedriveNotSupportedError(LocalCloudError):
    """moto 5.2.5 does not implement ``states:RedriveExecution``."""


@dataclass(frozen=True)
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: tuple[HistoryEvent, ...]

    def states_entered(self) -> list[str]:
        """Names of the states entered, in order (a state entered twice appears twice)."""
        return [e.state_name for e in self.history if e.type.endswith("StateEntered") and e.state_name]

    def count(self, event_type: str) -> int:
        return sum(1 for e in self.history if e.type == event_type)


@dataclass(frozen=True)
class Delivery:
    """One event (or schedule firing) delivered to one target."""

    source: str  # rule or schedule name
    target_arn: str
    input: str
    execution_arn: str | None = None
    invocation: InvocationResult | None = None
    failure: TargetFailure | None = None
    """Not delivered (EventBridge's retries exhausted or the error not retried); ``dead_lettered`` says whether the
    event went to the target's dead-letter queue or was dropped."""


@dataclass(frozen=True)
class NodegroupSpec:
    instance_type: str = "m6i.large"
    desired: int = 2
    min_size: int = 1
    max_size: int = 10
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    """EKS's shape: ``{"key", "value", "effect": "NO_SCHEDULE" | "NO_EXECUTE" | "PREFER_NO_SCHEDULE"}``."""
    capacity_type: str = "ON_DEMAND"


@dataclass
class _ScanResult:
    status: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    in_progress_reads: int = 0

    def current_status(self) -> str:
        """IN_PROGRESS for the first ``in_progress_reads`` reads, then ``status``."""
        if self.in_progress_reads > 0:
            self.in_progress_reads -= 1
            return "IN_PROGRESS"
        return self.status


class LocalCloud:
    """The AWS side of the local cloud; use as a context manager.

    ``template=None`` starts an empty cloud (moto + seams, no resources). With a cluster, the cloud shares its clock;
    otherwise it uses ``clock`` or a new :class:`SimClock`.
    """

    _active_lock = threading.Lock()
    _active: LocalCloud | None = None

    def __init__(
        self,
        template: str | Path | None = DEFAULT_TEMPLATE,
        *,
        parameters: Mapping[str, Any] | None = None,
        cluster: ClusterLike | None = None,
        clock: SimClock | None = None,
        time_mode: TimeMode = "simulated",
        acceleration: float = 1.0,
        stack_name: str = "synthetictrialstudio",
        region: str = "us-east-1",
        layers_on_path: bool = True,
    ) -> None:
        if cluster is not None and clock is not None and cluster.clock is not clock:
            raise ValueError("pass either a cluster or a clock: the cloud must share the cluster's clock")
        self.template_path = Path(template).resolve() if template is not None else None
        self.parameters = dict(parameters or {})
        self.cluster = cluster
        self.clock = cluster.clock if cluster is not None else (clock or SimClock())
        self.time = ClockTimekeeper(self.clock, time_mode, acceleration)
        self.stack_name = stack_name
        self.region = region
        self.account_id = ACCOUNT_ID
        self.layers_on_path = layers_on_path
        self.runtime = LambdaRuntime()
        self.resources: dict[str, Resource] = {}
        self.event_sources: list[EventSource] = []
        self._clusters: dict[str, ClusterLike] = {}
        self._scan_results: dict[tuple[str, str], _ScanResult] = {}
        self._push_count = 0
        self._stack: ExitStack | None = None
        self.cfn_faults: Any = None
        self.iam = Authorizer(region, ACCOUNT_ID)
        self._router = SessionRouter(lambda: self.iam.admin)
        self.runtime.identity = self._function_identity
        self.ecr_events: list[dict[str, Any]] = []  # every ECR Image Action event emitted, in order
        self._quiet_pushes = threading.local()  # push_image(emit_event=False) on this thread
        self.aws_faults = AwsFaults()

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def __enter__(self) -> LocalCloud:
        with LocalCloud._active_lock:
            if LocalCloud._active is not None:
                raise LocalCloudError("another LocalCloud is active: moto's mock and the seams are process-wide")
            LocalCloud._active = self
        stack = ExitStack()
        stack.callback(self._release)
        try:
            from moto import mock_aws  # noqa: PLC0415 - moto is imported only when a cloud starts

            from local.aws.cfn import CfnFaults  # noqa: PLC0415

            stack.enter_context(
                mock.patch.dict(
                    os.environ,
                    {**_FAKE_ENV, **_MOTO_ENV, "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region},
                )
            )
            stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
            stack.enter_context(
                patched_moto(self.time, self._invoke_from_moto, self.iam.integration_client, self.aws_faults)
            )
            stack.enter_context(installed(self.iam, self._router, self._after_call))
            stack.callback(self._stop_running_executions)
            if self.time.mode == "realtime":
                self.clock.run_realtime(self.time.acceleration)
                stack.callback(self.clock.stop)
            else:  # simulated: a handler's watch waiting for news lets simulated time pass, as a Wait state does
                self.clock.drive_by_waiters()
                stack.callback(self.clock.drive_by_waiters, on=False)
            self.cfn_faults = CfnFaults(self)
            stack.enter_context(self.cfn_faults.installed())
            if self.template_path is not None:
                self._provision(self.template_path, stack)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def deploy(self, template: str | Path, parameters: Mapping[str, Any] | None = None) -> None:
        """``sam deploy`` into a started cloud that has no template yet (one made with ``template=None``): what the
        runbook does after creating the network stack by hand, whose outputs become these parameters."""
        if self._stack is None:
            raise LocalCloudError("deploy() needs a started cloud (inside its with block)")
        if self.template_path is not None:
            raise LocalCloudError(f"this cloud already runs {self.template_path}: one control plane per cloud")
        self.template_path = Path(template).resolve()
        self.parameters = dict(parameters or {})
        self._provision(self.template_path, self._stack)

    def _release(self) -> None:
        with LocalCloud._active_lock:
            LocalCloud._active = None

    def _provision(self, path: Path, stack: ExitStack) -> None:
        template = load_template(path)
        resolver = Resolver(
            pseudo=Pseudo(self.region, self.account_id, self.stack_name),
            parameters=resolve_parameters(template, self.parameters),
            mappings=template.get("Mappings") or {},
            condition_defs=template.get("Conditions") or {},
        )
        provisioner = Provisioner(
            resolver=resolver,
            template_dir=path.parent,
            runtime=self.runtime,
            globals_=template.get("Globals") or {},
            authorize_url=self.iam.may_invoke_function_url,
        )
        resources: dict[str, Any] = template["Resources"]
        stack.callback(provisioner.close_function_urls)
        for logical_id in creation_order(resources, template.get("Globals") or {}):
            body = resources[logical_id]
            condition = body.get("Condition")
            if condition and not resolver.condition(condition):
                continue
            self.resources[logical_id] = provisioner.create(logical_id, body)
        self.event_sources = provisioner.event_sources
        self._load_role_policies(path, template, resolver)
        self.outputs = {
            key: resolver.resolve(value.get("Value")) for key, value in (template.get("Outputs") or {}).items()
        }
        if self.layers_on_path:
            for layer in provisioner.layer_paths:
                if str(layer) not in sys.path:
                    sys.path.insert(0, str(layer))
                    stack.callback(sys.path.remove, str(layer))

    def _load_role_policies(self, path: Path, template: dict[str, Any], resolver: Resolver) -> None:
        """Give every role of the (SAM-transformed) template its policies, intrinsics resolved."""
        iam = self.client("iam")
        transformed = sam_transformed(path, template, self.region)
        for logical_id, body in (transformed.get("Resources") or {}).items():
            if body.get("Type") != "AWS::IAM::Role":
                continue
            if body.get("Condition") and not resolver.condition(body["Condition"]):
                continue
            role_arn = self._role_arn(logical_id)
            props = resolver.resolve(body.get("Properties") or {})
            inline = {str(p["PolicyName"]): p["PolicyDocument"] for p in props.get("Policies") or []}
            self.iam.set_role_policies(role_arn, inline, [str(a) for a in props.get("ManagedPolicyArns") or []])
            for name, document in inline.items():
                # moto refuses documents without Version (AWS defaults them to 2008-10-17; SAM's policy templates
                # have none); the copy in moto is for GetRolePolicy only, the evaluation uses the document as is.
                shown = {"Version": "2012-10-17", **document}
                iam.put_role_policy(
                    RoleName=role_arn.rsplit("/", 1)[-1], PolicyName=name, PolicyDocument=json.dumps(shown)
                )
        for logical_id, body in (transformed.get("Resources") or {}).items():
            if body.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
                props = resolver.resolve(body.get("Properties") or {})
                for role in props.get("Roles") or []:
                    arn = str(iam.get_role(RoleName=role)["Role"]["Arn"])
                    self.iam.add_role_policy(arn, str(props.get("PolicyName") or logical_id), props["PolicyDocument"])

    def _role_arn(self, logical_id: str) -> str:
        """The ARN of a role of the transformed template: declared in the template, or the one the harness created
        where SAM generates ``<Owner>Role`` (function, state machine, event source)."""
        if logical_id in self.resources:
            return self.arn(logical_id)
        name = f"{self.stack_name}-{logical_id.removesuffix('Role')}-Role"[:64]
        iam = self.client("iam")
        try:
            return str(iam.get_role(RoleName=name)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            raise TemplateError(f"the SAM transform generates role {logical_id}; the harness created none") from None

    @contextmanager
    def _function_identity(self, spec: FunctionSpec) -> Iterator[None]:
        """The function's execution role for one invocation: the invoking thread's default boto3 session, and the
        role's credentials in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` as Lambda exports
        them (a handler that builds its own ``boto3.Session()`` must get its role, never the harness's key).

        The variables are process-wide, but invocations run one at a time (the runtime's lock), and every harness call
        (``cloud.client``, the router's base session) carries the harness's explicit credentials, never the
        environment's: a test thread's call made while a handler runs still signs as the harness
        (``tests/integration/aws/test_iam.py``).
        """
        creds = self.iam.credentials(spec.role_arn, spec.name)
        values = {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_SESSION_TOKEN": creds.session_token,
            "AWS_SECURITY_TOKEN": creds.session_token,
        }
        with environ(values), self._router.use(self.iam.session(creds)):
            yield

    def caller_arn(self, access_key_id: str) -> str | None:
        """What STS ``GetCallerIdentity`` returns for the access key (None: STS does not know the key).

        Without the control plane's template (tests that play its steps in the test process with the harness's
        key), the harness's key is a session of the fallback deploy role, as ``local.aws.eks_access`` registers it.
        """
        if access_key_id == HARNESS_ACCESS_KEY and DEPLOY_ROLE not in self.resources:
            return session_arn(f"arn:aws:iam::{self.account_id}:role/{FALLBACK_DEPLOY_ROLE_NAME}")
        return self.iam.caller_arn(access_key_id)

    def _after_call(self, service: str, operation: str, params: Mapping[str, Any], result: Any) -> None:
        if (service, operation) == ("ecr", "PutImage") and not getattr(self._quiet_pushes, "on", False):
            self._emit_ecr_push(params, result)

    def _stop_running_executions(self) -> None:
        sfn = self.client("stepfunctions")
        for machine in sfn.list_state_machines()["stateMachines"]:
            running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in running["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"], cause="LocalCloud closed")

    # -- lookups ----------------------------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in the cloud's region, as the account administrator (the harness): one per
        service, shared with the authorizer's lookups (harness clients are never stubbed or given event hooks)."""
        return self.iam.lookup.client(service)

    def resource(self, logical_id: str) -> Resource:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise LocalCloudError(f"no resource {logical_id!r} in the template") from None

    def ref(self, logical_id: str) -> Any:
        """What ``!Ref`` of the logical id returns (function/table name, state machine/topic ARN, ...)."""
        return self.resource(logical_id).ref

    def arn(self, logical_id: str) -> str:
        resource = self.resource(logical_id)
        return str(resource.attrs.get("Arn") or resource.ref)

    def _state_machine_arn(self, state_machine: str) -> str:
        if state_machine.startswith("arn:"):
            return state_machine
        if state_machine in self.resources:
            return self.arn(state_machine)
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{state_machine}"

    # -- Lambda -----------------------------------------------------------------------------------------------------
    def _invoke_from_moto(
        self, function_name: str, function_arn: str, body: str | bytes | None
    ) -> tuple[bytes, str | None]:
        spec = self.runtime.lookup(function_arn) or self.runtime.lookup(function_name)
        if spec is None:
            error = {
                "errorType": "LocalCloud.NoInProcessHandler",
                "errorMessage": f"function {function_name} exists in moto but not in the template",
            }
            return json.dumps(error).encode(), "Unhandled"
        result = self.runtime.invoke(spec.arn, body)
        return result.payload, result.function_error

    def invoke(self, function: str, payload: Any = None) -> InvocationResult:
        """Invoke a function (logical id, name or ARN) through the real ``lambda:Invoke`` API."""
        name = self.ref(function) if function in self.resources else function
        response = self.client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode())
        return InvocationResult(response["Payload"].read(), response.get("FunctionError"))

    # -- Step Functions ---------------------------------------------------------------------------------------------
    def start_execution(self, state_machine: str, input: Any = None, name: str | None = None) -> str:  # noqa: A002
        """Start an execution of a state machine (logical id, name or ARN); returns the execution ARN."""
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self._state_machine_arn(state_machine),
            name=name or str(uuid.uuid4()),
            input=json.dumps({} if input is None else input),
        )
        return str(response["executionArn"])

    def describe_execution(self, arn: str) -> dict[str, Any]:
        return dict(self.client("stepfunctions").describe_execution(executionArn=arn))

    def wait_execution(self, arn: str, timeout: float | None = None) -> ExecutionResult:
        """Block until the execution leaves RUNNING or ``timeout`` real seconds pass (then ExecutionTimeoutError).

        ``timeout`` defaults to :data:`WAIT_TIMEOUT_S`."""
        timeout = WAIT_TIMEOUT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pause, interval = threading.Event(), _POLL_S
        while True:
            described = self.describe_execution(arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() >= deadline:
                entered = [e.state_name for e in self.history(arn) if e.type.endswith("StateEntered")]
                raise ExecutionTimeoutError(f"{arn} still RUNNING after {timeout}s; states entered: {entered[-5:]}")
            pause.wait(interval)
            interval = min(interval * 2, _MAX_POLL_S)  # each look is a DescribeExecution: leave the GIL to the run
        output = described.get("output")
        return ExecutionResult(
            arn=arn,
            status=str(described["status"]),
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            history=tuple(self.history(arn)),
        )

    def run(self, state_machine: str, input: Any = None, timeout: float | None = None) -> ExecutionResult:  # noqa: A002
        return self.wait_execution(self.start_execution(state_machine, input), timeout=timeout)

    def history(self, arn: str) -> list[HistoryEvent]:
        """The execution's history events in order, each with the state name where the event has one (parsed as the
        CLI parses them: :func:`trialstudio.render.history_events`)."""
        sfn = self.client("stepfunctions")
        return history_events(sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])

    def redrive(self, arn: str) -> str:
        """Not available: moto 5.2.5 has no ``RedriveExecution``. Start a new execution with the same input instead."""
        raise RedriveNotSupportedError(f"moto does not implement RedriveExecution (execution {arn})")

    def send_task_success(self, token: str, output: Any) -> None:
        self.client("stepfunctions").send_task_success(taskToken=token, output=json.dumps(output))

    def send_task_failure(self, token: str, error: str, cause: str = "") -> None:
        self.client("stepfunctions").send_task_failure(taskToken=token, error=error, cause=cause)

    # -- EventBridge and Scheduler ----------------------------------------------------------------------------------
    def put_events(self, entries: Sequence[Mapping[str, Any]]) -> list[Delivery]:
        """``events:PutEvents`` into moto, then deliver each event to the targets of every matching rule."""
        response = self.client("events").put_events(Entries=[dict(e) for e in entries])
        if response.get("FailedEntryCount"):
            raise LocalCloudError(f"PutEvents rejected entries: {response['Entries']}")
        deliveries: list[Delivery] = []
        for entry in entries:
            event = envelope(entry, account=self.account_id, region=self.region, time=self.clock.utcnow())
            deliveries += self.deliver_event(event, bus=str(entry.get("EventBusName") or "default"))
        return deliveries

    def deliver_event(self, event: Mapping[str, Any], bus: str = "default") -> list[Delivery]:
        """Deliver an event envelope (e.g. an AWS service event) to the targets of every matching, enabled rule."""
        events = self.client("events")
        deliveries: list[Delivery] = []
        for rule in events.list_rules(EventBusName=bus)["Rules"]:
            if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
                continue
            if not pattern_matches(rule["EventPattern"], dict(event)):
                continue
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
            for target in targets:
                payload = target_input(target, event, rule_name=rule["Name"], rule_arn=rule["Arn"])
                deliveries.append(
                    self._deliver(rule["Name"], target["Arn"], payload, target.get("RoleArn"), rule=(rule, target))
                )
        return deliveries

    def _deliver(
        self,
        source: str,
        target_arn: str,
        payload: str,
        role_arn: str | None = None,
        *,
        rule: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    ) -> Delivery:
        """Deliver to one target as EventBridge/Scheduler does: a state machine is started with the target's role.
        For a rule's target (``rule``: the rule and the target), EventBridge's retries and dead-letter queue
        (:func:`local.aws.eventbridge.with_retries`): the call is EventBridge's own (faults for
        ``events.amazonaws.com`` fire on it)."""
        service = target_arn.split(":")[2]
        if service == "states":
            if not role_arn:
                raise LocalCloudError(f"{source}: a Step Functions target needs a RoleArn to start the execution")
            creds = self.iam.credentials(role_arn, source)
            sfn = self.iam.session(creds).client("stepfunctions", region_name=self.region)
            name = str(uuid.uuid4())  # one name for every retry: a retried start never starts two executions

            def start() -> str:
                with acting_as(EVENTBRIDGE_PRINCIPAL):
                    return str(
                        sfn.start_execution(stateMachineArn=target_arn, name=name, input=payload)["executionArn"]
                    )

            if rule is None:
                return Delivery(source, target_arn, payload, execution_arn=start())
            answer = with_retries(start, rule[1], now=self.clock.now, sleep=self.time.sleep)
            if isinstance(answer, TargetFailure):
                return Delivery(source, target_arn, payload, failure=self._dead_letter(rule, payload, answer))
            return Delivery(source, target_arn, payload, execution_arn=answer)
        if service == "lambda":
            return Delivery(source, target_arn, payload, invocation=self.runtime.invoke(target_arn, payload))
        # SQS, logs and event-bus targets are delivered by moto itself; other targets are not emulated.
        return Delivery(source, target_arn, payload)

    def _dead_letter(
        self, rule: tuple[Mapping[str, Any], Mapping[str, Any]], payload: str, failure: TargetFailure
    ) -> TargetFailure:
        """Send the undelivered event to the target's dead-letter queue, as EventBridge does: only when the queue
        exists and its policy lets EventBridge send this rule's events (else it is dropped, as in AWS)."""
        rule_arn, target = str(rule[0]["Arn"]), rule[1]
        queue_arn = str((target.get("DeadLetterConfig") or {}).get("Arn") or "")
        if not queue_arn:
            return failure
        sqs = self.client("sqs")
        try:
            url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
            policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"].get("Policy")
        except sqs.exceptions.QueueDoesNotExist:
            return failure
        if not queue_policy_allows_eventbridge(policy, queue_arn=queue_arn, rule_arn=rule_arn):
            return failure
        attributes = dead_letter_attributes(failure, rule_arn=rule_arn, target_arn=str(target["Arn"]))
        sqs.send_message(QueueUrl=url, MessageBody=payload, MessageAttributes=attributes)
        return dataclasses.replace(failure, dead_lettered=True)

    def fire_schedule(self, name_or_logical_id: str) -> Delivery:
        """Fire a schedule now: a Scheduler schedule or a ``Schedule`` rule, by name or (generated) logical id."""
        source = next(
            (s for s in self.event_sources if name_or_logical_id in {s.name, s.logical_id}),
            None,
        )
        if source is None:
            raise LocalCloudError(f"no schedule {name_or_logical_id!r}")
        if source.kind == "schedule":
            schedule = self.client("scheduler").get_schedule(Name=source.name, GroupName=source.bus_or_group)
            target = schedule["Target"]
            return self._deliver(source.name, target["Arn"], target.get("Input") or "{}", target.get("RoleArn"))
        events = self.client("events")
        rule = events.describe_rule(Name=source.name, EventBusName=source.bus_or_group)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account_id,
            "time": self.clock.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [rule["Arn"]],
            "detail": {},
        }
        target = next(
            t for t in events.list_targets_by_rule(Rule=source.name)["Targets"] if t["Arn"] == source.target_arn
        )
        return self._deliver(
            source.name,
            target["Arn"],
            target_input(target, event, rule_name=source.name, rule_arn=rule["Arn"]),
            target.get("RoleArn"),
        )

    # -- EKS --------------------------------------------------------------------------------------------------------
    def register_cluster(
        self,
        name: str,
        cluster: ClusterLike,
        *,
        nodegroups: Mapping[str, NodegroupSpec] | None = None,
        version: str = "1.31",
        rbac: bool = True,
    ) -> None:
        """Make ``eks:DescribeCluster(name)`` return the emulator's endpoint and CA; node groups drive its NodePool.
        The control plane's access entries are made as the eks stack makes them, and (unless ``rbac=False``: the
        runbook's cluster admin applies it) the shipped RBAC of manifests/cluster-bootstrap.

        Creates the cluster in moto if it does not exist yet (e.g. when a CloudFormation stack already created it).
        ``eks:UpdateNodegroupConfig`` on any of the cluster's node groups calls ``cluster.nodes.set_group``.
        """
        from moto.eks.models import eks_backends  # noqa: PLC0415

        eks = self.client("eks")
        if name not in eks.list_clusters()["clusters"]:
            eks.create_cluster(
                name=name,
                version=version,
                roleArn=f"arn:aws:iam::{self.account_id}:role/{name}-cluster",
                resourcesVpcConfig={"subnetIds": ["subnet-local-a", "subnet-local-b"]},
            )
        backend = eks_backends[self.account_id][self.region]
        record = backend.clusters[name]
        self._grant_cluster_access(name, cluster, rbac=rbac)
        record.endpoint = cluster.endpoint
        record.certificate_authority = {"data": cluster.ca_data}
        self._clusters[name] = cluster
        self._install_nodegroup_hook(backend)
        for group, spec in (nodegroups or {}).items():
            if group not in record.nodegroups:
                eks.create_nodegroup(
                    clusterName=name,
                    nodegroupName=group,
                    scalingConfig={"minSize": spec.min_size, "maxSize": spec.max_size, "desiredSize": spec.desired},
                    instanceTypes=[spec.instance_type],
                    nodeRole=f"arn:aws:iam::{self.account_id}:role/{name}-nodes",
                    subnets=["subnet-local-a", "subnet-local-b"],
                    labels=dict(spec.labels),
                    taints=[dict(t) for t in spec.taints],
                    capacityType=spec.capacity_type,
                )
            cluster.nodes.set_group(
                group,
                spec.desired,
                spec.instance_type,
                labels=spec.labels,
                taints=spec.taints,
                capacity_type=spec.capacity_type,
                min_size=min(spec.min_size, spec.desired),
                max_size=max(spec.max_size, spec.desired),
            )

    def _grant_cluster_access(self, name: str, cluster: ClusterLike, *, rbac: bool = True) -> None:
        """The control plane's deploy role gets the eks stack's access entry and the shipped RBAC (as on AWS after
        bootstrap); who a request's access key is comes from STS when the cloud can say it (``caller_arn``),
        otherwise the harness's own key is taken for a session of the deploy role."""
        if not isinstance(cluster, GrantableCluster):
            return
        deploy_role_arn = (
            self.arn(DEPLOY_ROLE)
            if DEPLOY_ROLE in self.resources
            else f"arn:aws:iam::{self.account_id}:role/{FALLBACK_DEPLOY_ROLE_NAME}"  # no template: tests play its steps
        )
        caller_arn = getattr(self, "caller_arn", None)
        if callable(caller_arn):
            cluster.identities.resolve = caller_arn
        harness_key = None
        if not callable(caller_arn) or DEPLOY_ROLE not in self.resources:  # the harness itself plays the deploy role
            harness_key = os.environ.get("AWS_ACCESS_KEY_ID") or _FAKE_ENV["AWS_ACCESS_KEY_ID"]
        grant_control_plane(
            cluster,
            deploy_role_arn=deploy_role_arn,
            cluster_name=name,
            harness_key=harness_key,
            drift_role_arn=self.arn(DRIFT_ROLE) if DRIFT_ROLE in self.resources else None,
            rbac=rbac,
        )

    def _install_nodegroup_hook(self, backend: Any) -> None:
        if getattr(backend, "_localcloud_hooked", False):
            return
        original = backend.update_nodegroup_config

        def update_nodegroup_config(cluster_name: str, nodegroup_name: str, **kwargs: Any) -> Any:
            result = original(cluster_name, nodegroup_name, **kwargs)
            emulator = self._clusters.get(cluster_name)
            if emulator is not None:
                group = backend.clusters[cluster_name].nodegroups[nodegroup_name]
                instance_type = (group.instance_types or ["m6i.large"])[0]
                scaling = group.scaling_config
                emulator.nodes.set_group(
                    nodegroup_name,
                    int(scaling["desiredSize"]),
                    instance_type,
                    labels=group.labels,
                    taints=group.taints,
                    capacity_type=group.capacity_type,
                    min_size=min(int(scaling.get("minSize", 0)), int(scaling["desiredSize"])),
                    max_size=max(int(scaling.get("maxSize", 0)), int(scaling["desiredSize"])),
                )
            return result

        backend.update_nodegroup_config = update_nodegroup_config
        backend._localcloud_hooked = True

    # -- ECR --------------------------------------------------------------------------------------------------------
    def push_image(self, repository: str, tag: str, *, emit_event: bool = True) -> str:
        """Put an image manifest into ECR (no Docker) and return its digest (sha256 of the manifest bytes).

        Creates the repository if it does not exist. A repository with ``scanOnPush`` gets the image's basic scan
        as ECR would: COMPLETE with no findings (``set_scan_findings`` afterwards says otherwise). With
        ``emit_event`` the ``ECR Image Action`` PUSH/SUCCESS event goes to the default bus, as ECR sends it.
        """
        ecr = self.client("ecr")
        try:
            described = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
        except ecr.exceptions.RepositoryNotFoundException:
            described = ecr.create_repository(repositoryName=repository)["repository"]
        scan_on_push = bool((described.get("imageScanningConfiguration") or {}).get("scanOnPush"))
        self._push_count += 1
        seed = f"{repository}:{tag}:{self._push_count}".encode()
        layers = [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1024 * (i + 1),
                "digest": "sha256:" + hashlib.sha256(seed + f":layer{i}".encode()).hexdigest(),
            }
            for i in range(2)
        ]
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": 512,
                    "digest": "sha256:" + hashlib.sha256(seed + b":config").hexdigest(),
                },
                "layers": layers,
            },
            indent=3,
        )
        digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
        self._quiet_pushes.on = not emit_event
        try:
            ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag, imageDigest=digest)
        finally:
            self._quiet_pushes.on = False
        if scan_on_push:
            self.set_scan_findings(repository, digest)
        return digest

    def _emit_ecr_push(self, params: Mapping[str, Any], result: Any) -> None:
        """ECR's ``ECR Image Action`` event for a successful ``PutImage`` (a push or a retag), to the default bus."""
        image_id = (result.get("image") or {}).get("imageId") or {}
        detail = {
            "result": "SUCCESS",
            "repository-name": str(params["repositoryName"]),
            "image-digest": str(image_id.get("imageDigest")),
            "action-type": "PUSH",
        }
        if params.get("imageTag"):
            detail["image-tag"] = str(params["imageTag"])
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": self.account_id,
            "time": self.clock.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            "detail": detail,
        }
        self.ecr_events.append(event)
        self.deliver_event(event)

    def set_scan_findings(
        self,
        repository: str,
        digest: str,
        findings: Sequence[Mapping[str, Any]] = (),
        *,
        status: str = "COMPLETE",
        in_progress_reads: int = 0,
    ) -> None:
        """What ``ecr:DescribeImageScanFindings`` returns for this image from now on (status and basic findings).

        ``in_progress_reads``: the next that many reads say IN_PROGRESS (a scan still running), then ``status``.
        """
        from moto.ecr.models import ecr_backends  # noqa: PLC0415

        backend = ecr_backends[self.account_id][self.region]
        self._install_scan_hook(backend)
        self._scan_results[(repository, digest)] = _ScanResult(
            status, [dict(f) for f in findings], in_progress_reads=in_progress_reads
        )

    def _install_scan_hook(self, backend: Any) -> None:
        if getattr(backend, "_localcloud_hooked", False):
            return
        original = backend.describe_image_scan_findings

        def describe_image_scan_findings(
            registry_id: str | None, repository_name: str, image_id: dict[str, Any]
        ) -> Any:
            digest = image_id.get("imageDigest")
            repo = backend._get_repository(repository_name, registry_id)
            image = repo._get_image(image_id.get("imageTag"), digest)
            digest = image.get_image_digest()
            result = self._scan_results.get((repository_name, digest))
            if result is None:
                return original(registry_id=registry_id, repository_name=repository_name, image_id=image_id)
            status = result.current_status()
            counts: dict[str, int] = {}
            for finding in result.findings:
                severity = str(finding.get("severity", "UNDEFINED"))
                counts[severity] = counts.get(severity, 0) + 1
            response: dict[str, Any] = {
                "registryId": repo.registry_id,
                "repositoryName": repository_name,
                "imageId": {"imageDigest": digest, **({"imageTag": image.image_tag} if image.image_tag else {})},
                "imageScanStatus": {"status": status, "description": f"scan {status.lower()}"},
            }
            if status == "COMPLETE":
                response["imageScanFindings"] = {
                    "imageScanCompletedAt": self.clock.utcnow(),
                    "vulnerabilitySourceUpdatedAt": self.clock.utcnow(),
                    "findings": result.findings,
                    "findingSeverityCounts": counts,
                }
            return response

        backend.describe_image_scan_findings = describe_image_scan_findings
        backend._localcloud_hooked = True

    def registered_clusters(self) -> Iterator[str]:
        return iter(self._clusters)


__all__ = [
    "DEFAULT_TEMPLATE",
    "ClusterLike",
    "Delivery",
    "ExecutionResult",
    "ExecutionTimeoutError",
    "HistoryEvent",
    "LocalCloud",
    "LocalCloudError",
    "NodegroupSpec",
    "RedriveNotSupportedError",
    "TemplateError",
]
