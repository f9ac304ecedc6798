"""Kubernetes API failures become the control plane's error types, with the object and the server's reason named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import urllib3.exceptions
from controlplane.errors import (
    KubernetesConflictError,
    KubernetesForbiddenError,
    KubernetesInvalidError,
    KubernetesNotFoundError,
    KubernetesTransientError,
    PermanentError,
    RetryableError,
)
from controlplane.kube.errors import ApiError, ResourceNotFoundError, from_api_exception, translate_errors
from controlplane.models.kube import ObjectRef

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
REF = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="clinical-trials", name="api-gateway")


def api_error(status: int, body: str | bytes = "", headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(status, "Reason", body=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, KubernetesNotFoundError),
        (409, KubernetesConflictError),
        (422, KubernetesInvalidError),
        (400, KubernetesInvalidError),
        (401, KubernetesForbiddenError),
        (403, KubernetesForbiddenError),
        (429, KubernetesTransientError),
        (500, KubernetesTransientError),
        (502, KubernetesTransientError),
        (503, KubernetesTransientError),
        (504, KubernetesTransientError),
        (405, PermanentError),
        (410, PermanentError),
    ],
)
def test_status_codes_map_to_error_types(status: int, expected: type[Exception]) -> None:
    error = from_api_exception(api_error(status), what=REF.key)
    assert type(error) is expected
    assert str(error).startswith("Deployment.apps/clinical-trials/api-gateway: ")


def test_only_throttling_server_errors_and_timeouts_are_retryable() -> None:
    assert isinstance(from_api_exception(api_error(503)), RetryableError)
    assert isinstance(from_api_exception(api_error(404)), PermanentError)


def test_apply_conflict_names_the_conflicting_fields() -> None:
    error = from_api_exception(api_error(409, (DATA / "status_apply_conflict.json").read_text()), what=REF.key)
    assert isinstance(error, KubernetesConflictError)
    assert 'conflicting fields: .spec.replicas, .spec.template.spec.containers[name="api-gateway"].image' in str(error)


def test_invalid_lists_the_causes() -> None:
    error = from_api_exception(api_error(422, (DATA / "status_invalid.json").read_text().encode()))
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in str(error)


def test_retry_after_header_is_in_the_message() -> None:
    error = from_api_exception(api_error(429, "", {"Retry-After": "7"}))
    assert "retry after 7s" in str(error)


def test_retry_after_seconds_of_the_status_is_used_without_a_header() -> None:
    error = from_api_exception(api_error(429, (DATA / "status_throttled.json").read_text()))
    assert "retry after 1s" in str(error)
    assert "Too many requests" in str(error)


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"),  # type: ignore[arg-type]
        urllib3.exceptions.NewConnectionError(None, "connection refused"),  # type: ignore[arg-type]
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    ],
)
def test_no_answer_from_the_server_is_transient(error: urllib3.exceptions.HTTPError) -> None:
    assert isinstance(from_api_exception(error), KubernetesTransientError)


def test_tls_verification_failure_is_permanent() -> None:
    e = urllib3.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error = from_api_exception(e)
    assert type(error) is PermanentError
    assert "wrong CA" in str(error)


def test_unknown_kind_is_not_found() -> None:
    assert isinstance(from_api_exception(ResourceNotFoundError("No matches found")), KubernetesNotFoundError)


def test_translate_errors_reraises_as_control_plane_error_chained_to_the_original() -> None:
    original = api_error(404, json.dumps({"kind": "Status", "message": 'deployments.apps "api-gateway" not found'}))
    expected = r"Deployment\.apps/clinical-trials/api-gateway.*not found"
    with pytest.raises(KubernetesNotFoundError, match=expected) as info, translate_errors(REF):
        raise original
    assert info.value.__cause__ is original


def test_translate_errors_works_as_a_decorator_and_lets_other_errors_through() -> None:
    @translate_errors("listing pods")
    def fails(error: Exception) -> None:
        raise error

    with pytest.raises(KubernetesTransientError, match="listing pods"):
        fails(api_error(503))
    with pytest.raises(ValueError, match="untouched"):
        fails(ValueError("untouched"))


def test_long_server_messages_are_truncated() -> None:
    error = from_api_exception(api_error(500, json.dumps({"message": "x" * 5000})))
    assert len(str(error)) < 700
