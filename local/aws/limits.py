"""Service limits and validations AWS applies to a request before doing anything, which moto does not.

Checked for every caller (harness included) on the same seam as IAM (``BaseClient._make_api_call``), after the
authorization:

* ``states:StartExecution`` input over 262,144 bytes (UTF-8): ``ValidationException`` with the API's constraint
  message (Step Functions' 256 KiB payload quota);
* ``lambda:Invoke`` payload over 6,291,456 bytes: ``RequestEntityTooLargeException`` (the 6 MB synchronous quota);
* CloudFormation ``CreateStack``/``UpdateStack``/``CreateChangeSet`` parameters against the template's ``Parameters``
  (``ValidationError``): unknown parameters, parameters without a value or default, ``AllowedValues``,
  ``AllowedPattern`` (the whole value must match), ``MinLength``/``MaxLength``, ``Number`` with
  ``MinValue``/``MaxValue``; a ``ConstraintDescription`` replaces the generic message, as CloudFormation does.

What happens inside a run (state output over 256 KiB, Lambda response size and timeout, DynamoDB item size) is
enforced where it happens: moto (``States.DataLimitExceeded``, DynamoDB's 400 KB), ``local.aws.lambdas``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import yaml

from local.aws.template import _CfnLoader

SFN_MAX_INPUT_BYTES = 262_144
LAMBDA_MAX_REQUEST_BYTES = 6_291_456
_CFN_OPERATIONS = {"CreateStack", "UpdateStack", "CreateChangeSet"}


class RequestRejected(Exception):  # noqa: N818 - carries the service's error code and message
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def client_error(self, client: Any, operation: str) -> Exception:
        metadata = {"HTTPStatusCode": self.status, "RequestId": str(uuid.uuid4())}
        response = {"Error": {"Code": self.code, "Message": self.message}, "ResponseMetadata": metadata}
        return client.exceptions.from_code(self.code)(response, operation)  # type: ignore[no-any-return]


def check_request(service: str, operation: str, params: Mapping[str, Any], admin_client: Any) -> None:
    """Raise :class:`RequestRejected` where AWS refuses the request outright."""
    if (service, operation) == ("states", "StartExecution"):
        size = len(str(params.get("input") or "").encode("utf-8"))
        if size > SFN_MAX_INPUT_BYTES:
            raise RequestRejected(
                "ValidationException",
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length "
                f"less than or equal to {SFN_MAX_INPUT_BYTES}",
            )
    elif (service, operation) == ("lambda", "Invoke"):
        payload = params.get("Payload") or b""
        size = len(payload.encode("utf-8") if isinstance(payload, str) else bytes(payload))
        if size > LAMBDA_MAX_REQUEST_BYTES:
            raise RequestRejected(
                "RequestEntityTooLargeException",
                f"Request must be smaller than {LAMBDA_MAX_REQUEST_BYTES} bytes for the InvokeFunction operation",
                413,
            )
    elif service == "cloudformation" and operation in _CFN_OPERATIONS:
        template = _template_of(params, admin_client)
        if template is not None:
            validate_parameters(template, params.get("Parameters") or [])


def _template_of(params: Mapping[str, Any], admin_client: Any) -> dict[str, Any] | None:
    body = params.get("TemplateBody")
    if body is None and params.get("TemplateURL"):
        url = urlparse(str(params["TemplateURL"]))
        bucket = url.netloc.split(".s3", 1)[0]
        s3 = admin_client("s3")
        body = s3.get_object(Bucket=bucket, Key=url.path.lstrip("/"))["Body"].read().decode("utf-8")
    if body is None and params.get("UsePreviousTemplate"):
        body = admin_client("cloudformation").get_template(StackName=params["StackName"])["TemplateBody"]
    if body is None:
        return None
    if isinstance(body, dict):
        return body
    loaded = yaml.load(str(body), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with tag constructors only
    return loaded if isinstance(loaded, dict) else None


def validate_parameters(template: Mapping[str, Any], given: list[Mapping[str, Any]]) -> None:
    """CloudFormation's parameter validation (see the module docstring); raises :class:`RequestRejected`."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    values = {str(p["ParameterKey"]): p for p in given}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise RequestRejected("ValidationError", f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    missing = []
    for name, spec in declared.items():
        entry = values.get(name)
        if (entry is None and "Default" not in (spec or {})) or (
            entry is not None and "ParameterValue" not in entry and not entry.get("UsePreviousValue")
        ):
            missing.append(name)
    if missing:
        raise RequestRejected("ValidationError", f"Parameters: [{', '.join(missing)}] must have values")
    for name, spec in declared.items():
        entry = values.get(name)
        if entry is not None and entry.get("UsePreviousValue"):
            continue  # validated when it was given
        value = str(entry["ParameterValue"]) if entry is not None else _default(spec["Default"])
        problem = _constraint_problem(name, spec or {}, value)
        if problem:
            description = (spec or {}).get("ConstraintDescription")
            message = f"Parameter '{name}' failed to satisfy constraint: {description}" if description else problem
            raise RequestRejected("ValidationError", message)


def _default(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _constraint_problem(name: str, spec: Mapping[str, Any], value: str) -> str | None:
    kind = str(spec.get("Type", "String"))
    items = value.split(",") if kind.startswith(("CommaDelimitedList", "List<")) else [value]
    for item in items:
        if kind in {"Number", "List<Number>"}:
            problem = _number_problem(name, spec, item)
            if problem:
                return problem
        allowed = spec.get("AllowedValues")
        if allowed is not None and item not in [str(a) for a in allowed]:
            return f"Parameter '{name}' must be one of AllowedValues"
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), item):
            return f"Parameter '{name}' must match pattern {pattern}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"Parameter '{name}' must contain at least {spec['MinLength']} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"Parameter '{name}' must contain at most {spec['MaxLength']} characters"
    return None


def _number_problem(name: str, spec: Mapping[str, Any], item: str) -> str | None:
    try:
        number = float(item)
    except ValueError:
        return f"Parameter '{name}' must be a number"
    if "MinValue" in spec and number < float(spec["MinValue"]):
        return f"Parameter '{name}' must be a number not less than {spec['MinValue']}"
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        return f"Parameter '{name}' must be a number not greater than {spec['MaxValue']}"
    return None


__all__ = ["LAMBDA_MAX_REQUEST_BYTES", "SFN_MAX_INPUT_BYTES", "RequestRejected", "check_request", "validate_parameters"]
