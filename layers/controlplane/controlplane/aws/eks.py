"""Amazon EKS access: the cluster's endpoint and CA (cached per warm Lambda) and a bearer token.

The token is what ``aws eks get-token`` prints: a presigned STS ``GetCallerIdentity`` URL whose signature covers the
``x-k8s-aws-id: <cluster name>`` header, valid 60 s, encoded as ``k8s-aws-v1.`` + URL-safe base64 without padding.
The EKS API server replays the URL to learn the caller's IAM identity. The token is a secret: it is returned as a
``SecretStr`` and never logged.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import SecretStr

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import ConfigurationError

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the token format prefix, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_EXPIRES_SECONDS = 60
DEFAULT_KUBERNETES_VERSION = "1.32"


@dataclass(frozen=True)
class ClusterInfo:
    """What ``eks:DescribeCluster`` says about how to reach the cluster (no secrets)."""

    name: str
    endpoint: str
    ca_data: str
    version: str
    arn: str

    @property
    def kubernetes_version(self) -> str:
        """``version``, or the version the control plane is built for when EKS does not say."""
        return self.version or DEFAULT_KUBERNETES_VERSION


CACHE_SECONDS = 900.0
"""A warm Lambda re-describes the cluster after this long (a recreated cluster gets a new endpoint and CA)."""

_cache: dict[tuple[str, str], tuple[float, ClusterInfo]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every described cluster (tests; a cold start does the same)."""
    with _cache_lock:
        _cache.clear()


def describe_cluster(name: str, *, region: str, session: boto3.Session | None = None) -> ClusterInfo:
    """Endpoint, CA and version of cluster ``name``; one ``DescribeCluster`` per warm Lambda, cluster and 15 min.

    ``session``: whose credentials (an operator's profile for the CLI); the function's own by default."""
    key = (region, name)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    client = session.client("eks", region_name=region) if session else boto3.client("eks", region_name=region)
    try:
        with translate_aws_errors("eks:DescribeCluster"):
            cluster: Any = client.describe_cluster(name=name)["cluster"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise ConfigurationError(
                f"EKS cluster {name!r} (CLUSTER_NAME) does not exist in {region}; on day 0 the provisioning state "
                "machine (output ProvisionStateMachineArn) creates it: run it before the first release"
            ) from None
        raise
    status = cluster.get("status", "ACTIVE")
    if status not in ("ACTIVE", "UPDATING"):
        raise ConfigurationError(f"EKS cluster {name!r} is {status}, not ACTIVE")
    info = ClusterInfo(
        name=name,
        endpoint=str(cluster["endpoint"]),
        ca_data=str(cluster["certificateAuthority"]["data"]),
        version=str(cluster.get("version", "")),
        arn=str(cluster.get("arn", "")),
    )
    with _cache_lock:
        _cache[key] = (time.monotonic(), info)
    return info


def get_token(cluster_name: str, *, region: str, session: boto3.Session | None = None) -> SecretStr:
    """A fresh EKS bearer token for ``cluster_name`` signed with the function's own credentials (or ``session``'s)."""
    endpoint = f"https://sts.{region}.amazonaws.com"
    sts = (
        session.client("sts", region_name=region, endpoint_url=endpoint)
        if session
        else boto3.client("sts", region_name=region, endpoint_url=endpoint)
    )

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster_name

    sts.meta.events.register_first("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url = sts.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=TOKEN_EXPIRES_SECONDS, HttpMethod="GET"
    )
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return SecretStr(TOKEN_PREFIX + encoded)
