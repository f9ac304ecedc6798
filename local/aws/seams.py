"""Every place where the harness reaches into moto's private internals, in one module.

moto is pinned (requirements/dev.txt). :func:`check_seams` verifies each seam still has the shape the patches rely
on and raises :class:`SeamMovedError` naming the one that moved; it runs when a :class:`~local.aws.LocalCloud` starts
and in ``tests/integration/aws/test_seams.py``. The seams:

* ``moto.awslambda.models.LambdaFunction.invoke(self, body, request_headers, response_headers)`` — every Lambda
  Invoke (boto3 ``lambda.invoke``, Step Functions ``arn:aws:states:::lambda:invoke`` and plain function ARNs) ends
  here; replaced by the in-process runtime (no Docker).
* ``...state.wait.wait_function.wait_function.WaitFunction._wait_interval`` and ``...timestamp.Timestamp
  ._get_wait_seconds`` — Wait states; replaced so they follow the :class:`SimClock`.
* ``...common.retry.retrier_decl`` module attribute ``time`` — Retry back-off (``time.sleep``); swapped for a shim.
* ``...state.state`` and ``moto.stepfunctions.parser.models`` module attribute ``datetime`` and
  ``EventManager._get_current_timestamp`` — ``$$.State.EnteredTime``, ``$$.Execution.StartTime`` and history
  timestamps; swapped so they read the SimClock.
* ``...backend.execution_worker.ExecutionWorker._get_evaluation_environment`` — moto puts a datetime object into
  ``$$.Execution.StartTime``; wrapped to pass the ISO-8601 string Step Functions passes.
* ``moto.stepfunctions.parser.asl.utils.boto_client.boto_client_for(region, service, state_credentials)``, as
  imported by every module of ``...asl.component`` — the clients of service integrations; moto signs them with one
  fixed key and ignores the execution's role: replaced by a client with the role's credentials (IAM, ``authz``).
* ``...asl.eval.event.event_manager.EventManager.add_event`` and its ``_event_id_gen`` — wrapped for the 25,000-event
  history quota.
* (botocore, not moto) ``botocore.client.BaseClient._make_api_call`` — every API call: IAM and request limits
  (:mod:`local.aws.authz`, :mod:`local.aws.limits`), ECR push events after ``PutImage``.
* ``moto.eks.models.Cluster`` attributes ``endpoint``/``certificate_authority``, ``EKSBackend.update_nodegroup_config``.
* ``moto.ecr.models.ECRBackend.describe_image_scan_findings``.
* ``moto.s3.models.FakeBucket.get_permission(self, action, resource)`` and ``moto.iam.access_control
  .IAMPolicyStatement._check_conditions`` — moto treats a bucket-policy statement whose Condition does not hold as an
  explicit Deny (a TLS-only policy then denies every object request); replaced so such a statement does not apply.
* ``moto.events.utils.EventTemplateParser`` (used by ``moto.events.models``) — moto's InputTransformer inserts string
  values unquoted outside JSON strings (EventBridge quotes them), then fails ``PutEvents`` on the bad JSON; replaced by
  :func:`local.aws.eventbridge.transform` for moto's own deliveries (SQS, logs).
* ``moto.events.models.Rule.send_to_targets(self, original_event, transform_input)`` — raises NotImplementedError
  for Step Functions and Lambda targets; wrapped so moto delivers only logs/SQS/event-bus targets (the harness
  delivers the rest).
* ``moto.events.models.EventPattern.load(raw).matches_event(event)`` — moto's pattern matcher (moto does not implement
  ``events:TestEventPattern``); used by :func:`pattern_matches`.
* ``botocore.endpoint`` module attribute ``time`` — botocore's own retry back-off (``time.sleep`` between attempts of
  a throttled or failed call); swapped for the clock shim, so an injected throttle costs simulated, not wall, time.
* ``moto.core.botocore_stubber.BotocoreStubber.__call__(self, event_name, request, **kwargs)`` and its
  ``MockRawResponse`` — where moto answers every mocked AWS request; wrapped so :class:`~local.aws.faults.AwsFaults`
  can answer a handler's call with an injected error first.
* ``moto.kms.models`` module attribute ``generate_private_key(key_spec)`` (called once in ``Key.__init__``) — moto
  makes an RSA-2048 key pair for every KMS key, symmetric and HMAC keys too, where only Sign/Verify/GetPublicKey of an
  asymmetric key read it; swapped for a key pair made on first use (~0.1 s of CPU saved per key).
* CloudFormation (:mod:`local.aws.cfn`): ``CloudFormationBackend.create_stack/update_stack/execute_change_set/
  delete_stack`` wrapped; ``CloudFormationResponse.update_termination_protection`` added (moto has none: if moto
  grows one, re-read it); ``Stack.enable_termination_protection``, ``Stack._parse_template``,
  ``Stack._create_output_map`` and ``OutputMap._parsed_outputs`` (outputs after a change set).
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import threading
import time as _time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol, cast
from unittest import mock

from local.aws.eventbridge import transform
from local.aws.faults import AwsFaults

MOTO_VERSION = "5.2.5"
_S3_REQUEST_CONTEXT = {"aws:SecureTransport": "true"}  # the harness's S3 clients speak HTTPS
HISTORY_LIMIT = 25_000  # Step Functions' hard quota of events in one execution's history
_TERMINAL_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"})
_MOTO_DELIVERED_TARGETS = frozenset({"logs", "sqs", "events"})


class SeamMovedError(RuntimeError):
    """moto changed under the harness: the named private seam no longer has the expected shape."""


class HistoryLimitExceeded(RuntimeError):  # noqa: N818 - the cause Step Functions reports
    """An execution's next history event would be beyond Step Functions' quota: the execution fails."""

    def __init__(self) -> None:
        super().__init__(f"The execution reached the maximum number of history events ({HISTORY_LIMIT}).")


class Timekeeper(Protocol):
    def now(self) -> float: ...

    def sleep(
        self,
        seconds: float,
        *,
        interrupt: threading.Event | None = None,
        running: Callable[[], bool] | None = None,
    ) -> None: ...


class Invoker(Protocol):
    def __call__(self, function_name: str, function_arn: str, body: str | bytes | None) -> tuple[bytes, str | None]: ...


_VALID_DEFINITIONS: set[str] = set()
"""ASL definitions moto's parser accepted (a pure function of the text), so each is parsed once per process."""


