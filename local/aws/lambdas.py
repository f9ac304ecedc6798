"""Running Lambda handlers in-process, the way the Lambda Python runtime would.

Each function's handler module is imported once, by file path, under a unique module name, with the function's
environment applied. Every invocation runs under one process-wide lock (``os.environ`` is global), with the function's
environment set for the duration of the call and restored afterwards. The payload is round-tripped through JSON in
both directions, and an exception leaves the handler as Lambda's *unhandled* error: ``FunctionError: Unhandled`` and
the payload ``{"errorType", "errorMessage", "requestId", "stackTrace"}``, which Step Functions turns into
``Error = errorType`` and ``Cause = <that payload as JSON>``.

What a handler prints (Powertools' JSON log lines, EMF metrics) goes where Lambda sends it: to the function's log
stream, here ``LambdaRuntime.logs`` (one :class:`LogLine` per line), not to the harness's own stdout. While a handler
runs, ``sys.stdout``/``sys.stderr`` and every ``logging.StreamHandler`` writing to them point at the invocation's
buffer. An invocation that ends in an unhandled error also echoes its log lines to stderr, so a failing test shows
them.

Layers are not extracted to ``/opt``: an environment variable naming ``/opt/...`` reaches the handler already resolved
against the function's layers' ContentUri directories (done when the function is created, see
``local.aws.provision.resolve_opt_path``); Python layers are importable because their ContentUri is on ``sys.path``.

Limits: a handler that returns after its function's ``Timeout`` (wall time) ends as Lambda reports a timeout
(``Sandbox.Timedout``, ``Task timed out after N.NN seconds``), though it is not stopped at the deadline; a response over
6,291,556 bytes is ``Function.ResponseSizeTooLarge``; a request over 6 MB is refused by ``local.aws.limits``.
Not emulated: memory limits, concurrency limits, cold/warm start differences beyond "imported once".
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

MAX_RESPONSE_BYTES = 6_291_556  # Lambda's synchronous response quota, as its error message states it
_RUNTIME_ENV_DEFAULTS = {
    # Tracing needs an X-Ray daemon; SAM local disables it the same way.
    "POWERTOOLS_TRACE_DISABLED": "true",
}


_invocation = threading.local()


def current_function() -> str | None:
    """The function whose handler runs on this thread (None on the harness's own threads).

    ``AWS_LAMBDA_FUNCTION_NAME`` cannot tell: ``os.environ`` is process-wide, so a test thread calling AWS while a
    handler runs on an execution thread would read the handler's name.
    """
    return getattr(_invocation, "function", None)


class HandlerNotFoundError(LookupError):
    """A function's Handler setting does not point to an importable module attribute."""


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the template declares it (Globals merged, intrinsics resolved)."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int = 128
    timeout_s: int = 3
    region: str = "us-east-1"
    role_arn: str = ""

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.name}"


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, spec: FunctionSpec, request_id: str) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = spec.log_group_name
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{request_id.replace('-', '')}"
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class InvocationResult:
    """What Lambda's Invoke API returns: the payload bytes and, for a failed invocation, ``FunctionError``."""

    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class LogLine:
    """One line a function printed, as CloudWatch Logs would hold it."""

    function_name: str
    request_id: str
    message: str


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation, kept for tests and the demo (payloads are the JSON the handler saw and returned)."""

    function_name: str
    request_id: str
    event: Any
    result: Any
    function_error: str | None


class LambdaRuntime:
    """In-process stand-in for the Lambda service: a registry of functions and a serialised invoke."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionSpec] = {}
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.RLock()
        self.invocations: list[InvocationRecord] = []
        self.logs: list[LogLine] = []
        # The execution role's identity for the duration of one call (credentials exported, default boto3 session).
        self.identity: Callable[[FunctionSpec], AbstractContextManager[None]] = lambda _spec: nullcontext()

    def register(self, spec: FunctionSpec) -> None:
        self._functions[spec.name] = spec
        self._functions[spec.arn] = spec

    def lookup(self, name_or_arn: str) -> FunctionSpec | None:
        key = name_or_arn.split(":", 7)
        if len(key) == 8:  # qualified ARN  arn:aws:lambda:region:acct:function:name:qualifier
            name_or_arn = ":".join(key[:7])
        return self._functions.get(name_or_arn)

    @property
    def functions(self) -> list[FunctionSpec]:
        return list({spec.name: spec for spec in self._functions.values()}.values())

    def invoke(self, name_or_arn: str, payload: bytes | str | None) -> InvocationResult:
        spec = self.lookup(name_or_arn)
        if spec is None:
            raise HandlerNotFoundError(f"no in-process handler registered for function {name_or_arn}")
        request_id = str(uuid.uuid4())
        raw = payload.decode() if isinstance(payload, bytes) else (payload or "{}")
        event = json.loads(raw or "{}")
        with self._lock, _environment(spec), self.identity(spec):
            output = io.StringIO()
            started = time.monotonic()
            try:
                with _captured_output(output):
                    handler = self._handler(spec)
                    _invocation.function = spec.name
                    try:
                        result = handler(event, LambdaContext(spec, request_id))
                    finally:
                        _invocation.function = None
            except Exception as exc:  # noqa: BLE001 - every handler exception becomes Lambda's unhandled error
                self._keep_logs(spec, request_id, output.getvalue(), echo=True)
                error = {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "requestId": request_id,
                    "stackTrace": traceback.format_tb(exc.__traceback__.tb_next if exc.__traceback__ else None),
                }
                return self._record(spec, request_id, event, error, "Unhandled")
            if time.monotonic() - started > spec.timeout_s:
                # Lambda would have stopped the handler at its Timeout; in-process it ran to the end, and what it
                # did after the deadline stays done (listed in local/aws/README.md).
                self._keep_logs(spec, request_id, output.getvalue(), echo=True)
                error = {
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {spec.timeout_s:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                }
                return self._record(spec, request_id, event, error, "Unhandled")
            self._keep_logs(spec, request_id, output.getvalue(), echo=False)
            try:
                body = json.dumps(result)
            except (TypeError, ValueError) as exc:
                error = {
                    "errorMessage": f"Unable to marshal response: {exc}",
                    "errorType": "Runtime.MarshalError",
                    "requestId": request_id,
                    "stackTrace": [],
                }
                return self._record(spec, request_id, event, error, "Unhandled")
            if len(body.encode("utf-8")) > MAX_RESPONSE_BYTES:
                error = {
                    "errorMessage": "Response payload size exceeded maximum allowed payload size "
                    f"({MAX_RESPONSE_BYTES} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                }
                return self._record(spec, request_id, event, error, "Unhandled")
            return self._record(spec, request_id, event, json.loads(body), None)

    def _keep_logs(self, spec: FunctionSpec, request_id: str, text: str, *, echo: bool) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        self.logs.extend(LogLine(spec.name, request_id, line) for line in lines)
        if echo and lines:
            sys.stderr.write("".join(f"[{spec.name} {request_id}] {line}\n" for line in lines))

    def _record(
        self, spec: FunctionSpec, request_id: str, event: Any, result: Any, error: str | None
    ) -> InvocationResult:
        self.invocations.append(InvocationRecord(spec.name, request_id, event, result, error))
        return InvocationResult(json.dumps(result).encode(), error)

    def _handler(self, spec: FunctionSpec) -> Callable[[Any, LambdaContext], Any]:
        module_path, _, attribute = spec.handler.rpartition(".")
        if not module_path or not attribute:
            raise HandlerNotFoundError(f"{spec.logical_id}: Handler {spec.handler!r} is not <module>.<function>")
        module = self._modules.get(spec.name)
        if module is None:
            module = _import_by_path(spec, module_path)
            self._modules[spec.name] = module
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise HandlerNotFoundError(f"{spec.logical_id}: {spec.handler} is not a callable in {spec.code_dir}")
        return handler  # type: ignore[no-any-return]


def _import_by_path(spec: FunctionSpec, module_path: str) -> ModuleType:
    file = spec.code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
    if not file.is_file():
        raise HandlerNotFoundError(f"{spec.logical_id}: {file} does not exist")
    unique = f"_localcloud_fn_{spec.logical_id}_{module_path.replace('.', '_')}"
    module_spec = importlib.util.spec_from_file_location(unique, file)
    if module_spec is None or module_spec.loader is None:
        raise HandlerNotFoundError(f"{spec.logical_id}: cannot import {file}")
    module = importlib.util.module_from_spec(module_spec)
    # Lambda puts the code directory first on sys.path; do the same while the module body runs, so a handler
    # importing a sibling module works, then take it away again so functions cannot see each other's files.
    code_dir = str(spec.code_dir)
    sys.path.insert(0, code_dir)
    sys.modules[unique] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    finally:
        if code_dir in sys.path:
            sys.path.remove(code_dir)
    return module


@contextmanager
def _captured_output(buffer: io.StringIO) -> Iterator[None]:
    """Point stdout, stderr and the stream handlers writing to them at ``buffer`` for one invocation."""
    originals = (sys.stdout, sys.stderr)
    rebound: list[tuple[logging.StreamHandler[Any], Any]] = []
    loggers = [
        logging.getLogger(),
        *(obj for obj in logging.Logger.manager.loggerDict.values() if isinstance(obj, logging.Logger)),
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in originals:
                rebound.append((handler, handler.stream))
                handler.setStream(buffer)
    sys.stdout = sys.stderr = buffer
    try:
        yield
    finally:
        sys.stdout, sys.stderr = originals
        for handler, stream in rebound:
            handler.setStream(stream)


@contextmanager
def _environment(spec: FunctionSpec) -> Iterator[None]:
    values = dict(_RUNTIME_ENV_DEFAULTS)
    values.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
        }
    )
    values.update({k: str(v) for k, v in spec.environment.items()})
    with environ(values):
        yield


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` for the duration, then each variable as it was (unset if it was unset)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
