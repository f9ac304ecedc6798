"""IAM policy evaluation for the local cloud: identity-based policies, as AWS evaluates them for one principal.

The evaluation follows AWS's identity-policy logic for a principal in the account that owns the resource:

1. an explicit ``Deny`` in any statement that matches (action, resource, conditions) wins;
2. otherwise an ``Allow`` that matches allows;
3. otherwise the request is implicitly denied.

Matching: ``Action``/``NotAction`` are compared case-insensitively with ``*`` and ``?`` wildcards; ``Resource``/
``NotResource`` case-sensitively with the same wildcards (``*`` crosses ``/`` and ``:`` as in IAM). Conditions: the
operators in :data:`_OPERATORS` (``String*``, ``Arn*``, ``Bool``, ``Null``, ``Numeric*``), each with ``IfExists``
and the ``ForAnyValue:``/``ForAllValues:`` set qualifiers. A key missing from the request context makes a positive
operator false and a negated one true, as in IAM. An operator this module does not know fails loudly.

A role's permissions boundary (a customer managed policy) caps its identity policies (:func:`bounded`). Not modelled
(not used by the templates): resource-based policies (except what the harness checks itself), session policies,
SCPs, policy variables (``${aws:username}``).

:data:`AWS_MANAGED_POLICIES` is the one table of AWS managed policies the templates attach (directly or through the
SAM transform); attaching any other AWS managed policy fails loudly: add its document to the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

# Boundary*: the identity policies allow, the principal's permissions boundary does not (AWS words it apart).
Decision = Literal["Allow", "ExplicitDeny", "ImplicitDeny", "BoundaryExplicitDeny", "BoundaryImplicitDeny"]


class PolicyError(ValueError):
    """A policy document the evaluator cannot interpret (unknown operator, malformed statement)."""


def _document(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


_LAMBDA_LOGS = {
    "Effect": "Allow",
    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "Resource": "*",
}
_XRAY_WRITE = {
    "Effect": "Allow",
    "Action": [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ],
    "Resource": "*",
}

AWS_MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    # The AWS managed policies the templates reference (SAM adds the first two to every function role it creates,
    # AWSXrayWriteOnlyAccess to state machine roles with Tracing). Documents as AWS publishes them (default version).
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": _document(_LAMBDA_LOGS),
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": _document(_XRAY_WRITE),
    "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess": _document(_XRAY_WRITE),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": _document(
        _LAMBDA_LOGS,
        {
            "Effect": "Allow",
            "Action": [
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        },
    ),
}


def managed_policy(arn: str) -> dict[str, Any]:
    """The document of an AWS managed policy in :data:`AWS_MANAGED_POLICIES` (any partition)."""
    key = re.sub(r"^arn:[^:]+:", "arn:aws:", arn)
    try:
        return AWS_MANAGED_POLICIES[key]
    except KeyError:
        raise PolicyError(
            f"AWS managed policy {arn} is not in local.aws.iam.AWS_MANAGED_POLICIES: add its document to the table"
        ) from None


@cache
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's ``*``/``?`` matching (``*`` matches any run of characters, ``/`` and ``:`` included)."""
    return bool(_glob(pattern, ignore_case=ignore_case).match(value))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


# -- conditions -------------------------------------------------------------------------------------------------
def _arn_like(pattern: str, value: str) -> bool:
    # ArnLike compares the six ARN parts separately; a wildcard does not cross a ':' between parts.
    want, got = pattern.split(":", 5), value.split(":", 5)
    if len(want) != 6 or len(got) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(want, got, strict=True))


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def check(expected: str, actual: str) -> bool:
        try:
            return compare(float(actual), float(expected))
        except ValueError:
            return False

    return check


_BASE_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    # name -> (match(policy_value, request_value), negated)
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (wildcard_match, False),
    "StringNotLike": (wildcard_match, True),
    "ArnEquals": (lambda p, v: p == v, False),
    "ArnNotEquals": (lambda p, v: p == v, True),
    "ArnLike": (_arn_like, False),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
    "NumericEquals": (_numeric(lambda a, b: a == b), False),
    "NumericNotEquals": (_numeric(lambda a, b: a == b), True),
    "NumericLessThan": (_numeric(lambda a, b: a < b), False),
    "NumericLessThanEquals": (_numeric(lambda a, b: a <= b), False),
    "NumericGreaterThan": (_numeric(lambda a, b: a > b), False),
    "NumericGreaterThanEquals": (_numeric(lambda a, b: a >= b), False),
}
_OPERATORS = frozenset(_BASE_OPERATORS) | {"Null"}


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Sequence[str]]) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, _, operator = operator.partition(":")
        if qualifier not in {"ForAnyValue", "ForAllValues"}:
            raise PolicyError(f"condition set qualifier {qualifier!r} is not known to local.aws.iam")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not known to local.aws.iam: add it to _OPERATORS")
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(expected)]
    actual = _context_value(context, key)
    if base == "Null":
        missing = actual is None
        return any((v.lower() == "true") == missing for v in values)
    match, negated = _BASE_OPERATORS[base]
    if actual is None:
        return if_exists or negated or qualifier == "ForAllValues"
    if qualifier == "ForAllValues":
        return all(any(match(v, a) for v in values) != negated for a in actual)
    hit = any(match(v, a) for v in values for a in actual)
    return not hit if negated else hit