def _validated(validate: Callable[..., None]) -> Callable[..., None]:
    """moto's ``_validate_definition`` (an ANTLR parse, ~0.3 s for our machines), remembered for accepted texts; a
    refused definition is parsed again each time and refused the same way."""

    def validate_once(definition: str) -> None:
        if definition in _VALID_DEFINITIONS:
            return
        validate(definition=definition)
        _VALID_DEFINITIONS.add(definition)

    return validate_once


def check_seams() -> None:
    """Raise :class:`SeamMovedError` if any seam the harness patches has moved."""
    import moto  # noqa: PLC0415 - imported lazily: the harness must not import moto at import time
    from moto.awslambda import models as lambda_models  # noqa: PLC0415
    from moto.cloudformation import models as cfn_models  # noqa: PLC0415
    from moto.cloudformation import parsing as cfn_parsing  # noqa: PLC0415
    from moto.cloudformation import responses as cfn_responses  # noqa: PLC0415
    from moto.core import botocore_stubber  # noqa: PLC0415
    from moto.ecr import models as ecr_models  # noqa: PLC0415
    from moto.eks import models as eks_models  # noqa: PLC0415
    from moto.events import models as events_models  # noqa: PLC0415
    from moto.events import utils as events_utils  # noqa: PLC0415
    from moto.kms import models as kms_models  # noqa: PLC0415
    from moto.stepfunctions.parser import models as sfn_models  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state import state  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import (  # noqa: PLC0415
        timestamp,
        wait_function,
    )
    from moto.stepfunctions.parser.asl.eval.event import event_manager  # noqa: PLC0415
    from moto.stepfunctions.parser.backend import execution_worker  # noqa: PLC0415

    def expect(condition: bool, seam: str) -> None:
        if not condition:
            raise SeamMovedError(f"moto seam moved: {seam} (harness written against moto {MOTO_VERSION})")

    expect(moto.__version__ == MOTO_VERSION, f"moto version is {moto.__version__}")
    from moto.iam import access_control  # noqa: PLC0415
    from moto.s3 import models as s3_models  # noqa: PLC0415

    expect(
        list(inspect.signature(s3_models.FakeBucket.get_permission).parameters) == ["self", "action", "resource"],
        "s3 FakeBucket.get_permission signature",
    )
    expect(hasattr(access_control.IAMPolicyStatement, "is_action_permitted"), "IAMPolicyStatement.is_action_permitted")
    from moto.iam import models as iam_models  # noqa: PLC0415
    from moto.sts import models as sts_models  # noqa: PLC0415

    expect(hasattr(sts_models.STSBackend, "get_assumed_role_from_access_key"), "STSBackend.get_assumed_role_...")
    role_init = inspect.getsource(sts_models.AssumedRole.__init__)
    expect("self.secret_access_key" in role_init and "self.session_token" in role_init, "sts AssumedRole fields")
    expect(hasattr(iam_models.IAMBackend, "get_user_from_access_key_id"), "IAMBackend.get_user_from_access_key_id")
    expect("self.access_keys: list" in inspect.getsource(iam_models.User.__init__), "iam User.access_keys")
    params = list(inspect.signature(lambda_models.LambdaFunction.invoke).parameters)
    expect(params == ["self", "body", "request_headers", "response_headers"], "LambdaFunction.invoke signature")
    source = inspect.getsource(lambda_eval_utils)
    expect(source.count("lambda_client.invoke(") >= 2, "lambda_eval_utils invokes through the boto3 lambda client")
    expect("errorType" in source or "LambdaFunctionErrorException" in source, "lambda error mapping")
    expect(hasattr(wait_function.WaitFunction, "_wait_interval"), "WaitFunction._wait_interval")
    params = list(inspect.signature(wait_function.WaitFunction._wait_interval).parameters)
    expect(params == ["self", "env", "wait_seconds"], "WaitFunction._wait_interval signature")
    from moto.stepfunctions.parser.asl.utils import boto_client  # noqa: PLC0415

    params = list(inspect.signature(boto_client.boto_client_for).parameters)
    expect(params == ["region", "service", "state_credentials"], "boto_client_for signature")
    expect(len(_boto_client_for_importers()) >= 2, "modules importing boto_client_for")
    expect(hasattr(timestamp.Timestamp, "_get_wait_seconds"), "Timestamp._get_wait_seconds")
    expect(getattr(retrier_decl, "time", None) is _time, "retrier_decl.time")
    expect("time.sleep(" in inspect.getsource(retrier_decl), "retrier_decl sleeps with time.sleep")
    expect(getattr(state, "datetime", None) is _dt, "state.datetime")
    expect(getattr(sfn_models, "datetime", None) is _dt, "parser.models.datetime")
    expect(
        isinstance(vars(sfn_models.StepFunctionsParserBackend).get("_validate_definition"), staticmethod),
        "StepFunctionsParserBackend._validate_definition",
    )
    expect(hasattr(event_manager.EventManager, "_get_current_timestamp"), "EventManager._get_current_timestamp")
    add_event_params = list(inspect.signature(event_manager.EventManager.add_event).parameters)
    expect(add_event_params[:3] == ["self", "context", "event_type"], "EventManager.add_event signature")
    expect("self._event_id_gen = EventIdGenerator()" in inspect.getsource(event_manager.EventManager), "_event_id_gen")
    worker_source = inspect.getsource(execution_worker.ExecutionWorker._get_evaluation_environment)
    expect("StartTime=" in worker_source, "ExecutionWorker._get_evaluation_environment sets $$.Execution.StartTime")
    from botocore import endpoint as botocore_endpoint  # noqa: PLC0415

    expect(getattr(botocore_endpoint, "time", None) is _time, "botocore.endpoint.time")
    expect("time.sleep(" in inspect.getsource(botocore_endpoint.Endpoint), "botocore Endpoint sleeps with time.sleep")
    params = list(inspect.signature(botocore_stubber.BotocoreStubber.__call__).parameters)
    expect(params == ["self", "event_name", "request", "kwargs"], "BotocoreStubber.__call__ signature")
    expect(hasattr(botocore_stubber, "MockRawResponse"), "botocore_stubber.MockRawResponse")
    expect(hasattr(eks_models.EKSBackend, "update_nodegroup_config"), "EKSBackend.update_nodegroup_config")
    cluster_init = inspect.getsource(eks_models.Cluster.__init__)
    expect("self.endpoint" in cluster_init and "self.certificate_authority" in cluster_init, "eks Cluster fields")
    expect(hasattr(ecr_models.ECRBackend, "describe_image_scan_findings"), "ECRBackend.describe_image_scan_findings")
    expect(hasattr(events_models.EventPattern, "load"), "events EventPattern.load")
    expect(hasattr(events_utils.EventTemplateParser, "parse"), "events EventTemplateParser.parse")
    params = list(inspect.signature(events_models.Rule.send_to_targets).parameters)
    expect(params == ["self", "original_event", "transform_input"], "events Rule.send_to_targets signature")
    expect(hasattr(events_models.EventPattern, "matches_event"), "events EventPattern.matches_event")
    expect(
        not hasattr(cfn_responses.CloudFormationResponse, "update_termination_protection"),
        "CloudFormationResponse.update_termination_protection exists now (the harness adds its own)",
    )
    for name in ("create_stack", "update_stack", "execute_change_set", "delete_stack"):
        expect(hasattr(cfn_models.CloudFormationBackend, name), f"CloudFormationBackend.{name}")
    stack_source = inspect.getsource(cfn_models.Stack)
    expect("self.enable_termination_protection" in stack_source, "Stack.enable_termination_protection")
    expect(
        hasattr(cfn_models.Stack, "_create_output_map") and hasattr(cfn_models.Stack, "_parse_template"),
        "Stack._create_output_map / _parse_template",
    )
    expect("self._parsed_outputs" in inspect.getsource(cfn_parsing.OutputMap), "OutputMap._parsed_outputs")
    expect(
        "self.private_key = generate_private_key(self.key_spec)" in inspect.getsource(kms_models.Key.__init__),
        "kms Key.__init__ makes its key pair with generate_private_key(self.key_spec)",
    )
    kms_from_cfn = inspect.getsource(kms_models.Key.create_from_cloudformation_json)
    expect(
        'tags=properties.get("Tags"' in kms_from_cfn, "kms Key.create_from_cloudformation_json passes CFN Tags as-is"
    )


