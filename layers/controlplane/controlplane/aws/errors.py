"""AWS API errors as control-plane error types: throttling and 5xx are retryable, the rest propagate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError  # noqa: A004

from controlplane.errors import AwsThrottledError

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "InternalServerError",
        "InternalFailure",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def translate_aws_errors(operation: str) -> Iterator[None]:
    """Re-raise throttling, 5xx and connection failures of ``operation`` as :class:`AwsThrottledError`."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in RETRYABLE_CODES or status >= 500:
            raise AwsThrottledError(f"{operation}: {code or status} (transient)") from exc
        raise
    except (ConnectionError, ReadTimeoutError) as exc:
        raise AwsThrottledError(f"{operation}: {type(exc).__name__} (transient)") from exc
