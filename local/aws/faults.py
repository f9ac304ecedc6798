"""AWS fault injection: make the next matching AWS API calls fail as the real service does under load.

``cloud.aws_faults.add("dynamodb", "UpdateItem", times=3)`` answers the next three ``dynamodb:UpdateItem`` calls made
by a handler with ``ThrottlingException`` (HTTP 400), in the service's own wire format, so botocore parses and
retries them exactly as against AWS (its retry handler sleeps real seconds between attempts: keep ``times`` small
or expect the handler to give up with ``AwsThrottledError``). ``function=`` limits a fault to one function
(the in-process invocation running on the calling thread); by default faults only fire inside handlers, so the
harness's own calls (starting executions, reading the ledger in a test) are never hit. ``containing=`` limits it
to requests whose body holds that text (one kind of item in a DynamoDB write, one state machine's ARN).
``every_call=True`` (with ``times=None``) fails the FIRST attempt of every matching call and answers its retry
(the same request sent again on the same thread): every call the handlers make meets the error once.
``code``/``status`` choose another error (``ProvisionedThroughputExceededException``, ``InternalServerError`` 500,
``ServiceUnavailable`` 503, SNS's ``Throttling``). ``cloud.aws_faults.calls`` records every call a handler made as
``(function, service, operation, failed)``.

Seam: moto answers every mocked request in ``moto.core.botocore_stubber.BotocoreStubber.__call__``; the harness
wraps it (``local/aws/seams.py``) and asks :meth:`AwsFaults.answer` first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from local.aws.lambdas import current_function

# Services that speak a JSON protocol (error code in ``__type``); the others answer XML (query/rest-xml).
_JSON_SERVICES = frozenset(
    {"dynamodb", "ecr", "events", "sfn", "lambda", "eks", "scheduler", "logs", "cloudwatch-logs"}
)


_service = threading.local()


@contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """Calls made on this thread meanwhile are an AWS service's own (EventBridge starting a rule's target, as
    ``events.amazonaws.com``): a fault added with ``function=principal`` fires for them, as for a handler's."""
    before = getattr(_service, "principal", None)
    _service.principal = principal
    try:
        yield
    finally:
        _service.principal = before


@dataclass
class AwsFault:
    service: str
    operation: str | None = None
    code: str = "ThrottlingException"
    status: int = 400
    message: str = "Rate exceeded"
    times: int | None = 1
    function: str | None = None
    containing: bytes | None = None
    every_call: bool = False
    fired: int = 0

    def matches(self, service: str, operation: str, function: str | None, body: bytes) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.service != service or (self.operation is not None and self.operation != operation):
            return False
        if self.containing is not None and self.containing not in body:
            return False
        return self.function is None or self.function == function


@dataclass(frozen=True)
class AwsCall:
    function: str | None
    service: str
    operation: str
    failed: bool


class AwsFaults:
    """The cloud's AWS fault list; thread-safe (Parallel branches invoke handlers concurrently)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[AwsFault] = []
        self.calls: list[AwsCall] = []
        self._failed_last: dict[int, tuple[str, str, bytes]] = {}
        """Per thread: the request an ``every_call`` fault failed last (its retry is answered)."""

    def add(
        self,
        service: str,
        operation: str | None = None,
        *,
        code: str = "ThrottlingException",
        status: int = 400,
        message: str = "Rate exceeded",
        times: int | None = 1,
        function: str | None = None,
        containing: str | None = None,
        every_call: bool = False,
    ) -> AwsFault:
        if not 400 <= status <= 599:
            raise ValueError(f"status {status}: an AWS error is a 4xx or 5xx")
        needle = containing.encode() if containing is not None else None
        fault = AwsFault(service, operation, code, status, message, times, function, needle, every_call)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def answer(self, event_name: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes] | None:
        """The error response for ``before-send.<service>.<Operation>`` whose request body is ``body``, or ``None``
        to let moto answer."""
        function = getattr(_service, "principal", None) or current_function()
        if function is None:
            return None  # the harness's own call, not a handler's
        _, service, operation = ([*event_name.split(".", 2), "", ""])[:3]
        with self._lock:
            fault = next((f for f in self._faults if f.matches(service, operation, function, body)), None)
            if fault is not None and fault.every_call:
                request, thread = (service, operation, body), threading.get_ident()
                if self._failed_last.get(thread) == request:
                    del self._failed_last[thread]  # the retry of the attempt that failed: answered
                    fault = None
                else:
                    self._failed_last[thread] = request
            if fault is not None:
                fault.fired += 1
            self.calls.append(AwsCall(function, service, operation, failed=fault is not None))
        return None if fault is None else _error_response(service, fault)

    def failed(self, service: str | None = None) -> list[AwsCall]:
        with self._lock:
            return [c for c in self.calls if c.failed and (service is None or c.service == service)]


def _error_response(service: str, fault: AwsFault) -> tuple[int, dict[str, str], bytes]:
    if service in _JSON_SERVICES:
        body = json.dumps({"__type": fault.code, "message": fault.message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": fault.code}
        return fault.status, headers, body
    kind = "Receiver" if fault.status >= 500 else "Sender"
    xml = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{fault.code}</Code><Message>{fault.message}</Message>"
        "</Error><RequestId>local-fault</RequestId></ErrorResponse>"
    )
    return fault.status, {"Content-Type": "text/xml"}, xml.encode()