def pattern_matches(pattern: str, event: dict[str, Any]) -> bool:
    """moto's EventBridge pattern matcher applied to one event envelope."""
    from moto.events.models import EventPattern  # noqa: PLC0415

    matcher: Any = EventPattern.load(pattern)
    return bool(matcher.matches_event(event))


class _ClockDatetimeModule:
    """Stands in for the ``datetime`` module inside moto modules: ``datetime.datetime.now`` reads the clock."""

    def __init__(self, keeper: Timekeeper, *, aws_isoformat: bool = False) -> None:
        class ClockDateTime(_dt.datetime):
            @classmethod
            def now(cls, tz: _dt.tzinfo | None = None) -> ClockDateTime:
                return cls.fromtimestamp(keeper.now(), tz)

            @classmethod
            def utcnow(cls) -> ClockDateTime:
                return cls.fromtimestamp(keeper.now(), _dt.UTC).replace(tzinfo=None)

            if aws_isoformat:

                def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
                    del sep, timespec
                    return aws_timestamp(self)

        self.datetime = ClockDateTime

    def __getattr__(self, name: str) -> Any:
        return getattr(_dt, name)


def aws_timestamp(moment: _dt.datetime) -> str:
    """Step Functions' context-object time format: ``2019-03-26T20:14:13.192Z``."""
    utc = moment.astimezone(_dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class _ClockTimeModule:
    """Stands in for the ``time`` module inside moto's retrier: ``time.sleep`` follows the clock."""

    def __init__(self, keeper: Timekeeper) -> None:
        self._keeper = keeper

    def sleep(self, seconds: float) -> None:
        self._keeper.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


def condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """Whether an IAM ``Condition`` block holds in ``context`` (``Bool``/``StringEquals``/``StringNotEquals``).

    A key missing from the context does not match (as in IAM, without ``...IfExists``). An operator this does not
    know is taken to hold, so a Deny with it still applies: stricter than AWS, never more lenient.
    """
    for operator, pairs in condition.items():
        for key, expected in pairs.items():
            values = [str(v).lower() if operator == "Bool" else str(v) for v in _as_list(expected)]
            actual = context.get(key)
            if operator in {"Bool", "StringEquals"}:
                ok = actual is not None and (actual.lower() if operator == "Bool" else actual) in values
            elif operator == "StringNotEquals":
                ok = actual is not None and actual not in values
            else:
                ok = True
            if not ok:
                return False
    return True


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@contextmanager
def patched_moto(
    keeper: Timekeeper,
    invoker: Invoker,
    service_client: Callable[[str, str, str], Any] | None = None,
    aws_faults: AwsFaults | None = None,
) -> Iterator[None]:
    """Install every seam for the duration of the ``with`` block.

    ``service_client(region, service, role_arn)``: the boto3 client a state machine's service integration uses (moto's
    own ``boto_client_for`` signs every integration with one fixed key and ignores the execution's role).
    ``aws_faults``: injected AWS errors answered before moto (:mod:`local.aws.faults`).
    """
    from botocore import endpoint as botocore_endpoint  # noqa: PLC0415
    from botocore.awsrequest import AWSResponse  # noqa: PLC0415
    from botocore.compat import HTTPHeaders  # noqa: PLC0415
    from moto.awslambda import models as lambda_models  # noqa: PLC0415
    from moto.core import botocore_stubber  # noqa: PLC0415
    from moto.events import models as events_models  # noqa: PLC0415
    from moto.events import utils as events_utils  # noqa: PLC0415
    from moto.kms import models as kms_models  # noqa: PLC0415
    from moto.s3 import models as s3_models  # noqa: PLC0415
    from moto.stepfunctions.parser import models as sfn_models  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (  # noqa: PLC0415
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state import state  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import (  # noqa: PLC0415
        timestamp,
        wait_function,
    )
    from moto.stepfunctions.parser.asl.eval.event import event_manager  # noqa: PLC0415
    from moto.stepfunctions.parser.backend import execution_worker  # noqa: PLC0415

    check_seams()

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: dict[str, str]) -> bytes:
        del request_headers
        payload, function_error = invoker(self.function_name, self.function_arn, body)
        if function_error:
            response_headers["x-amz-function-error"] = function_error
        return payload

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        del self
        if wait_seconds > 0 and env.is_running():
            keeper.sleep(wait_seconds, interrupt=env.program_state_event, running=env.is_running)

    def get_wait_seconds(self: Any, env: Any) -> int:
        # moto compares the UTC timestamp with naive local time; compare with the clock in UTC instead.
        self.string.eval(env=env)
        text: str = env.stack.pop()
        parsed = self._from_timestamp_string(timestamp=text)
        if parsed is None:
            raise FailureEventException(self._create_failure_event(env, text))
        target = parsed.replace(tzinfo=_dt.UTC).timestamp()
        return max(0, int(target - keeper.now()))

    clock_datetime = _ClockDatetimeModule(keeper)
    original_add_event = event_manager.EventManager.add_event

    def add_event(self: Any, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> Any:
        # Event number HISTORY_LIMIT may only end the execution: anything else fails it (ExecutionFailed is logged).
        name = str(getattr(event_type, "value", event_type))
        if name not in _TERMINAL_EVENTS and self._event_id_gen._next_id >= HISTORY_LIMIT:
            raise HistoryLimitExceeded
        return original_add_event(self, context, event_type, *args, **kwargs)

    original_send = events_models.Rule.send_to_targets
    send_lock = threading.Lock()

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        # moto delivers to logs, SQS and event buses and raises NotImplementedError for every other target (Step
        # Functions, Lambda); the harness delivers those itself, so moto only sees the targets it can deliver.
        with send_lock:
            targets = self.targets
            self.targets = [t for t in targets if t["Arn"].split(":")[2] in _MOTO_DELIVERED_TARGETS]
            try:
                original_send(self, original_event, transform_input)
            finally:
                self.targets = targets

    original_parse = events_utils.EventTemplateParser.parse

    def parse_template(input_template: str | None, input_paths_map: dict[str, Any], event: Any) -> Any:
        if not input_template:
            return original_parse(input_template=input_template or "", input_paths_map=input_paths_map, event=event)
        transformer = {"InputTemplate": input_template, "InputPathsMap": input_paths_map or {}}
        text = transform(transformer, event, rule_name="", rule_arn="")
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    original_environment = execution_worker.ExecutionWorker._get_evaluation_environment

    def evaluation_environment(self: Any) -> Any:
        # moto puts a datetime object into $$.Execution.StartTime; Step Functions passes an ISO-8601 string.
        env = original_environment(self)
        execution = env.states.context_object.context_object_data["Execution"]
        started: Any = execution.get("StartTime")
        if isinstance(started, _dt.datetime):
            execution["StartTime"] = aws_timestamp(started)
        return env

    original_kms_key_from_cfn = cast(Any, kms_models.Key.create_from_cloudformation_json).__func__

    def bucket_permission(self: Any, action: str, resource: str) -> Any:
        # moto's IAMPolicyStatement answers DENIED when a statement's Condition does not hold, so a TLS-only policy
        # (Deny s3:* if aws:SecureTransport is "false") denies every request. In AWS a statement whose condition does
        # not hold does not apply. Evaluate statement by statement in the request context of the harness's clients
        # (boto3 over HTTPS: aws:SecureTransport "true"); an explicit Deny wins, then an Allow.
        from moto.iam.access_control import IAMPolicyStatement, PermissionResult  # noqa: PLC0415

        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy)
        statements = document.get("Statement") or []
        result = PermissionResult.NEUTRAL
        for raw in statements if isinstance(statements, list) else [statements]:
            statement = IAMPolicyStatement(raw)
            if raw.get("Condition") and not condition_holds(raw["Condition"], _S3_REQUEST_CONTEXT):
                continue
            answer = statement.is_action_permitted(action, resource)
            if answer == PermissionResult.DENIED:
                return answer
            if answer == PermissionResult.PERMITTED:
                result = answer
        return result

    def kms_key_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
        # AWS::KMS::Key Tags are {Key, Value} in CloudFormation; moto hands them to the KMS API unchanged, which
        # wants {TagKey, TagValue}, and fails with KeyError 'TagKey'.
        properties = dict(cloudformation_json.get("Properties") or {})
        properties["Tags"] = [
            {"TagKey": t["Key"], "TagValue": t["Value"]} if "Key" in t else t for t in properties.get("Tags") or []
        ]
        translated = {**cloudformation_json, "Properties": properties}
        return original_kms_key_from_cfn(cls, resource_name, translated, *args, **kwargs)

    original_stubber_call = botocore_stubber.BotocoreStubber.__call__

    def stubber_call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        answer = aws_faults.answer(event_name, body) if aws_faults is not None and self.enabled else None
        if answer is not None:
            status, fields, body = answer
            headers = HTTPHeaders()
            for key, value in fields.items():
                headers[key] = value
            return AWSResponse(request.url, status, headers, botocore_stubber.MockRawResponse(body))
        return original_stubber_call(self, event_name, request, **kwargs)

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(s3_models.FakeBucket, "get_permission", bucket_permission))
        if service_client is not None:
            for module in _boto_client_for_importers():
                stack.enter_context(mock.patch.object(module, "boto_client_for", _integration_client(service_client)))
        stack.enter_context(mock.patch.object(botocore_stubber.BotocoreStubber, "__call__", stubber_call))
        stack.enter_context(
            mock.patch.object(kms_models.Key, "create_from_cloudformation_json", classmethod(kms_key_from_cfn))
        )
        make_key_pair = vars(kms_models)["generate_private_key"]
        stack.enter_context(
            mock.patch.object(kms_models, "generate_private_key", lambda spec: _KeyPairOnFirstUse(make_key_pair, spec))
        )
        stack.enter_context(mock.patch.object(lambda_models.LambdaFunction, "invoke", invoke))
        stack.enter_context(mock.patch.object(event_manager.EventManager, "add_event", add_event))
        stack.enter_context(mock.patch.object(events_utils.EventTemplateParser, "parse", staticmethod(parse_template)))
        stack.enter_context(mock.patch.object(events_models.Rule, "send_to_targets", send_to_targets))
        stack.enter_context(mock.patch.object(wait_function.WaitFunction, "_wait_interval", wait_interval))
        stack.enter_context(mock.patch.object(timestamp.Timestamp, "_get_wait_seconds", get_wait_seconds))
        stack.enter_context(mock.patch.object(retrier_decl, "time", _ClockTimeModule(keeper)))
        stack.enter_context(mock.patch.object(botocore_endpoint, "time", _ClockTimeModule(keeper)))
        stack.enter_context(mock.patch.object(state, "datetime", _ClockDatetimeModule(keeper, aws_isoformat=True)))
        stack.enter_context(
            mock.patch.object(execution_worker.ExecutionWorker, "_get_evaluation_environment", evaluation_environment)
        )
        stack.enter_context(mock.patch.object(sfn_models, "datetime", clock_datetime))
        backend = sfn_models.StepFunctionsParserBackend
        stack.enter_context(
            mock.patch.object(backend, "_validate_definition", staticmethod(_validated(backend._validate_definition)))
        )
        stack.enter_context(
            mock.patch.object(
                event_manager.EventManager,
                "_get_current_timestamp",
                staticmethod(lambda: clock_datetime.datetime.now(tz=_dt.UTC)),
            )
        )
        yield


