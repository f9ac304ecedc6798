"""Kubernetes API failures as the control plane's error types (modelled on kopf's ``errors.py``).

Every call to the API goes through :func:`translate_errors`, so callers (and the state machines' Retry/Catch,
which match class names) only ever see :mod:`controlplane.errors`:

====================================  ==========================================================
404                                    KubernetesNotFoundError (permanent)
409                                    KubernetesConflictError (permanent; SSA conflicts list fields)
400, 422                               KubernetesInvalidError (permanent; the causes are listed)
401, 403                               KubernetesForbiddenError (permanent)
429, 500, 502, 503, 504, no response   KubernetesTransientError (retryable; Retry-After in message)
TLS verification failure, other 4xx    PermanentError
====================================  ==========================================================

Messages name the object (``Deployment.apps/clinical-trials/api-gateway``) and the server's message; they never
carry request headers, so the bearer token cannot leak through them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import urllib3.exceptions

from controlplane.errors import (
    ControlPlaneError,
    KubernetesConflictError,
    KubernetesForbiddenError,
    KubernetesInvalidError,
    KubernetesNotFoundError,
    KubernetesTransientError,
    PermanentError,
)


class ApiError(Exception):
    """An error answer of the API server, with the attributes of ``kubernetes.client``'s ``ApiError``
    (``status``, ``reason``, ``body``, ``headers``), raised by :class:`controlplane.kube.client.ApiClient`."""

    def __init__(
        self, status: int, reason: str, *, body: bytes | str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"({status}) Reason: {reason}")
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = dict(headers or {})


class ResourceNotFoundError(LookupError):
    """Discovery found no resource serving a kind (apiVersion + kind): the API server does not serve it."""


TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_MESSAGE = 500


def from_api_exception(
    e: ApiError | urllib3.exceptions.HTTPError | ResourceNotFoundError, *, what: str | None = None
) -> ControlPlaneError:
    """The control-plane error for a failed Kubernetes call; ``what`` names the object or request."""
    subject = f"{what}: " if what else ""
    if isinstance(e, ResourceNotFoundError):
        return KubernetesNotFoundError(f"{subject}the API server serves no such kind ({e})")
    if isinstance(e, urllib3.exceptions.HTTPError):
        return _from_transport_error(e, subject)
    status = int(getattr(e, "status", 0) or 0)
    if status == 0:  # the client turns TLS failures into ApiError(status=0)
        return _from_transport_error(e, subject)
    body = _status_body(e)
    message = _truncate(str(body.get("message") or e.reason or "no message"))
    return _from_status(status, subject, message, body, e)


def _from_status(status: int, subject: str, message: str, body: dict[str, Any], e: ApiError) -> ControlPlaneError:
    """The error type of an HTTP status the API server answered with (its Status body names fields and causes)."""
    causes = _causes(body)
    if status == 404:
        return KubernetesNotFoundError(f"{subject}not found (404): {message}")
    if status == 409:
        fields = [c["field"] for c in causes if c.get("field")]
        detail = f"; conflicting fields: {', '.join(fields)}" if fields else ""
        return KubernetesConflictError(f"{subject}conflict (409): {message}{detail}")
    if status in (400, 422):
        detail = "; ".join(f"{c.get('field') or '?'}: {c.get('message') or c.get('reason')}" for c in causes)
        return KubernetesInvalidError(f"{subject}rejected ({status}): {message}" + (f" [{detail}]" if detail else ""))
    if status in (401, 403):
        return KubernetesForbiddenError(
            f"{subject}{'unauthorized' if status == 401 else 'forbidden'} ({status}): {message}"
        )
    if status in TRANSIENT_STATUSES:
        retry_after = _retry_after(e, body)
        hint = f"; retry after {retry_after}s" if retry_after else ""
        return KubernetesTransientError(f"{subject}transient failure ({status}): {message}{hint}")
    return PermanentError(f"{subject}Kubernetes API answered {status}: {message}")


@contextmanager
def translate_errors(what: object = None) -> Iterator[None]:
    """Turn Kubernetes client errors raised inside the block into :mod:`controlplane.errors` types.

    ``what`` (an ``ObjectRef`` or a description) is named in the message. Usable as a decorator too.
    """
    try:
        yield
    except (ApiError, urllib3.exceptions.HTTPError, ResourceNotFoundError) as e:
        raise from_api_exception(e, what=str(what) if what is not None else None) from e


def _from_transport_error(e: Exception, subject: str) -> ControlPlaneError:
    text = _truncate(str(getattr(e, "reason", None) or e))
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return PermanentError(f"{subject}TLS verification of the API server failed (wrong CA?): {text}")
    return KubernetesTransientError(f"{subject}no answer from the API server ({type(e).__name__}): {text}")


def _status_body(e: ApiError) -> dict[str, Any]:
    raw = e.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {"message": raw}
    return body if isinstance(body, dict) else {}


def _causes(body: dict[str, Any]) -> list[dict[str, Any]]:
    details = body.get("details") or {}
    causes = details.get("causes") if isinstance(details, dict) else None
    return [c for c in causes or [] if isinstance(c, dict)]


def _retry_after(e: ApiError, body: dict[str, Any]) -> int | None:
    """Seconds from the Retry-After header, else from the Status's ``details.retryAfterSeconds``."""
    headers = e.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        details = body.get("details")
        value = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    if value is None:
        return None
    try:
        return max(0, int(str(value).strip()))
    except ValueError:
        return None


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