def _context_value(context: Mapping[str, Sequence[str]], key: str) -> list[str] | None:
    for name, value in context.items():
        if name.lower() == key.lower():  # condition key names are case-insensitive
            return [str(v) for v in value]
    return None


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, Sequence[str]]) -> bool:
    for operator, keys in conditions.items():
        if not isinstance(keys, Mapping):
            raise PolicyError(f"condition {operator!r} must map keys to values")
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


# -- statements and policies ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    conditions: Mapping[str, Any] = field(default_factory=dict)
    sid: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> Statement:
        effect = raw.get("Effect")
        if effect not in {"Allow", "Deny"}:
            raise PolicyError(f"{where}: Effect must be Allow or Deny, got {effect!r}")
        if ("Action" in raw) == ("NotAction" in raw):
            raise PolicyError(f"{where}: a statement needs exactly one of Action / NotAction")
        if ("Resource" in raw) == ("NotResource" in raw):
            raise PolicyError(f"{where}: a statement needs exactly one of Resource / NotResource")
        if "Principal" in raw or "NotPrincipal" in raw:
            raise PolicyError(f"{where}: an identity-based policy has no Principal")
        conditions = raw.get("Condition") or {}
        _conditions_hold(conditions, {})  # validate operators now, not at the first request
        return cls(
            effect=str(effect),
            actions=tuple(str(a) for a in _as_list(raw.get("Action"))),
            not_actions=tuple(str(a) for a in _as_list(raw.get("NotAction"))),
            resources=tuple(str(r) for r in _as_list(raw.get("Resource"))),
            not_resources=tuple(str(r) for r in _as_list(raw.get("NotResource"))),
            conditions=conditions,
            sid=str(raw.get("Sid", "")),
        )

    def applies(self, action: str, resource: str, context: Mapping[str, Sequence[str]]) -> bool:
        if self.actions:
            if not any(wildcard_match(a, action, ignore_case=True) for a in self.actions):
                return False
        elif any(wildcard_match(a, action, ignore_case=True) for a in self.not_actions):
            return False
        if self.resources:
            if not any(wildcard_match(r, resource) for r in self.resources):
                return False
        elif any(wildcard_match(r, resource) for r in self.not_resources):
            return False
        return _conditions_hold(self.conditions, context)


@dataclass(frozen=True)
class Policy:
    name: str
    statements: tuple[Statement, ...]

    @classmethod
    def parse(cls, name: str, document: Mapping[str, Any]) -> Policy:
        raw = document.get("Statement")
        statements = _as_list(raw)
        if not statements:
            raise PolicyError(f"policy {name}: no Statement")
        return cls(name, tuple(Statement.parse(s, f"policy {name} statement {i}") for i, s in enumerate(statements)))


def evaluate(
    policies: Iterable[Policy], action: str, resource: str, context: Mapping[str, Sequence[str]] | None = None
) -> Decision:
    """AWS's decision for one action on one resource under the principal's identity-based policies."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if not statement.applies(action, resource, context or {}):
                continue
            if statement.effect == "Deny":
                return "ExplicitDeny"
            allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def bounded(
    identity: Decision, boundary: Policy | None, action: str, resource: str, context: Mapping[str, Sequence[str]]
) -> Decision:
    """The decision once the principal's permissions boundary caps its identity policies: an action is allowed only
    when both allow it; an explicit deny in either wins (IAM's evaluation logic for boundaries)."""
    if boundary is None or identity == "ExplicitDeny":
        return identity
    capped = evaluate([boundary], action, resource, context)
    if capped == "ExplicitDeny":
        return "BoundaryExplicitDeny"
    if identity != "Allow":
        return identity
    return "Allow" if capped == "Allow" else "BoundaryImplicitDeny"


def denial_message(principal_arn: str, action: str, resource: str, decision: Decision, *, display: str = "") -> str:
    """The message AWS writes for a denied request (``display``: the action as the service spells it)."""
    shown = display or action
    why = {
        "ExplicitDeny": "with an explicit deny in an identity-based policy",
        "BoundaryExplicitDeny": "with an explicit deny in a permissions boundary",
        "BoundaryImplicitDeny": f"because no permissions boundary allows the {shown} action",
    }.get(decision, f"because no identity-based policy allows the {shown} action")
    return f"User: {principal_arn} is not authorized to perform: {shown} on resource: {resource} {why}"


__all__ = [
    "AWS_MANAGED_POLICIES",
    "Decision",
    "Policy",
    "PolicyError",
    "Statement",
    "bounded",
    "denial_message",
    "evaluate",
    "managed_policy",
    "wildcard_match",
]