def signing_identity(access_key_id: str) -> tuple[str, str | None, str, str, str] | None:
    """``(secret key, session token, principal ARN, user id, account)`` of credentials moto issued, else ``None``.

    Reads moto's private stores: ``moto.sts.models.sts_backends[account]["global"].assumed_roles`` (``AssumeRole``
    sessions: ``access_key_id``, ``secret_access_key``, ``session_token``, ``arn``, ``user_id``) and
    ``moto.iam.models.iam_backends[account]["aws"].get_user_from_access_key_id`` and ``User.access_keys``
    (``CreateAccessKey``: ``secret_access_key``, ``status``). The function URL endpoint verifies SigV4 with them.
    """
    from moto.iam import models as iam_models  # noqa: PLC0415 - imported lazily, like every moto seam
    from moto.sts import models as sts_models  # noqa: PLC0415

    for account_id, regions in list(sts_models.sts_backends.items()):
        role = regions["global"].get_assumed_role_from_access_key(access_key_id)
        if role is not None:
            return role.secret_access_key, role.session_token, role.arn, role.user_id, account_id
    for account_id, partitions in list(iam_models.iam_backends.items()):
        user = partitions["aws"].get_user_from_access_key_id(access_key_id)
        if user is not None:
            key = next(k for k in user.access_keys if k.access_key_id == access_key_id)
            if key.status != "Active":
                return None
            return key.secret_access_key, None, user.arn, user.id, account_id
    return None


class _KeyPairOnFirstUse:
    """Stands in for moto's private key of a KMS key: the key pair is made by moto's own ``generate_private_key`` the
    first time anything reads it (sign, verify, public key), never for a key nobody signs with."""

    def __init__(self, make: Callable[[str], Any], key_spec: str) -> None:
        self._make, self._key_spec = make, key_spec
        self._key: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._key is None:
                self._key = self._make(self._key_spec)
        return getattr(self._key, name)


def _boto_client_for_importers() -> list[Any]:
    """Every module of moto's Step Functions engine that imported ``boto_client_for`` (the integrations' clients)."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    from moto.stepfunctions.parser.asl import component  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.utils import boto_client  # noqa: PLC0415

    modules = []
    for info in pkgutil.walk_packages(component.__path__, component.__name__ + "."):
        module = importlib.import_module(info.name)
        if getattr(module, "boto_client_for", None) is boto_client.boto_client_for:
            modules.append(module)
    return modules


def _integration_client(service_client: Callable[[str, str, str], Any]) -> Callable[..., Any]:
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, "role_arn", None)
        if not role_arn:
            raise SeamMovedError("moto's boto_client_for was called without the execution's StateCredentials")
        return service_client(region, service, str(role_arn))

    return boto_client_for
