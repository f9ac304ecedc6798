"""EventBridge target input: the event envelope, ``Input``, ``InputPath`` and ``InputTransformer``, as EventBridge does;
and delivery as EventBridge does it: a target call that fails with a retryable error (throttling, the target
unavailable) is retried within the target's ``RetryPolicy``, and an event that still was not delivered goes to the
target's dead-letter queue (``DeadLetterConfig``), with EventBridge's message attributes, or is dropped.

Pattern matching is not here: the harness asks moto's own matcher (``events:TestEventPattern``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


class InputTransformError(ValueError):
    """A target's InputPath/InputPathsMap/InputTemplate cannot be applied to the event."""


def envelope(entry: Mapping[str, Any], *, account: str, region: str, time: datetime) -> dict[str, Any]:
    """The event a rule sees for one ``PutEvents`` entry (``Detail`` parsed, ``Time`` defaulted to ``time``)."""
    when = entry.get("Time") or time
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(when, datetime) else str(when),
        "region": region,
        "resources": list(entry.get("Resources", [])),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }


def json_path(event: Any, path: str) -> Any:
    """Evaluate the simple JSONPath EventBridge accepts (``$``, ``$.a.b``, ``$.a[0]``); missing → KeyError."""
    if path == "$":
        return event
    if not path.startswith("$."):
        raise InputTransformError(f"unsupported JSONPath {path!r}")
    node = event
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path[2:]):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


def target_input(target: Mapping[str, Any], event: Mapping[str, Any], *, rule_name: str, rule_arn: str) -> str:
    """The input string EventBridge sends to ``target`` for ``event`` (its Input, InputPath or InputTransformer)."""
    if "Input" in target and target["Input"] is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        try:
            return json.dumps(json_path(event, target["InputPath"]))
        except (KeyError, IndexError, TypeError):
            return "null"
    transformer = target.get("InputTransformer")
    if transformer:
        return transform(transformer, event, rule_name=rule_name, rule_arn=rule_arn)
    return json.dumps(event)


def transform(transformer: Mapping[str, Any], event: Mapping[str, Any], *, rule_name: str, rule_arn: str) -> str:
    """Apply an InputTransformer.

    A template that is not a JSON object/array is text and values go in as text. Otherwise each ``<var>`` in the
    template is replaced by the value its InputPathsMap path selects. Inside a JSON string
    literal the value goes in as text (strings without quotes); outside one, it goes in as JSON (strings quoted).
    A path that selects nothing yields ``null`` outside quotes and empty text inside (EventBridge drops the
    variable; ``null`` keeps a JSON template valid). The predefined variables
    ``aws.events.rule-arn``, ``aws.events.rule-name``, ``aws.events.event``, ``aws.events.event.json`` and
    ``aws.events.event.ingestion-time`` are available (``aws.events.event`` without ``detail``).
    """
    paths: Mapping[str, str] = transformer.get("InputPathsMap") or {}
    template = str(transformer.get("InputTemplate", ""))
    values: dict[str, Any] = {}
    for name, path in paths.items():
        try:
            values[name] = json_path(event, path)
        except (KeyError, IndexError, TypeError):
            values[name] = None
    values.setdefault("aws.events.rule-arn", rule_arn)
    values.setdefault("aws.events.rule-name", rule_name)
    values.setdefault("aws.events.event.ingestion-time", event.get("time"))
    values.setdefault("aws.events.event", {k: v for k, v in event.items() if k != "detail"})
    values.setdefault("aws.events.event.json", event)

    out: list[str] = []
    # A template that is not a JSON object or array is text: every value goes in as text.
    plain_text = template.lstrip()[:1] not in {"{", "["}
    in_string = plain_text
    i = 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "<" else None
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
                out.append(text if plain_text else json.dumps(text)[1:-1])
            else:
                out.append(json.dumps(value))
            i = match.end()
            continue
        if char == "\\" and in_string and not plain_text:
            out.append(template[i : i + 2])
            i += 2
            continue
        if char == '"' and not plain_text:
            in_string = not in_string
        out.append(char)
        i += 1
    return "".join(out)


# ------------------------------------------------------------------------------------------------ delivery retries
EVENTBRIDGE_PRINCIPAL = "events.amazonaws.com"
"""Who calls a rule's target (``cloud.aws_faults.add(..., function=EVENTBRIDGE_PRINCIPAL)`` throttles it)."""
RETRYABLE_ERRORS = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        "ServiceException",
    }
)
"""Target errors EventBridge retries (throttling, the target unavailable); any other (access denied, no such
resource, a bad request) is not retried: the event goes to the dead-letter queue at once, or is dropped."""
DEFAULT_RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86_400}
_MAX_BACKOFF_S = 300


@dataclass(frozen=True)
class TargetFailure:
    """Why an event never reached its target: the last error, the retries made, the limit that ended them
    (``MaximumRetryAttempts`` / ``MaximumEventAgeInSeconds``; empty when the error is not retried)."""

    code: str
    message: str
    retries: int
    exhausted: str
    dead_lettered: bool = False


def with_retries(
    call: Callable[[], T],
    target: Mapping[str, Any],
    *,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> T | TargetFailure:
    """Call a rule's target as EventBridge does: a retryable error is retried with exponential back-off (1 s, 2 s,
    ... at most 5 min; no jitter, so runs are repeatable) within the target's ``RetryPolicy`` (default: 185
    retries, 24 hours); the call's answer, or the failure once the policy is exhausted or the error not retryable."""
    policy = DEFAULT_RETRY_POLICY | dict(target.get("RetryPolicy") or {})
    started = now()
    retries = 0
    while True:
        try:
            return call()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code not in RETRYABLE_ERRORS:
            return TargetFailure(code, message, retries, "")
        if retries >= int(policy["MaximumRetryAttempts"]):
            return TargetFailure(code, message, retries, "MaximumRetryAttempts")
        delay = float(min(2**retries, _MAX_BACKOFF_S))
        if now() + delay - started > int(policy["MaximumEventAgeInSeconds"]):
            return TargetFailure(code, message, retries, "MaximumEventAgeInSeconds")
        sleep(delay)
        retries += 1


def dead_letter_attributes(failure: TargetFailure, *, rule_arn: str, target_arn: str) -> dict[str, Any]:
    """The message attributes EventBridge puts on an event it sends to a target's dead-letter queue."""
    values = {
        "ERROR_CODE": failure.code,
        "ERROR_MESSAGE": failure.message,
        "EXHAUSTED_RETRY_CONDITION": failure.exhausted or "NotRetryable",
        "RETRY_ATTEMPTS": str(failure.retries),
        "RULE_ARN": rule_arn,
        "TARGET_ARN": target_arn,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def queue_policy_allows_eventbridge(policy: str | None, *, queue_arn: str, rule_arn: str) -> bool:
    """Whether the dead-letter queue's policy lets EventBridge send this rule's events (else AWS drops them)."""
    for statement in (json.loads(policy) if policy else {}).get("Statement", []):
        principal = statement.get("Principal") or {}
        services = principal.get("Service") if isinstance(principal, dict) else None
        services = [services] if isinstance(services, str) else services or []
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        resources = statement.get("Resource")
        resources = [resources] if isinstance(resources, str) else resources or ["*"]
        source = (statement.get("Condition") or {}).get("ArnEquals", {}).get("aws:SourceArn")
        if (
            statement.get("Effect") == "Allow"
            and EVENTBRIDGE_PRINCIPAL in services
            and ({"sqs:SendMessage", "sqs:*"} & set(actions))
            and (queue_arn in resources or "*" in resources)
            and source in (None, rule_arn)
        ):
            return True
    return False
