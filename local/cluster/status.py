"""metav1.Status errors exactly as the real API server shapes them (``k8s.io/apimachinery/pkg/api/errors``).

Every failure the emulator returns is an :class:`ApiError` rendered as a ``Status`` JSON body with the real
``reason``, ``code``, ``message`` and ``details``, so the official clients raise the same exceptions as against EKS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Cause:
    """One ``details.causes`` entry: ``reason`` is the cause type (``FieldValueRequired`` ...)."""

    reason: str
    message: str
    field: str = ""

    def to_json(self) -> Obj:
        out: Obj = {}
        if self.reason:
            out["reason"] = self.reason
        out["message"] = self.message
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    """An HTTP error answered with a ``Status`` body."""

    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None
    uid: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if self.retry_after is not None:
            self.headers.setdefault("Retry-After", str(self.retry_after))

    def status(self) -> Obj:
        details: Obj = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.uid:
            details["uid"] = self.uid
        if self.causes:
            details["causes"] = [c.to_json() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if details:
            body["details"] = details
        body["code"] = self.code
        return body


def qualified(resource: str, group: str) -> str:
    """``deployments.apps`` / ``pods``: how messages name a resource."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found', name, group, resource)


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists', name, group, resource
    )


def conflict(resource: str, group: str, name: str, detail: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {detail}'
    return ApiError(409, "Conflict", message, name, group, resource)


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """``causes`` are ``(field, cause reason, error body)``, e.g. ``("spec.selector", "FieldValueRequired",
    "Required value")``; the message aggregates them like ``field.ErrorList.ToAggregate``."""
    errs = [f"{f}: {body}" for f, _, body in causes]
    qkind = f"{kind}.{group}" if group else kind
    if not errs:
        message = f'{qkind} "{name}" is invalid'
    elif len(errs) == 1:
        message = f'{qkind} "{name}" is invalid: {errs[0]}'
    else:
        message = f'{qkind} "{name}" is invalid: [{", ".join(errs)}]'
    return ApiError(422, "Invalid", message, name, group, kind, [Cause(reason, body, f) for f, reason, body in causes])


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(resource: str, group: str, name: str, message: str) -> ApiError:
    return ApiError(403, "Forbidden", message, name, group, resource)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def not_acceptable(accept: str) -> ApiError:
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: application/json, {accept}")


PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
)


def unsupported_media_type(content_type: str, accepted: tuple[str, ...] = PATCH_TYPES) -> ApiError:
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
    del content_type
    return ApiError(415, "UnsupportedMediaType", message)


def too_many_requests(retry_after: int | None = 1) -> ApiError:
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.", retry_after=retry_after)


def internal_error(detail: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {detail}", causes=[Cause("", detail)])


def service_unavailable(detail: str = "the server is currently unable to handle the request") -> ApiError:
    return ApiError(503, "ServiceUnavailable", detail)


def gateway_timeout() -> ApiError:
    return ApiError(
        504,
        "Timeout",
        "The server was unable to return a response in the time allotted, but may still be processing the request",
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def success(name: str, group: str, resource: str, uid: str) -> Obj:
    """The ``Status`` a delete answers when it returns no object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": resource, "uid": uid},
    }
