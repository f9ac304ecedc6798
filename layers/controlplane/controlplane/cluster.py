"""The one way the steps reach the cluster: endpoint and CA from ``eks:DescribeCluster`` (cached), a fresh token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from pydantic import ValidationError

from controlplane.aws import eks
from controlplane.errors import ConfigurationError
from controlplane.models.release import validation_message
from controlplane.settings import Settings

if TYPE_CHECKING:
    from controlplane.kube.client import ApiClient


def connect(settings: Settings) -> ApiClient:
    """An API client for the settings' cluster, authenticated as this function's IAM role."""
    return connect_to(settings.cluster_name, region=settings.region)


def connect_to(cluster_name: str, *, region: str, session: boto3.Session | None = None) -> ApiClient:
    """An API client for ``cluster_name``, authenticated as ``session``'s identity (the function's role by default):
    the same EKS token path for the functions and an operator's CLI. The client signs a new token when this one
    ages out (an EKS token lasts 15 minutes) or is refused."""
    # The client loads here: PlanRelease reads only the cluster's version (kubernetes_version) and never connects.
    from controlplane.kube.client import ClusterAccess, build_api_client  # noqa: PLC0415

    info = eks.describe_cluster(cluster_name, region=region, session=session)
    token = eks.get_token(cluster_name, region=region, session=session)
    try:
        access = ClusterAccess(endpoint=info.endpoint, ca_data=info.ca_data, token=token)
    except ValidationError as exc:
        raise ConfigurationError(
            f"eks:DescribeCluster({cluster_name}) gave unusable access: {validation_message(exc)}"
        ) from None
    return build_api_client(access, token_source=lambda: eks.get_token(cluster_name, region=region, session=session))


def kubernetes_version(settings: Settings) -> str:
    """The cluster's Kubernetes version (what manifests are validated against)."""
    return eks.describe_cluster(settings.cluster_name, region=settings.region).kubernetes_version
